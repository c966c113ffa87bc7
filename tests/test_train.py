"""train_model, predict: learning, early stopping, callback stop, determinism, divergence."""
import copy
import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from insulin_core.models.arrays import ArrayPart, TrainData, predict_raw
from insulin_core.models.model import DEFAULT_SIZES, DoseNet, ModelConfig
from insulin_core.models.dose_rule import to_dose
from insulin_core.models.train import EpochLog, TrainConfig, _evaluate, train_model


L, FS, FN, NP = 4, 3, 2, 3


def synthetic(n: int, seed: int) -> ArrayPart:
    """y = round(2 + 6 * glucose at the last step + 2 * patient) when now[:, 0] > 0.5, else 0."""
    rng = np.random.default_rng(seed)
    seq = rng.random((n, L, FS), dtype=np.float32)
    now = rng.random((n, FN), dtype=np.float32)
    patient = rng.integers(1, NP + 1, n)
    amount = np.round(2 + 6 * seq[:, -1, 0] + 2 * patient)
    y = np.where(now[:, 0] > 0.5, amount, 0.0).astype(np.float32)[:, None]
    return ArrayPart(seq, now, patient, y)


# One network: what these tests check (stopping, callbacks, schedules, precision, reproducibility,
# bad input) is the training loop's, not the ensemble's; the default ensemble is trained where the
# loop's ensemble behaviour is the point (ENSEMBLE below) and end to end in test_cli/test_pipeline.
MC = ModelConfig(n_seq_features=FS, n_now_features=FN, n_patients=NP, window=L, lstm_hidden=16,
                 gru_hidden=8, dense=(16,), dropout=0.0, patient_embedding=2, members=1)
ENSEMBLE = ModelConfig.from_dict(MC.to_dict() | {"members": DEFAULT_SIZES["members"]})
DATA = TrainData(synthetic(384, 1), synthetic(128, 2))
FAST = dict(batch=64, lr=1e-2, patient_dropout=0.0)


def same_history(a, b):
    key = lambda h: (h.epoch, h.train_loss, h.val_loss, h.val_mae, h.lr)  # noqa: E731
    return [key(h) for h in a] == [key(h) for h in b]


def same_weights(m1, m2):
    s1, s2 = m1.state_dict(), m2.state_dict()
    return s1.keys() == s2.keys() and all(torch.equal(s1[k], s2[k]) for k in s1)


@pytest.fixture(scope="module")
def fitted():
    return train_model(MC, TrainConfig(epochs=40, patience=40, **FAST), DATA)


def test_tiny_run_overfits_a_tiny_set(fitted):
    h = fitted.history
    assert fitted.stop_reason == "max_epochs" and len(h) == 40
    assert h[-1].train_loss < 0.3 * h[0].train_loss
    assert min(x.val_loss for x in h) < 0.5 * h[0].val_loss
    zero_mae = float(np.abs(DATA.val.y[:, 0]).mean())  # always predicting "no dose"
    assert fitted.history[fitted.best_epoch - 1].val_mae < 0.5 * zero_mae
    assert all(isinstance(x, EpochLog) for x in h)
    assert [x.epoch for x in h] == list(range(1, 41))
    assert all(b.elapsed_s >= a.elapsed_s for a, b in zip(h, h[1:]))
    assert fitted.seconds >= h[-1].elapsed_s


def test_result_holds_the_best_weights_on_cpu_in_eval_mode(fitted):
    m = fitted.model
    assert not m.training
    assert all(p.device.type == "cpu" for p in m.parameters())
    best = fitted.history[fitted.best_epoch - 1]
    assert best.val_loss == min(x.val_loss for x in fitted.history)
    assert fitted.best_val_loss == best.val_loss
    loss, mae = _evaluate(m, DATA.val.tensors("cpu"), beta=TrainConfig().huber_beta)  # the loss it was trained on
    assert loss == pytest.approx(best.val_loss, rel=1e-5)
    assert mae == pytest.approx(best.val_mae, abs=1e-6)


def test_predict_raw_in_chunks_equals_one_pass(fitted):
    m, part = fitted.model, DATA.val
    amount, p = predict_raw(m, part, batch=50)  # several chunks
    whole_amount, whole_p = predict_raw(m, part)
    assert amount.shape == p.shape == (len(part), 1)
    assert np.allclose(amount, whole_amount, atol=1e-6) and np.allclose(p, whole_p, atol=1e-6)
    assert (amount >= 0).all() and ((p >= 0) & (p <= 1)).all()
    dose = to_dose(amount, p)
    assert np.array_equal(dose, np.round(dose))  # whole units
    assert np.array_equal(dose == 0, ~(p > 0.5) | (np.floor(amount + 0.5) == 0))
    empty = ArrayPart(part.seq[:0], part.now[:0], part.patient[:0], part.y[:0])
    assert predict_raw(m, empty)[0].shape == (0, 1)


def frozen_cfg(patience: int) -> TrainConfig:
    # lr so small that no weight changes in float32: val loss is the same every epoch
    return TrainConfig(epochs=50, patience=patience, batch=128, lr=1e-30, patient_dropout=0.0)


@pytest.mark.parametrize("patience", [2, 4])
def test_early_stopping_respects_patience(patience):
    r = train_model(MC, frozen_cfg(patience), DATA)
    assert r.stop_reason == "early_stopping"
    assert r.best_epoch == 1
    assert len(r.history) == r.best_epoch + patience
    assert "Early stopping" in r.message


def test_early_stopping_when_the_model_starts_to_overfit():
    """Labels are noise: the model memorises the train part and the val loss climbs."""
    rng = np.random.default_rng(5)

    def noise(n):
        y = np.where(rng.random((n, 1)) < 0.5, rng.integers(1, 20, (n, 1)), 0).astype(np.float32)
        return ArrayPart(rng.random((n, L, FS), dtype=np.float32),
                         rng.random((n, FN), dtype=np.float32), rng.integers(0, NP + 1, n), y)

    data = TrainData(noise(64), noise(64))
    r = train_model(MC, TrainConfig(epochs=200, patience=3, batch=16, lr=1e-2,
                                    patient_dropout=0.0), data)
    assert r.stop_reason == "early_stopping"
    assert len(r.history) == r.best_epoch + 3 < 200
    best = r.history[r.best_epoch - 1].val_loss
    assert all(h.val_loss >= best for h in r.history[r.best_epoch:])
    assert r.best_val_loss == best


def test_callback_can_stop_training():
    seen = []

    def cb(log):
        seen.append(log.epoch)
        return True if log.epoch == 3 else None

    r = train_model(MC, TrainConfig(epochs=20, patience=20, **FAST), DATA, callback=cb)
    assert r.stop_reason == "stopped_by_user"
    assert seen == [1, 2, 3] and len(r.history) == 3
    assert 1 <= r.best_epoch <= 3
    assert not r.model.training


def test_callback_returning_false_does_not_stop():
    r = train_model(MC, TrainConfig(epochs=3, patience=10, **FAST), DATA, callback=lambda _: False)
    assert r.stop_reason == "max_epochs" and len(r.history) == 3


def test_same_seed_same_numbers_other_seed_other_numbers():
    """The default ensemble: a seed fixes every member, and the members are not copies of one."""
    cfg = TrainConfig(epochs=3, patience=10, batch=64, seed=7, patient_dropout=0.3)
    mc = ModelConfig.from_dict(ENSEMBLE.to_dict() | {"dropout": 0.2})
    a, b = train_model(mc, cfg, DATA), train_model(mc, cfg, DATA)
    assert same_history(a.history, b.history)
    assert same_weights(a.model, b.model)
    first, second = (m.amount.weight for m in a.model.members[:2])
    assert len(a.model.members) == DEFAULT_SIZES["members"] > 1 and not torch.equal(first, second)
    c = train_model(mc, TrainConfig.from_dict(cfg.to_dict() | {"seed": 8}), DATA)
    assert not same_history(a.history, c.history)
    assert not same_weights(a.model, c.model)


def test_training_leaves_the_callers_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    np.random.seed(9)
    np_expected = np.random.random(2)
    np.random.seed(9)
    train_model(MC, TrainConfig(epochs=1, **FAST), DATA)
    assert torch.equal(torch.rand(3), expected)
    assert np.array_equal(np.random.random(2), np_expected)
    assert not torch.are_deterministic_algorithms_enabled()


def test_threads_option_applies_during_training_only():
    torch.set_num_threads(2)
    try:
        seen = []
        train_model(MC, TrainConfig(epochs=1, threads=1, **FAST), DATA,
                    callback=lambda _: seen.append(torch.get_num_threads()))
        assert seen == [1]
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)


def test_deterministic_mode_does_not_nan_fill_new_tensors_during_training_only():
    # the NaN fill of deterministic mode cost ~8% of the training time (docs/performance.md)
    fill = torch.utils.deterministic.fill_uninitialized_memory
    seen = []
    train_model(MC, TrainConfig(epochs=1, **FAST), DATA,
                callback=lambda _: seen.append(torch.utils.deterministic.fill_uninitialized_memory))
    assert seen == [False]
    assert torch.utils.deterministic.fill_uninitialized_memory == fill


def test_onecycle_warms_up_then_anneals_and_still_learns():
    # ema=0: this checks the schedule; a moving average over 72 steps would still be mostly the first weights.
    # huber_beta=1: "still learns" is judged on the loss it was written for (the L1-like default
    # falls more slowly in 12 epochs of this toy data: 0.66 of the first epoch's instead of < 0.6).
    # The default ensemble: one network's loss falls to 0.62 of the first epoch's in these 12.
    result = train_model(ENSEMBLE, TrainConfig(epochs=12, patience=12, schedule="onecycle", warmup=0.25, ema=0.0,
                                               huber_beta=1.0, **FAST), DATA)
    lrs = [h.lr for h in result.history]  # each epoch's starting learning rate
    peak = lrs.index(max(lrs))
    assert lrs[0] < 0.2 * FAST["lr"] and max(lrs) > 0.8 * FAST["lr"]
    assert all(a < b for a, b in zip(lrs[:peak], lrs[1:peak + 1]))  # warm-up
    assert all(a > b for a, b in zip(lrs[peak:], lrs[peak + 1:]))  # annealing
    assert 2 <= peak <= 4  # a quarter of 12 epochs
    assert result.best_val_loss < 0.6 * result.history[0].val_loss


def test_bf16_autocast_trains_to_float32_weights_and_repeats_itself():
    cfg = TrainConfig(epochs=15, patience=15, precision="bf16", **FAST)
    a, b = train_model(MC, cfg, DATA), train_model(MC, cfg, DATA)
    assert all(p.dtype == torch.float32 for p in a.model.parameters())
    assert a.best_val_loss < 0.6 * a.history[0].val_loss
    assert same_history(a.history, b.history) and same_weights(a.model, b.model)
    fp32 = train_model(MC, TrainConfig(epochs=15, patience=15, **FAST), DATA)
    assert not same_weights(a.model, fp32.model)  # the option does change the arithmetic


def test_huge_learning_rate_diverges_without_raising():
    r = train_model(MC, TrainConfig(epochs=20, patience=20, batch=64, lr=1e6), DATA)
    assert r.stop_reason == "diverged"
    assert "diverged" in r.message and "lower learning rate" in r.message
    assert len(r.history) < 20
    assert not r.model.training


def test_nan_inputs_diverge_with_a_clear_message():
    seq = DATA.train.seq.copy()
    seq[5, 2, 1] = np.nan
    bad = TrainData(ArrayPart(seq, DATA.train.now, DATA.train.patient, DATA.train.y), DATA.val)
    r = train_model(MC, TrainConfig(epochs=5, **FAST), bad)
    assert r.stop_reason == "diverged"
    assert r.best_epoch == 0 and len(r.history) == 1
    assert "NaN" in r.message and "untrained" in r.message
    assert all(torch.isfinite(p).all() for p in r.model.parameters())


def test_bad_shapes_and_patient_indices_are_rejected():
    t = DATA.train
    with pytest.raises(ValueError, match=r"train\.now"):
        train_model(MC, TrainConfig(epochs=1), TrainData(
            ArrayPart(t.seq, t.now[:, :1], t.patient, t.y), DATA.val))
    with pytest.raises(ValueError, match=r"val\.seq"):
        train_model(MC, TrainConfig(epochs=1), TrainData(
            t, ArrayPart(DATA.val.seq[:, 1:], DATA.val.now, DATA.val.patient, DATA.val.y)))
    with pytest.raises(ValueError, match="patient"):
        train_model(MC, TrainConfig(epochs=1), TrainData(
            ArrayPart(t.seq, t.now, t.patient + 5, t.y), DATA.val))
    empty = ArrayPart(t.seq[:0], t.now[:0], t.patient[:0], t.y[:0])
    with pytest.raises(ValueError, match="validation"):
        train_model(MC, TrainConfig(epochs=1), TrainData(t, empty))


def test_multi_target_and_pooled_model_train():
    rng = np.random.default_rng(3)
    mc = ModelConfig(n_seq_features=FS, n_now_features=0, n_patients=0, window=L,
                     lstm_hidden=8, gru_hidden=4, dense=(8,), patient_embedding=0, n_targets=3)

    def part(n):
        y = np.where(rng.random((n, 3)) < 0.5, rng.integers(1, 10, (n, 3)), 0).astype(np.float32)
        return ArrayPart(rng.random((n, L, FS), dtype=np.float32), np.zeros((n, 0), np.float32),
                         np.zeros(n, np.int64), y)

    data = TrainData(part(100), part(40))
    r = train_model(mc, TrainConfig(epochs=2), data)
    assert len(r.history) == 2 and np.isfinite(r.history[-1].val_loss)
    assert predict_raw(r.model, data.val)[0].shape == (40, 3)


@pytest.mark.parametrize("bad, words", [
    (dict(epochs=0), "epochs"),
    (dict(patience=0), "patience"),
    (dict(batch=0), "batch"),
    (dict(lr=0.0), "lr"),
    (dict(lr=-1e-3), "lr"),
    (dict(lr=float("nan")), "lr"),
    (dict(weight_decay=-1.0), "weight_decay"),
    (dict(clip=-1.0), "clip"),
    (dict(seed=-1), "seed"),
    (dict(patient_dropout=1.5), "patient_dropout"),
    (dict(device="gpu"), "device"),
    (dict(threads=-1), "threads"),
    (dict(epochs=10.0), "epochs"),
    (dict(schedule="cosine"), "schedule"),
    (dict(precision="fp16"), "precision"),
    (dict(warmup=1.0), "warmup"),
])
def test_train_config_validation(bad, words):
    with pytest.raises(ValueError, match=words):
        TrainConfig(**bad)


def test_train_config_json_round_trip():
    cfg = TrainConfig(epochs=12, patience=3, batch=512, lr=1e-3, seed=4, device="cpu",
                      patient_dropout=0.0)
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match="unknown TrainConfig keys"):
        TrainConfig.from_dict(cfg.to_dict() | {"epoch": 3})
    # a bundle from before the schedule setting was trained with the plateau schedule
    old = {k: v for k, v in cfg.to_dict().items() if k not in ("schedule", "warmup")}
    assert TrainConfig.from_dict(old).schedule == "plateau"
    # a config saved before the new-patient threshold says it was not tuned (its weights hold none)
    before = {k: v for k, v in cfg.to_dict().items() if k != "tune_new_patient_threshold"}
    assert TrainConfig.from_dict(before).tune_new_patient_threshold is False
    assert TrainConfig.from_dict(cfg.to_dict()).tune_new_patient_threshold is cfg.tune_new_patient_threshold


def test_tune_threshold_picks_the_lowest_validation_mae_and_saves_it_with_the_weights():
    from insulin_core.models.train import THRESHOLD_GRID, tune_threshold

    torch.manual_seed(0)
    cfg = ModelConfig(n_seq_features=3, n_now_features=2, n_patients=2, window=4, lstm_hidden=4, gru_hidden=4,
                      dense=(4,), patient_embedding=2)
    model = DoseNet(cfg).eval()
    rng = np.random.default_rng(0)
    part = ArrayPart(rng.random((200, 4, 3), dtype=np.float32), rng.random((200, 2), dtype=np.float32),
                     rng.integers(0, 3, 200), (rng.random((200, 1)) > 0.5).astype(np.float32) * 3)
    best = tune_threshold(model, part)
    amount, p = predict_raw(model, part)
    mae = {round(float(th), 2): np.abs(np.where(p > th, np.floor(amount + 0.5), 0) - part.y).mean()
           for th in THRESHOLD_GRID}
    assert mae[round(float(best[0]), 2)] == pytest.approx(min(mae.values()))
    assert float(model.state_dict()["dose_threshold"][0]) == pytest.approx(float(best[0]))
    amount, p = predict_raw(model, part)
    dose = to_dose(amount, p, float(model.dose_threshold[0]))
    assert np.abs(dose - part.y).mean() == pytest.approx(min(mae.values()))


def _threshold_setup(doses: bool = True):
    torch.manual_seed(0)
    cfg = ModelConfig(n_seq_features=3, n_now_features=2, n_patients=2, window=4, lstm_hidden=4, gru_hidden=4,
                      dense=(4,), patient_embedding=2)
    rng = np.random.default_rng(0)
    y = (rng.random((200, 1)) > 0.5).astype(np.float32) * 3 if doses else np.zeros((200, 1), np.float32)
    part = ArrayPart(rng.random((200, 4, 3), dtype=np.float32), rng.random((200, 2), dtype=np.float32),
                     rng.integers(1, 3, 200), y)  # every row a known patient's
    return DoseNet(cfg).eval(), part


def test_the_new_patient_threshold_is_the_best_validation_mae_plus_dose_occasion_mae_through_the_unknown_row():
    from insulin_core.models.train import THRESHOLD_GRID, tune_new_patient_threshold

    model, part = _threshold_setup()
    best = tune_new_patient_threshold(model, part)
    amount, p = predict_raw(model, replace(part, patient=np.zeros_like(part.patient)))  # identity hidden
    dose_rows = part.y[:, 0] > 0
    cost = {}
    for th in THRESHOLD_GRID:
        err = np.abs(to_dose(amount[:, 0], p[:, 0], th) - part.y[:, 0])
        cost[round(float(th), 2)] = err.mean() + err[dose_rows].mean()
    assert cost[round(float(best[0]), 2)] == pytest.approx(min(cost.values()))
    assert float(model.new_patient_threshold[0]) == pytest.approx(float(best[0]))
    assert float(model.dose_threshold[0]) == 0.5  # the known patients' threshold is not touched


def test_a_validation_part_without_a_dose_leaves_the_new_patient_threshold_at_one_half():
    from insulin_core.models.train import tune_new_patient_threshold

    model, part = _threshold_setup(doses=False)
    assert tune_new_patient_threshold(model, part).tolist() == [0.5]
    assert float(model.new_patient_threshold[0]) == 0.5


def test_training_picks_the_new_patient_threshold_on_the_validation_part_unless_told_not_to(fitted, monkeypatch):
    from insulin_core.models import train
    from insulin_core.models.train import tune_new_patient_threshold

    again = copy.deepcopy(fitted.model)  # trained with the default config: tuned after the best epoch
    with torch.no_grad():
        again.new_patient_threshold.fill_(0.5)
    assert tune_new_patient_threshold(again, DATA.val)[0] == pytest.approx(float(fitted.model.new_patient_threshold[0]))

    seen = []  # the validation parts it was tuned on
    monkeypatch.setattr(train, "tune_new_patient_threshold", lambda model, val: seen.append(val))
    train_model(MC, TrainConfig(epochs=2, **FAST), DATA)
    assert len(seen) == 1 and seen[0] is DATA.val  # by default: once, on the validation part
    off = train_model(MC, TrainConfig(epochs=2, tune_new_patient_threshold=False, **FAST), DATA)
    assert len(seen) == 1 and float(off.model.new_patient_threshold[0]) == 0.5


def test_training_on_windows_gathered_from_their_rows_equals_training_on_copied_windows():
    """train.py gathers each batch's windows from the rows (TensorWindows); the losses are exactly
    those of the same windows copied out."""
    from insulin_core.prep.windows import RowWindows

    rng = np.random.default_rng(3)
    L, F = DATA.train.seq.shape[1:]  # noqa: N806 (the shapes' usual names)

    def as_rows(part):  # the same windows, written as non-overlapping blocks of rows
        rows = np.asarray(part.seq).reshape(-1, F)
        ends = np.arange(1, len(part) + 1) * L
        return ArrayPart(RowWindows(rows, ends, L), part.now, part.patient, part.y)

    lazy = TrainData(as_rows(DATA.train), as_rows(DATA.val))
    assert np.array_equal(np.asarray(lazy.train.seq), DATA.train.seq)
    cfg = TrainConfig(epochs=3, seed=int(rng.integers(100)), **FAST)
    a, b = train_model(MC, cfg, DATA), train_model(MC, cfg, lazy)
    assert same_history(a.history, b.history)
    assert np.array_equal(predict_raw(a.model, DATA.val)[0], predict_raw(b.model, lazy.val)[0])

