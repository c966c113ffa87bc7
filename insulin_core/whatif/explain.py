"""Occlusion explanations of one predicted dose (Zeiler & Fergus 2014).

The attribution of an input is the expected dose P(dose) x amount minus the expected dose with that
input set to this patient's average moment (over the rebuilt rows before the decision moment).
Single features and domain groups (e.g. a whole glucose reading) are occluded in one batched
forward pass; the groups are described in words for the page and the CLI.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..data.codes import DAY_PARTS, level_name
from ..prep.features import NOW_FEATURES, SEQ_FEATURES
from ..prep.timeline import GLUCOSE_SLOTS
from ..labels import LEVEL_PHRASES
from ..models.predictor import NetworkPredictor
from ..prep.windows import WindowSet

_SEQ = {name: i for i, name in enumerate(SEQ_FEATURES)}
_NOW = {name: i for i, name in enumerate(NOW_FEATURES)}

SEQ_GROUPS = {
    "glucose": ("glucose", "has_glucose"), "regular": ("regular",), "nph": ("nph",), "ultralente": ("ultralente",),
    "hypo": ("hypo",), "meal": ("meal",), "exercise": ("exercise",),
    "timing": ("tod_sin", "tod_cos", *(f"dp_{p}" for p in DAY_PARTS), "log_hours_since_prev", "paper_time"),
}
NOW_GROUPS = {
    "glucose": ("glucose", "has_glucose", *(f"slot_{s}" for s in GLUCOSE_SLOTS)),
    "meal": ("meal",), "exercise": ("exercise",), "hypo": ("hypo",),
    "time": ("tod_sin", "tod_cos", *(f"dp_{p}" for p in DAY_PARTS), "log_hours_since_prev", "paper_time"),
    "recent_glucose": ("glucose_prev", "log_hours_since_glucose"),
    "routine": ("last_regular_same_dp", "has_last_regular_same_dp", "log_age_last_regular_same_dp",
                "median3_regular_same_dp", "median7_regular_same_dp", "share_dose_same_dp"),
    "last_regular": ("last_regular", "log_hours_since_regular"),
    "basal": ("last_nph", "last_ultralente"),
}


@dataclass
class Explanation:
    expected_dose: float  # P(dose) x amount, units: the smooth quantity the attributions explain
    reference_dose: float  # the same for this patient's average moment (every input occluded)
    seq: pd.DataFrame  # (window steps x SEQ_FEATURES) attribution in U; index = row timestamps
    now: pd.Series  # NOW_FEATURES attribution in U
    groups: pd.DataFrame  # domain groups: where, what, description, attribution (U), sorted by |attribution|
    sentence: str


def _expected(predictor: NetworkPredictor, seq: np.ndarray, now: np.ndarray, patient_id: int) -> np.ndarray:
    amount, p = predictor.heads_of(seq, now, patient_id)
    return amount * p


def _references(features: pd.DataFrame, row: int, now_features) -> tuple[np.ndarray, np.ndarray]:
    """This patient's average window row and average decision moment before the decision row."""
    hist = features.iloc[:row]
    seq_ref = hist[[f"seq_{n}" for n in SEQ_FEATURES]].to_numpy(np.float32).mean(axis=0)
    dec = hist[hist["decision_point"]]
    now_ref = (dec if len(dec) else hist)[[f"now_{n}" for n in now_features]].to_numpy(np.float32).mean(axis=0)
    return seq_ref, now_ref


def _occlusions(seq0: np.ndarray, now0: np.ndarray, seq_ref: np.ndarray, now_ref: np.ndarray):
    """The batch: the input itself, each feature occluded, each group occluded, all occluded; and
    one label (kind, step, feature or group) per row."""
    L, Fs = seq0.shape
    seqs, nows, labels = [seq0], [now0], [("all", None, None)]
    for t in range(L):
        for f in range(Fs):
            s = seq0.copy(); s[t, f] = seq_ref[f]; seqs.append(s); nows.append(now0); labels.append(("seq", t, f))
    for f in range(len(now0)):
        n = now0.copy(); n[f] = now_ref[f]; seqs.append(seq0); nows.append(n); labels.append(("now", None, f))
    for t in range(L):
        for g, names in SEQ_GROUPS.items():
            idx = [_SEQ[x] for x in names]
            s = seq0.copy(); s[t, idx] = seq_ref[idx]; seqs.append(s); nows.append(now0); labels.append(("seq_group", t, g))
    for g, names in NOW_GROUPS.items():
        idx = [_NOW[x] for x in names]
        n = now0.copy(); n[idx] = now_ref[idx]; seqs.append(seq0); nows.append(n); labels.append(("now_group", None, g))
    seqs.append(np.broadcast_to(seq_ref, seq0.shape).copy()); nows.append(now_ref); labels.append(("reference", None, None))
    return np.stack(seqs), np.stack(nows), labels


@dataclass
class OcclusionBatch:
    """The rows to predict for an explanation (the input, each feature and group occluded, all
    occluded) and what turns their expected doses into one."""
    seqs: np.ndarray  # (n, L, F) unscaled
    nows: np.ndarray  # (n, F) unscaled
    labels: list  # (kind, step, feature or group) per row
    features: pd.DataFrame
    row: int
    now_features: tuple


def occlusion_batch(features: pd.DataFrame, row: int, ws: WindowSet, now: np.ndarray) -> OcclusionBatch:
    """The occlusions of the decision row `row` of `features` (its window `ws`, its now-vector
    `now`, unscaled and possibly edited), each input set to this patient's average before it."""
    seq_ref, now_ref = _references(features, row, ws.now_features)
    seqs, nows, labels = _occlusions(ws.seq[0], np.asarray(now, np.float32)[0], seq_ref, now_ref)
    return OcclusionBatch(seqs, nows, labels, features, row, tuple(ws.now_features))


def explain_occlusion(predictor: NetworkPredictor, features: pd.DataFrame, row: int, ws: WindowSet, now: np.ndarray,
                      patient_id: int, top: int = 2) -> Explanation:
    """Occlusion of one decision row: attribution of an input = expected dose - expected dose
    with that input set to this patient's average (one forward pass of the whole batch)."""
    batch = occlusion_batch(features, row, ws, now)
    return explanation_of(batch, _expected(predictor, batch.seqs, batch.nows, patient_id), top)


def explanation_of(batch: OcclusionBatch, expected: np.ndarray, top: int = 2) -> Explanation:
    """The explanation from the expected doses (P(dose) x amount) of the batch's rows, in order."""
    seq0, now0, features, row = batch.seqs[0], batch.nows[0], batch.features, batch.row
    L, Fs = seq0.shape
    full = float(expected[0])
    delta = full - expected
    decision = features.iloc[row]
    # the window's rows as plain values, read once (a row read per occlusion cost ~10 ms a call)
    window = features[["timestamp", "day_part"]].iloc[row - L:row]
    stamps, window_rows = window["timestamp"].to_numpy(), window.to_dict("records")
    seq_attr = np.zeros((L, Fs)); now_attr = np.zeros(len(now0)); rows = []
    for (kind, t, f), d in zip(batch.labels, delta):
        if kind == "seq":
            seq_attr[t, f] = d
        elif kind == "now":
            now_attr[f] = d
        elif kind == "seq_group":
            rows.append({"where": pd.Timestamp(stamps[t]), "what": f, "attribution": float(d),
                         "description": _describe_seq(f, window_rows[t], seq0[t])})
        elif kind == "now_group":
            rows.append({"where": "now", "what": f, "attribution": float(d),
                         "description": _describe_now(f, now0, decision)})
    groups = pd.DataFrame(rows)
    # ranked to 1e-4 U, ties kept in window order: float noise between a batched and a single
    # pass (a monotone network gives many near-zero attributions) must not reorder the list
    size = groups["attribution"].abs().round(4)
    groups = groups.reindex(size.sort_values(ascending=False, kind="stable").index).reset_index(drop=True)
    sentence = _sentence(full, float(expected[-1]), groups, top)
    return Explanation(full, float(expected[-1]), pd.DataFrame(seq_attr, index=pd.DatetimeIndex(stamps), columns=list(SEQ_FEATURES)),
                       pd.Series(now_attr, index=list(batch.now_features)), groups, sentence)


def _describe_seq(group: str, row: dict, x: np.ndarray) -> str:
    when = f"{row['timestamp']:%a %d %b %H:%M}"
    if group == "glucose":
        return f"the {x[_SEQ['glucose']]:.0f} mg/dL reading at {when}" if x[_SEQ["has_glucose"]] > 0 else f"no glucose reading at {when}"
    if group in ("regular", "nph", "ultralente"):
        name = {"regular": "Regular", "nph": "NPH", "ultralente": "UltraLente"}[group]
        v = x[_SEQ[group]]
        return f"the {v:g} U {name} dose at {when}" if v > 0 else f"the missed {name} dose at {when} ({row['day_part']})"
    if group in ("meal", "exercise"):
        v = level_name(x[_SEQ[group]])
        return f"no {group} recorded at {when}" if v == "none" else f"{LEVEL_PHRASES[group].get(v, v)} at {when}"
    if group == "hypo":
        return f"hypoglycemic symptoms at {when}" if x[_SEQ["hypo"]] > 0 else f"no hypoglycemic symptoms at {when}"
    return f"the timing of the {when} entry"


def _describe_now(group: str, now: np.ndarray, decision: pd.Series) -> str:
    """`decision`: the decision row of the features (its timestamp is the moment)."""
    def n(name):
        return float(now[_NOW[name]])

    def ago(log_h):
        return f"{math.expm1(log_h):.0f} h ago"
    part = decision["day_part"]
    if group == "glucose":
        return f"the {n('glucose'):.0f} mg/dL reading now" if n("has_glucose") > 0 else "no glucose reading now"
    if group in ("meal", "exercise"):
        return f"{LEVEL_PHRASES[group].get(level_name(n(group)), level_name(n(group)))} now"
    if group == "hypo":
        return "hypoglycemic symptoms now" if n("hypo") > 0 else "no hypoglycemic symptoms now"
    if group == "time":
        return f"the time of day ({decision['timestamp']:%H:%M}, {part})"
    if group == "recent_glucose":
        return f"the previous reading ({n('glucose_prev'):.0f} mg/dL, {ago(n('log_hours_since_glucose'))})"
    if group == "routine":
        if n("has_last_regular_same_dp") <= 0:
            return f"no earlier {part} Regular dose on record"
        return (f"their usual {part} dose (last {n('last_regular_same_dp'):g} U, "
                f"median {n('median7_regular_same_dp'):g} U)")
    if group == "last_regular":
        return f"the last Regular dose ({n('last_regular'):g} U, {ago(n('log_hours_since_regular'))})"
    return f"the basal insulin (last NPH {n('last_nph'):g} U, UltraLente {n('last_ultralente'):g} U)"


def _sentence(expected: float, reference: float, groups: pd.DataFrame, top: int) -> str:
    if groups.empty or groups["attribution"].abs().max() < 0.05:
        return (f"Expected dose {expected:.1f} U, close to this patient's average moment ({reference:.1f} U); "
                "no single input moves it by more than 0.05 U.")
    picked = groups.head(top)
    parts = [f"{r.description} ({r.attribution:+.1f} U)" for r in picked.itertuples()]
    return (f"Expected dose {expected:.1f} U vs {reference:.1f} U for this patient's average moment: mostly "
            + " and ".join(parts) + ".")
