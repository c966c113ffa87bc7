"""What a valid model bundle is: one schema, checked once, for every way a bundle is read.

`check_meta` turns the bytes of `bundle.json` into a checked dict; `check_weights` turns the bytes
of `weights.pt` into a DoseNet that fits that meta. Anything wrong becomes a `BundleError` with a
plain message naming the field, never a traceback from deep inside a page or the CLI.

- The top-level fields are a pydantic v2 model (strict types: no "3" for 3, no true for 1). Keys
  this code does not know are allowed (a newer bundle may carry more); known keys are type-checked.
- The config sub-dicts (model, train, window, experiment) are checked by the config classes
  themselves (their `from_dict`, their `__post_init__` ranges, their annotated field types via
  pydantic), so a field added to a config is checked here without editing this file.
- Numbers the model computes with must be finite: weights, scalers, the P(dose) threshold (strictly
  between 0 and 1: at 0 or below every row gets a dose, e.g. 2 U at 40 mg/dL). Reported figures
  (metrics, history) may be NaN: a metric over zero rows is NaN, and it only ever gets displayed.
"""
from __future__ import annotations

import io
import json
from typing import Annotated, Any

import numpy as np
import torch
from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError,
                      model_validator)

from ..errors import NAME_REGEX, BundleError  # noqa: F401 (defined torch-free for the pages; still importable from here)
from ..prep.features import NOW_FEATURES, SEQ_FEATURES
from ..models.intervals import P_DOSE_BANDS
from ..configs import MAX_PATIENTS, ModelConfig, TrainConfig, check_keys
from ..models.model import DoseNet, upgraded_state
from ..evaluation.pipeline import ExperimentConfig
from ..prep.splits import SPLITS
from ..prep.windows import WindowConfig

FORMAT_VERSION = 1


def _config(cls):
    """A validator that checks a config dict with the config class's own rules, and keeps the dict."""
    adapter = TypeAdapter(cls)

    def check(d: dict) -> dict:
        check_keys(cls, d)  # the dataclass fields are the key list: nothing frozen here
        # strict JSON mode: field types from the dataclass annotations, lists accepted for tuples
        adapter.validate_json(json.dumps(d), strict=True)
        try:
            cls.from_dict(d) if hasattr(cls, "from_dict") else cls(**d)
        except (TypeError, KeyError) as exc:  # pydantic reports only ValueErrors as field errors
            raise ValueError(f"{cls.__name__}: {exc}") from None
        return d

    return AfterValidator(check)


def _known_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
    return split


ModelConfigDict = Annotated[dict[str, Any], _config(ModelConfig)]
TrainConfigDict = Annotated[dict[str, Any], _config(TrainConfig)]
WindowConfigDict = Annotated[dict[str, Any], _config(WindowConfig)]
ExperimentDict = Annotated[dict[str, Any], _config(ExperimentConfig),
                          AfterValidator(lambda d: {**d, "split": _known_split(d["split"])})]

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
Count = Annotated[int, Field(ge=0)]
Width = Annotated[float, Field(ge=0)]  # units; infinity = "too few rows to calibrate" (intervals.py)
Reported = float | None  # a metric: NaN over zero rows, null when not computed
Scalar = float | int | str | bool | None
ShortText = Annotated[str, StringConstraints(max_length=1000)]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")


class Scaler(_Strict):
    low: list[FiniteFloat]
    high: list[FiniteFloat]

    @model_validator(mode="after")
    def bounds_pair_up(self):
        if len(self.low) != len(self.high):
            raise ValueError(f"low has {len(self.low)} values, high {len(self.high)}")
        if any(lo > hi for lo, hi in zip(self.low, self.high)):
            raise ValueError("a low bound is above its high bound")
        return self


class Scalers(_Strict):
    seq: Scaler
    now: Scaler


class Features(_Strict):
    seq: list[str]
    now: list[str]
    targets: list[str] = []


class ConformalGroup(_Strict):
    q: Width
    n: Count
    pooled_fallback: bool


def _known_groups(groups: dict) -> dict:
    # P(dose) bands (intervals.P_DOSE_BANDS), or the dose / no-dose pair of earlier bundles
    if set(groups) not in ({"no_dose", "dose"}, set(P_DOSE_BANDS)):
        raise ValueError(f"conformal groups must be {', '.join(P_DOSE_BANDS)} (or no_dose, dose), got {sorted(groups)}")
    return groups


class Conformal(_Strict):
    alpha: Annotated[float, Field(gt=0, lt=1)]
    n: Count
    pooled: Width
    groups: Annotated[dict[str, ConformalGroup], AfterValidator(_known_groups)]


class Data(_Strict):
    source: ShortText = ""
    fingerprint: ShortText | None = None
    synthetic: bool | None = None  # absent in bundles saved before it was recorded (provenance.py)
    patients: Count | None = None
    format: ShortText = "AIM94"  # the reader's name; absent in bundles saved before other formats were read


class BundleMeta(_Strict):
    """The known fields of bundle.json. An optional field may be absent, never null: the pages
    read them with `meta.get(key, {})`. `model_config` is pydantic's own attribute name, so the
    bundle's field is read by alias."""
    model_config = ConfigDict(strict=True, extra="allow", protected_namespaces=())

    format_version: int
    name: Annotated[str, StringConstraints(pattern=f"^{NAME_REGEX}$")] = None
    model_cfg: ModelConfigDict = Field(alias="model_config")
    window: WindowConfigDict
    experiment: ExperimentDict = None
    train_config: TrainConfigDict = None
    split: Annotated[str, AfterValidator(_known_split)] = None
    features: Features
    scalers: Scalers
    patient_index: dict[Annotated[str, StringConstraints(pattern=r"^[0-9]{1,9}$")],
                        Annotated[int, Field(ge=1, le=MAX_PATIENTS)]]
    history: list[dict[str, Scalar]] = []
    stop_reason: ShortText = ""
    best_epoch: Count = None
    metrics: dict[str, dict[str, Reported]] = {}
    metrics_extra: dict[str, dict[str, Scalar]] = {}
    seconds: dict[str, float] = {}
    conformal: Conformal = None
    sizes: dict[str, Count] = {}
    data: Data = None
    versions: dict[str, str] = {}
    created: ShortText = ""


def _plain(exc: ValidationError) -> str:
    """pydantic's report as one line: `field.path: what is wrong` for the first few problems."""
    parts = []
    for err in exc.errors()[:3]:
        where = ".".join(str(p) for p in err["loc"]) or "top level"
        parts.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def check_meta(raw: bytes, label: str) -> dict:
    """The parsed, checked `bundle.json`; BundleError naming the first problems otherwise."""
    try:
        meta = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # bad JSON, not UTF-8, a 5000-digit int, deep nesting
        raise BundleError(f"{label}: bundle.json is not valid JSON ({_first_line(exc)})") from None
    if not isinstance(meta, dict):
        raise BundleError(f"{label}: bundle.json is not a JSON object")
    version = meta.get("format_version")
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise BundleError(f"{label}: bundle format version {version!r}, this code reads version {FORMAT_VERSION}")
    try:
        checked = BundleMeta.model_validate(meta)
    except ValidationError as exc:
        raise BundleError(f"{label}: bundle.json is invalid: {_plain(exc)}") from None
    _check_features(checked, label)
    return meta


def _check_features(meta: BundleMeta, label: str) -> None:
    """The bundle's feature lists must be the ones this code computes, in the same order, and the
    model config and scalers must have as many inputs as the lists name."""
    seq, now = meta.features.seq, meta.features.now
    if seq != list(SEQ_FEATURES):
        raise BundleError(f"{label}: feature mismatch: the bundle's sequence features differ from this code's "
                          f"({_diff(seq, SEQ_FEATURES)})")
    # A bundle saved before features were appended reads the leading columns it knows (the
    # predictor passes it exactly those); any other difference is a different feature set.
    if now and now != list(NOW_FEATURES[:len(now)]):
        raise BundleError(f"{label}: feature mismatch: the bundle's decision-moment features differ from this "
                          f"code's ({_diff(now, NOW_FEATURES)})")
    cfg = meta.model_cfg
    if cfg["n_seq_features"] != len(seq) or cfg["n_now_features"] != len(now):
        raise BundleError(f"{label}: model config expects {cfg['n_seq_features']}+{cfg['n_now_features']} "
                          f"features, the bundle lists {len(seq)}+{len(now)}")
    for part, names in (("seq", seq), ("now", now)):
        if len(getattr(meta.scalers, part).low) != len(names):
            raise BundleError(f"{label}: the {part} scaler does not match its {len(names)} features")
    rows = max(meta.patient_index.values(), default=0)
    if rows > cfg["n_patients"]:
        raise BundleError(f"{label}: patient_index uses embedding row {rows}, the model has {cfg['n_patients']}")


def _diff(got, want) -> str:
    extra = [f for f in got if f not in want]
    missing = [f for f in want if f not in got]
    if not extra and not missing:
        return "same names, different order"
    return f"unknown: {extra[:5]}, missing: {missing[:5]}"


def check_weights(raw: bytes, meta: dict, label: str) -> DoseNet:
    """The model of a checked meta with the weights in `raw`, in eval mode; BundleError otherwise."""
    try:
        # weights_only: a pickle that would build any object but tensors is refused, never run
        state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for empty, truncated or foreign files
        raise BundleError(f"{label}: weights.pt is corrupt or not a plain weights file "
                          f"(refused to unpickle anything else): {_first_line(exc)}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BundleError(f"{label}: weights.pt does not hold a state dict of tensors")
    model = DoseNet(ModelConfig.from_dict(meta["model_config"]))
    try:
        model.load_state_dict(upgraded_state(state), strict=True)
    except RuntimeError as exc:
        raise BundleError(f"{label}: weights do not fit the model config: {_first_line(exc, 300)}") from None
    check_state(model, label)
    return model.eval()


def check_state(model: DoseNet, label: str) -> None:
    """Finite weights and P(dose) thresholds strictly between 0 and 1 (NaN weights predict
    '0 U, P(dose) nan' with no safety flag).

    The checks read numpy views of the tensors and run no torch kernel: torch's intra-op thread
    pool is not fork-safe, and a process that loaded a model (starting the pool) and then forked
    hung for good in the child's first parallel kernel, here `torch.isfinite` in save_bundle
    (issue 18; tests/fork_save.py)."""
    for key, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not _all_finite(tensor):
            raise BundleError(f"{label}: weights hold NaN or infinite values ({key})")
    for name, buffer in (("dose threshold", model.dose_threshold), ("new-patient threshold", model.new_patient_threshold)):
        threshold = np.array(buffer.detach().cpu().tolist(), dtype=float).reshape(-1)  # any dtype, no kernel
        if not bool(((threshold > 0) & (threshold < 1)).all()):
            raise BundleError(f"{label}: the {name} must be strictly between 0 and 1, got "
                              f"{[round(float(t), 4) for t in threshold]}")


def _all_finite(tensor: torch.Tensor) -> bool:
    """Every value finite, read through numpy (no torch kernel; see check_state). numpy has no
    bfloat16: its bits are read instead (all exponent bits set = inf or NaN)."""
    t = tensor.detach().cpu()
    if t.dtype == torch.bfloat16:
        bits = t.contiguous().view(torch.int16).numpy()
        return bool(((bits & 0x7F80) != 0x7F80).all())
    return bool(np.isfinite(t.numpy()).all())


def _first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an error message; the type when the message is empty (e.g. EOFError())."""
    lines = str(exc).strip().splitlines()
    return lines[0][:limit] if lines else type(exc).__name__
