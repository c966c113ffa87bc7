"""Training DoseNet: AdamW, ReduceLROnPlateau on val loss, gradient clipping, early stopping.

Loss per target = BCE-with-logits of the dose head on (y > 0)
                + Huber (SmoothL1, beta 1) of the amount head vs y, on dose rows only;
summed over targets. The caller scales the inputs; y stays in insulin units.

Same seed, same data, same config -> identical history and weights on CPU. The global torch RNG
and numpy RNGs of the caller are left as they were (torch.random.fork_rng, numpy state restored).
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from . import distributed
from .arrays import ArrayPart, TrainData, predict_raw
from ..configs import TrainConfig  # noqa: F401 (re-exported)
from .dose_rule import DOSE_THRESHOLD, to_dose
from .model import DoseNet, ModelConfig, pick_device
from ..prep.windows import RowWindows

STOP_REASONS = ("early_stopping", "max_epochs", "stopped_by_user", "diverged")
DIVERGED_ABS = 1e6  # val loss above this is divergence
DIVERGED_RATIO = 100.0  # ... and so is val loss above 100x the first epoch's (and above 1.0)


@dataclass
class EpochLog:
    epoch: int  # 1-based
    train_loss: float  # mean over the epoch's batches (weighted by batch size)
    val_loss: float
    val_mae: float  # units, the dose (dose_rule.to_dose: thresholded, rounded) vs y[:, 0]
    elapsed_s: float  # seconds since training started
    lr: float  # learning rate used in this epoch


@dataclass
class TrainResult:
    model: DoseNet  # best-val-loss weights, eval mode, on CPU
    history: list[EpochLog]
    stop_reason: str  # one of STOP_REASONS
    best_epoch: int  # 0 = no epoch gave a finite val loss (initial weights returned)
    seconds: float
    message: str = ""
    best_val_loss: float = field(default=float("nan"))


def dose_loss(amount: torch.Tensor, dose_logit: torch.Tensor, y: torch.Tensor,
              reduce: bool = True, beta: float = 1.0):
    """BCE(dose head, y > 0) + Huber(amount, y) on dose rows, summed over targets.

    With reduce=False returns per-target sums and counts (bce_sum, huber_sum, n_rows, n_doses)
    so a big set can be evaluated in chunks and combined exactly.
    """
    given = (y > 0).float()
    bce = F.binary_cross_entropy_with_logits(dose_logit, given, reduction="none").sum(0)
    huber = (F.smooth_l1_loss(amount, y, reduction="none", beta=beta) * given).sum(0)
    n_doses = given.sum(0)
    if not reduce:
        return bce, huber, y.shape[0], n_doses
    return (bce / y.shape[0] + huber / n_doses.clamp_min(1.0)).sum()


@torch.inference_mode()
def _evaluate(model: DoseNet, tensors, chunk: int = 8192, beta: float = 1.0) -> tuple[float, float]:
    """(val loss, val MAE in units of the rounded dose vs y[:, 0]) over a whole part."""
    model.eval()
    seq, now, patient, y = tensors
    bce = huber = n_doses = 0.0
    abs_err = 0.0
    for i in range(0, len(y), chunk):
        amount, logit = model(seq[i:i + chunk], now[i:i + chunk], patient[i:i + chunk])
        yb = y[i:i + chunk]
        b, h, _, d = dose_loss(amount, logit, yb, reduce=False, beta=beta)
        bce, huber, n_doses = bce + b, huber + h, n_doses + d
        dose = to_dose(amount[:, 0].cpu().numpy(), torch.sigmoid(logit[:, 0]).cpu().numpy())
        abs_err += float(np.abs(dose - yb[:, 0].cpu().numpy()).sum())
    loss = (bce / len(y) + huber / torch.as_tensor(n_doses).clamp_min(1.0)).sum().item()
    return loss, abs_err / len(y)


def _init_head_biases(model: DoseNet, y: np.ndarray) -> None:
    """Start the heads at the training set's dose rate and mean dose (faster, steadier start)."""
    y = np.asarray(y, dtype=np.float64)
    given = y > 0
    rate = np.clip(given.mean(0), 0.01, 0.99)
    mean_dose = np.array([y[given[:, t], t].mean() if given[:, t].any() else 1.0
                          for t in range(y.shape[1])])
    mean_dose = np.clip(mean_dose, 0.1, 100.0)
    inv_softplus = mean_dose + np.log(-np.expm1(-mean_dose))
    with torch.no_grad():
        for member in model.members:
            member.dose.bias.copy_(torch.as_tensor(np.log(rate / (1 - rate)), dtype=torch.float32))
            member.amount.bias.copy_(torch.as_tensor(inv_softplus, dtype=torch.float32))


def _has_nonfinite(part: ArrayPart) -> bool:
    seq = part.seq.rows if isinstance(part.seq, RowWindows) else part.seq  # each window value is one of its rows
    return not all(np.isfinite(np.asarray(a, dtype=np.float64)).all() for a in (seq, part.now, part.y))


def train_model(model_cfg: ModelConfig, train_cfg: TrainConfig, data: TrainData,
                callback: Callable[[EpochLog], bool | None] | None = None) -> TrainResult:
    """Train a DoseNet; `callback(log)` after every epoch stops training by returning True.

    Never raises for a diverging run (stop_reason "diverged" and `message` say so); raises
    ValueError for arrays that do not match `model_cfg` or an empty train/val part.
    Speed note: on a 2-core CPU that other processes also use, torch's default 2 intra-op
    threads can be 10-100x slower than 1 thread for a model this small (OpenMP threads wait
    on each other); `TrainConfig(threads=1)` avoids that.
    """
    data.train.check(model_cfg, "train")
    data.val.check(model_cfg, "val")
    if len(data.train) == 0 or len(data.val) == 0:
        raise ValueError(f"need at least one training and one validation window, got "
                         f"{len(data.train)} and {len(data.val)}")
    device = pick_device(train_cfg.device)
    devices = [device.index or 0] if device.type == "cuda" else []
    deterministic, threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    fill = torch.utils.deterministic.fill_uninitialized_memory
    np_state = np.random.get_state()
    with torch.random.fork_rng(devices=devices):
        torch.use_deterministic_algorithms(True, warn_only=True)
        # Deterministic mode also fills every new uninitialised tensor with NaN (a debugging aid,
        # not needed for reproducible results): ~8% of the training CPU time (docs/performance.md).
        torch.utils.deterministic.fill_uninitialized_memory = False
        if train_cfg.threads:
            torch.set_num_threads(train_cfg.threads)
        try:
            return _train(model_cfg, train_cfg, data, callback, device)
        finally:
            torch.use_deterministic_algorithms(deterministic)
            torch.utils.deterministic.fill_uninitialized_memory = fill
            torch.set_num_threads(threads)
            np.random.set_state(np_state)


def _new_model(model_cfg: ModelConfig, data: TrainData, device) -> DoseNet:
    """A DoseNet whose heads start at the training dose rate and mean dose and whose bin edges
    come from the training part only (like the scalers)."""
    model = DoseNet(model_cfg)
    _init_head_biases(model, data.train.y)
    if model.bins is not None:
        model.bins.fit(torch.as_tensor(data.train.now, dtype=torch.float32))
    return model.to(device)


class _MemberOutputs(torch.nn.Module):
    """DoseNet.member_outputs as a forward(), the call DistributedDataParallel wraps."""

    def __init__(self, model: DoseNet):
        super().__init__()
        self.model = model

    def forward(self, seq, now, patient):
        return self.model.member_outputs(seq, now, patient)


def _run_epoch(model: DoseNet, opt, train, cfg: TrainConfig, gen: torch.Generator,
               batch_sched=None, ddp=None, ema=None) -> float:
    """One pass over the training part in shuffled batches; the mean training loss (NaN as soon as
    a batch's loss is not finite: the caller stops).

    Under torch.distributed (`ddp` the wrapped model) every rank draws the same shuffle and
    patient dropout from the same generator and takes its own rows of each batch (rank::world),
    so together the ranks step on exactly the batches one process would."""
    seq, now, patient, y = train
    n, device = len(y), y.device
    rank, world = distributed.rank(), distributed.world_size()
    forward = ddp if ddp is not None else model.member_outputs
    model.train()
    perm = torch.randperm(n, generator=gen).to(device)
    total, rows = 0.0, 0
    for i in range(0, n, cfg.batch):
        idx = perm[i:i + cfg.batch]
        # patient dropout teaches the "unknown patient" row of the embedding
        drop = (torch.rand(len(idx), generator=gen) < cfg.patient_dropout).to(device) if cfg.patient_dropout > 0 else None
        if len(idx) < world:  # a last batch too small to give every rank a row: skipped
            continue
        idx = idx[rank::world]
        pb = patient[idx]
        if drop is not None:
            pb = torch.where(drop[rank::world], torch.zeros_like(pb), pb)
        # each member fits the target on its own; their average is only formed to predict
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
            outputs = forward(seq[idx], now[idx], pb)
        loss = sum(dose_loss(amount.float(), logit.float(), y[idx], beta=cfg.huber_beta)
                   for amount, logit in outputs) / len(outputs)
        # (with several ranks every one must take part in each backward: the epoch's loss, summed
        # over the ranks, carries a non-finite value to the divergence check instead)
        if world == 1 and not torch.isfinite(loss):
            return float("nan")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        opt.step()
        if ema is not None:
            ema.update_parameters(model)
        if batch_sched is not None:
            batch_sched.step()
        total, rows = total + loss.item() * len(idx), rows + len(idx)
    total, rows = distributed.all_sum([total, rows])
    return total / max(rows, 1)


def _divergence(log: EpochLog, first_val: float | None) -> str:
    """What went wrong this epoch ("" = nothing): a non-finite loss, or an exploding validation loss."""
    if not (math.isfinite(log.train_loss) and math.isfinite(log.val_loss)):
        return "the loss became NaN or infinite"
    if log.val_loss > DIVERGED_ABS:
        return f"the validation loss exploded to {log.val_loss:.3g} (limit {DIVERGED_ABS:g})"
    if first_val is not None and log.val_loss > max(DIVERGED_RATIO * first_val, 1.0):
        return f"the validation loss exploded to {log.val_loss:.3g}, over {DIVERGED_RATIO:g}x the first epoch's {first_val:.3g}"
    return ""


@dataclass
class _Best:
    """The best epoch so far and a copy of its weights."""
    state: dict
    score: float = math.inf
    epoch: int = 0

    def update(self, score: float, epoch: int, model: DoseNet) -> None:
        if score < self.score:
            self.score, self.epoch, self.state = score, epoch, copy.deepcopy(model.state_dict())


def _diverged_message(epoch: int, what: str, cfg: TrainConfig, data: TrainData, best_epoch: int) -> str:
    hint = (" The input arrays contain NaN or infinite values - clean or impute them."
            if _has_nonfinite(data.train) or _has_nonfinite(data.val)
            else f" Try a lower learning rate (now lr={cfg.lr:g}).")
    kept = (f"Returning the weights of epoch {best_epoch}." if best_epoch
            else "No epoch gave a usable model; returning the untrained weights.")
    return f"Training diverged at epoch {epoch}: {what}.{hint} {kept}"


def _schedulers(opt, cfg: TrainConfig, n_train: int):
    """(per-epoch scheduler stepped on the val loss, per-batch scheduler); one of them is None."""
    if cfg.schedule == "onecycle":
        steps = cfg.epochs * math.ceil(n_train / cfg.batch)
        # div_factor 10: the warm-up starts at lr/10, not the usual lr/25 (fewer epochs of warm-up)
        return None, torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=cfg.lr, total_steps=steps, pct_start=cfg.warmup, div_factor=10.0,
            final_div_factor=100.0, cycle_momentum=False)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.5,
                                                         patience=max(1, cfg.patience // 3))
    return plateau, None


def _train(model_cfg, cfg: TrainConfig, data: TrainData, callback, device) -> TrainResult:
    start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed % 2**32)
    gen = torch.Generator(device="cpu").manual_seed(cfg.seed)  # batch order, patient dropout
    model = _new_model(model_cfg, data, device)
    train, val = data.train.tensors(device), data.val.tensors(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched, batch_sched = _schedulers(opt, cfg, len(data.train))
    ddp = None
    if distributed.active():  # gradients averaged over the ranks after every backward
        from torch.nn.parallel import DistributedDataParallel
        # (the buffers - bin edges, threshold - are fixed during training: synced once, at the start)
        ddp = DistributedDataParallel(_MemberOutputs(model), device_ids=[device.index] if device.type == "cuda" else None,
                                      forward_sync_buffers=False)
    # The weights validated, kept and returned: an exponential moving average of the trained ones
    # (torch's AveragedModel), when asked; it smooths the epoch-to-epoch swings that made the
    # early-stopping pick, and with it a single run's test score, depend on the seed.
    ema = (torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(cfg.ema))
           if cfg.ema else None)
    kept = ema.module if ema is not None else model
    history: list[EpochLog] = []
    best, first_val = _Best(copy.deepcopy(model.state_dict())), None
    stop_reason, message = "max_epochs", ""

    for epoch in range(1, cfg.epochs + 1):
        lr = opt.param_groups[0]["lr"]
        train_loss = _run_epoch(model, opt, train, cfg, gen, batch_sched, ddp, ema)
        # (several ranks: the weights are the same on every rank, so rank 0 validates and tells the rest)
        evaluate = math.isfinite(train_loss) and distributed.rank() == 0
        val_loss, val_mae = _evaluate(kept, val, beta=cfg.huber_beta) if evaluate else (math.nan, math.nan)
        val_loss, val_mae = distributed.broadcast_floats([val_loss, val_mae])
        log = EpochLog(epoch, train_loss, val_loss, val_mae, time.perf_counter() - start, lr)
        history.append(log)
        first_val = val_loss if first_val is None and math.isfinite(val_loss) else first_val
        wrong = _divergence(log, first_val)
        if not wrong:
            best.update(val_mae if cfg.select_on == "val_mae" else val_loss, epoch, kept)
        user_stop = bool(callback(log)) if callback is not None and distributed.rank() == 0 else False
        user_stop = bool(distributed.broadcast_floats([float(user_stop)])[0])

        if wrong:
            stop_reason, message = "diverged", _diverged_message(epoch, wrong, cfg, data, best.epoch)
            break
        if user_stop:
            stop_reason, message = "stopped_by_user", f"Stopped by the user after epoch {epoch}; best epoch {best.epoch}."
            break
        if epoch - best.epoch >= cfg.patience:
            stop_reason = "early_stopping"
            message = (f"Early stopping after epoch {epoch}: no val loss improvement for "
                       f"{cfg.patience} epochs; best epoch {best.epoch}.")
            break
        if sched is not None:
            sched.step(val_loss)
    else:
        message = f"Reached the maximum of {cfg.epochs} epochs; best epoch {best.epoch}."

    model.load_state_dict(best.state)
    model.to("cpu").eval()
    if cfg.tune_threshold and best.epoch:
        tune_threshold(model, data.val)
    if cfg.tune_new_patient_threshold and best.epoch:
        tune_new_patient_threshold(model, data.val)
    return TrainResult(model, history, stop_reason, best.epoch, time.perf_counter() - start, message, best.score)



THRESHOLD_GRID = np.round(np.arange(0.3, 0.701, 0.05), 2)  # a small validation part overfits wider grids


def tune_threshold(model: DoseNet, val: ArrayPart) -> np.ndarray:
    """Per target, the P(dose) threshold with the lowest validation MAE (ties: nearest the default, 0.5).

    Some decision moments carry no dose because it was written down minutes later on a row of
    its own; how sure the model must be before it suggests a dose is a property of the data that
    the validation part can measure, not a constant.
    """
    best = _pick_thresholds(*predict_raw(model, val), val.y, lambda err, y: err.mean())
    with torch.no_grad():
        model.dose_threshold.copy_(torch.as_tensor(best))
    return best


def tune_new_patient_threshold(model: DoseNet, val: ArrayPart) -> np.ndarray:
    """Per target, the P(dose) threshold for new patients (embedding row 0): the lowest validation
    MAE + dose-occasion MAE with every validation row seen through row 0 (ties: nearest 0.5; no
    dose in the part: 0.5). Saved with the weights.

    Why a second threshold and this rule: a patient with no history is where the model misses
    doses. The unknown row is less sure of a dose than a known patient's row, so at 0.5 it missed
    more doses than the pooled gradient boosting on unseen patients (issue 17). MAE alone, as
    `tune_threshold` scores, rewards withholding doses; the sum weighs the missed doses too. Its
    price, measured: more unwanted doses (docs/results.md). A validation part of known patients
    with their identity hidden stands in for new patients; the patients split's validation
    patients are new already.
    """
    unknown = replace(val, patient=np.zeros_like(val.patient))
    best = _pick_thresholds(*predict_raw(model, unknown), val.y,
                            lambda err, y: err.mean() + err[y > 0].mean() if (y > 0).any() else np.nan)
    with torch.no_grad():
        model.new_patient_threshold.copy_(torch.as_tensor(best))
    return best


def _pick_thresholds(amount: np.ndarray, p: np.ndarray, y: np.ndarray, cost) -> np.ndarray:
    """Per target, the THRESHOLD_GRID value with the lowest `cost(|dose - y|, y)` (ties: nearest 0.5;
    a cost that is NaN everywhere, as for a part without a dose, keeps 0.5)."""
    best = np.full(amount.shape[1], DOSE_THRESHOLD, dtype=np.float32)
    for t in range(amount.shape[1]):
        costs = np.array([cost(np.abs(to_dose(amount[:, t], p[:, t], th) - y[:, t]), y[:, t]) for th in THRESHOLD_GRID])
        if np.isnan(costs).all():
            continue
        order = np.lexsort((np.abs(THRESHOLD_GRID - DOSE_THRESHOLD), np.round(costs, 6)))
        best[t] = THRESHOLD_GRID[order[0]]
    return best
