"""Monotone by construction: more glucose now never means less Regular insulin, more exercise now
never more, for ANY weights of the network (not only trained ones), for any window and any moment.

Properties checked with hypothesis over random untrained (and deliberately wild) weights, random
windows, random scalers and random glucose grids, through the predictor and the one dose rule, and
for the conformal interval around the dose; then the features that carry the patient's own sliding
scale, over random histories. The trained model on real moments: tests/test_whatif_real.py.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from insulin_core.data.codes import LEVEL_NAMES
from insulin_core.whatif.rebuild import set_moment
from insulin_core.prep.features import (GLUCOSE_BAND_MGDL, HABIT, N_BANDS, NOW_FEATURES, SEQ_FEATURES, add_features,
                                        meal_inputs, now_roles)
from insulin_core.prep.timeline import build_timeline
from insulin_core.models.intervals import P_DOSE_BANDS, conformal_interval
from insulin_core.models.model import DoseNet, ModelConfig
from insulin_core.models.predictor import InputScaling, NetworkPredictor
from insulin_core.prep.scaling import MinMaxScaler

ROLES = np.array(now_roles())
UP, DOWN, IGNORED = (np.flatnonzero(ROLES == r) for r in ("up", "down", "ignored"))
NOW = {n: i for i, n in enumerate(NOW_FEATURES)}
PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def non_decreasing(x: np.ndarray, axis: int = -1) -> bool:
    """Never falls by more than float32 rounding: two equal rows of one batch may differ in the
    last bits (1 ulp at 64 U is 7.6e-6), so the slack is relative to the value."""
    x = np.asarray(x, dtype=float)
    slack = 1e-6 * np.maximum(1.0, np.abs(x))
    return bool(np.all(np.diff(x, axis=axis) >= -np.delete(slack, -1, axis=axis % x.ndim)))


def wild_network(seed: int, members: int, mono_hidden: int, now_bins: int, attention: bool, embedding: int,
                 scale: float) -> DoseNet:
    """An untrained DoseNet whose every parameter and buffer is redrawn at `scale` (inverse bin
    widths may be negative too): a guarantee must not rest on how training leaves the weights."""
    cfg = ModelConfig(n_seq_features=len(SEQ_FEATURES), n_now_features=len(NOW_FEATURES), n_patients=3, window=4,
                      lstm_hidden=6, gru_hidden=5, dense=(7,), dropout=0.0, patient_embedding=embedding,
                      attention=attention, now_bins=now_bins, members=members, mono_hidden=mono_hidden,
                      now_roles=now_roles())
    net = DoseNet(cfg).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in [*net.parameters(), *(b for b in net.buffers() if b.is_floating_point())]:
            tensor.copy_(torch.randn(tensor.shape, generator=gen) * scale)
        for threshold in (net.dose_threshold, net.new_patient_threshold):  # any gate, known or new patients'
            threshold.uniform_(0.05, 0.95, generator=gen)
    assert cfg.is_monotone
    return net


def moment_rows(rng: np.random.Generator, glucose: np.ndarray) -> np.ndarray:
    """Unscaled moments that differ only where glucose acts: glucose itself, the sliding-scale
    columns rising (by random steps) with it, and the raw same-band history at random."""
    n = len(glucose)
    rows = np.repeat(rng.normal(0, 3, size=(1, len(NOW_FEATURES))), n, axis=0)
    rows[:, NOW["glucose"]] = glucose
    for col in UP:
        if col != NOW["glucose"]:
            rows[:, col] = rows[0, col] + np.cumsum(rng.exponential(1.0, n) * (rng.random(n) < 0.3))
    rows[:, IGNORED] = rng.normal(0, 5, size=(n, len(IGNORED)))  # moves with glucose, any which way
    return rows


def predictor_for(net: DoseNet, rng: np.random.Generator) -> NetworkPredictor:
    def scaler(width):
        low, span = rng.normal(0, 50, width), rng.normal(0, 100, width)  # spans of either sign, some ~0
        return MinMaxScaler(low, low + span)
    return NetworkPredictor(net, InputScaling(scaler(len(SEQ_FEATURES)), scaler(len(NOW_FEATURES)), {7: 1, 8: 2}))


network_settings = dict(seed=st.integers(0, 2**31 - 1), members=st.integers(1, 3), mono_hidden=st.sampled_from([0, 4]),
                        now_bins=st.sampled_from([0, 3]), attention=st.booleans(), embedding=st.sampled_from([0, 2]),
                        scale=st.sampled_from([0.1, 1.0, 5.0]))


@PROPERTY
@given(**network_settings, grid=st.lists(st.floats(10, 600), min_size=2, max_size=25, unique=True),
       patient=st.sampled_from([7, 8, 99]))
def test_the_dose_and_p_dose_never_fall_as_glucose_rises(seed, members, mono_hidden, now_bins, attention, embedding,
                                                          scale, grid, patient):
    net = wild_network(seed, members, mono_hidden, now_bins, attention, embedding, scale)
    rng = np.random.default_rng(seed)
    predictor = predictor_for(net, rng)
    glucose = np.sort(np.asarray(grid))
    seq = np.repeat(rng.normal(0, 2, size=(1, 4, len(SEQ_FEATURES))), len(glucose), axis=0)
    amount, p = predictor.heads_of(seq, moment_rows(rng, glucose), patient)
    assert non_decreasing(amount) and non_decreasing(p), (amount, p)
    dose = predictor.dose_of(amount, p, patient)
    assert non_decreasing(dose), dose
    # the gate flips at most once, from no dose to a dose
    given_ = dose > 0
    assert not np.any(given_[:-1] & ~given_[1:])



@PROPERTY
@given(**network_settings, steps=st.lists(st.floats(0, 5), min_size=2, max_size=8),
       patient=st.sampled_from([7, 99]))
def test_a_patients_larger_or_more_frequent_habit_never_lowers_the_dose(seed, members, mono_hidden, now_bins,
                                                                         attention, embedding, scale, steps, patient):
    """The same moment with the patient's usual dose and dosing share at this day part (HABIT)
    raised step by step: amount, P(dose) and dose never fall, whatever the weights; so the
    cohort's habits (the day part is context) cannot cancel a new patient's own."""
    net = wild_network(seed, members, mono_hidden, now_bins, attention, embedding, scale)
    rng = np.random.default_rng(seed)
    predictor = predictor_for(net, rng)
    rows = np.repeat(moment_rows(rng, np.array([150.0])), len(steps), axis=0)
    habit = [NOW[name] for name in HABIT]
    rows[:, habit] += np.cumsum(steps)[:, None] * rng.uniform(0, 1, len(habit))
    amount, p = predictor.heads_of(np.repeat(rng.normal(size=(1, 4, len(SEQ_FEATURES))), len(steps), axis=0),
                                   rows, patient)
    assert non_decreasing(amount) and non_decreasing(p) and non_decreasing(predictor.dose_of(amount, p, patient)), (amount, p)


def test_every_habit_feature_is_a_rising_input():
    assert all(ROLES[NOW[name]] == "up" for name in HABIT) and len(HABIT) == 6

@PROPERTY
@given(**network_settings, levels=st.lists(st.floats(0, 3), min_size=2, max_size=6, unique=True))
def test_the_dose_never_rises_with_exercise_now(seed, members, mono_hidden, now_bins, attention, embedding, scale, levels):
    net = wild_network(seed, members, mono_hidden, now_bins, attention, embedding, scale)
    rng = np.random.default_rng(seed)
    predictor = predictor_for(net, rng)
    rows = np.repeat(moment_rows(rng, np.array([180.0])), len(levels), axis=0)  # the same moment...
    rows[:, NOW["exercise"]] = np.sort(levels)  # ...with more and more exercise
    amount, p = predictor.heads_of(np.repeat(rng.normal(size=(1, 4, len(SEQ_FEATURES))), len(levels), axis=0), rows, 7)
    assert non_decreasing(-amount) and non_decreasing(-p) and non_decreasing(-predictor.dose_of(amount, p, 7))


@PROPERTY
@given(**network_settings, recorded=st.sampled_from(LEVEL_NAMES), patient=st.sampled_from([7, 99]))
def test_a_larger_meal_never_lowers_the_dose(seed, members, mono_hidden, now_bins, attention, embedding, scale,
                                             recorded, patient):
    """less <= typical <= more, for any weights, through the What-if's own edit (rebuild.set_moment)
    from a moment whatever meal it recorded; "none" (mostly a meal not written down) is free."""
    net = wild_network(seed, members, mono_hidden, now_bins, attention, embedding, scale)
    rng = np.random.default_rng(seed)
    predictor = predictor_for(net, rng)
    moment = set_moment(moment_rows(rng, np.array([180.0])), meal=recorded)
    rows = set_moment(np.repeat(moment, 3, axis=0), meal=np.array(["less", "typical", "more"]))
    amount, p = predictor.heads_of(np.repeat(rng.normal(size=(1, 4, len(SEQ_FEATURES))), 3, axis=0), rows, patient)
    assert non_decreasing(amount) and non_decreasing(p) and non_decreasing(predictor.dose_of(amount, p, patient)), (amount, p)


def test_the_meal_inputs_say_whether_a_meal_is_on_record_and_its_size():
    levels = np.array([0.0, 1.0, 2.0, 3.0, np.nan])  # none, less, typical, more, an unknown word
    found = meal_inputs(levels)
    assert found["has_meal"].tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]
    assert found["meal_size"].tolist() == [2.0, 1.0, 2.0, 3.0, 2.0]
    assert ROLES[NOW["meal_size"]] == "up" and ROLES[NOW["meal"]] == "ignored" and ROLES[NOW["has_meal"]] == "context"


def test_a_plain_network_is_not_monotone_so_the_property_can_fail():
    """The same check on the network without the construction finds falling curves: the
    property tests above would catch a construction that leaks glucose into the free MLP."""
    falling = 0
    for seed in range(20):
        cfg = ModelConfig(n_seq_features=len(SEQ_FEATURES), n_now_features=len(NOW_FEATURES), n_patients=0, window=4,
                          lstm_hidden=4, gru_hidden=4, dense=(8,), now_bins=3, members=1, monotone=False,
                          now_roles=now_roles())
        torch.manual_seed(seed)
        net = DoseNet(cfg).eval()
        rng = np.random.default_rng(seed)
        predictor = NetworkPredictor(net, InputScaling(MinMaxScaler(np.zeros(len(SEQ_FEATURES)), np.ones(len(SEQ_FEATURES))),
                                                       MinMaxScaler(np.zeros(len(NOW_FEATURES)), np.full(len(NOW_FEATURES), 600.0))))
        glucose = np.linspace(10, 600, 40)
        amount, p = predictor.heads_of(np.zeros((40, 4, len(SEQ_FEATURES))), moment_rows(rng, glucose), 0)
        falling += not (non_decreasing(amount) and non_decreasing(p))
    assert not cfg.is_monotone and falling > 0


@PROPERTY
@given(q=st.lists(st.floats(0, 20), min_size=4, max_size=4), amounts=st.lists(st.floats(0, 30), min_size=2, max_size=30),
       ps=st.lists(st.floats(0, 1), min_size=2, max_size=30), round_units=st.booleans(),
       threshold=st.floats(0.05, 0.95))
def test_the_interval_holds_the_dose_and_never_falls_as_the_dose_rises(q, amounts, ps, round_units, threshold):
    """Any calibrated table and any threshold (a known patient's or a new one's): along any path
    where the amount and P(dose) rise (a glucose sweep of a monotone model), neither bound falls
    and the bounds never cross the point dose."""
    n = min(len(amounts), len(ps))
    amount, p = np.sort(amounts[:n]), np.sort(ps[:n])
    table = {"by": "p_dose", "groups": {g: {"q": v} for g, v in zip(P_DOSE_BANDS, q)}}
    dose, low, high = conformal_interval(amount, p, table, threshold, round_units)
    assert np.all(low <= dose) and np.all(dose <= high)
    assert non_decreasing(dose) and non_decreasing(low) and non_decreasing(high), (dose, low, high)


def test_the_interval_widens_a_band_only_where_its_neighbours_need_it():
    """The monotone envelope keeps each band's calibrated width where the widths already rise."""
    table = {"by": "p_dose", "groups": {g: {"q": 2.0} for g in P_DOSE_BANDS}}
    _, low, high = conformal_interval(np.array([10.0]), np.array([0.9]), table, 0.5)
    assert (low[0], high[0]) == (8.0, 12.0)
    table["groups"]["lean_dose"]["q"] = 5.0  # P(dose) 0.5-0.8: wider than the sure band above it
    _, low, high = conformal_interval(np.array([10.0, 10.0]), np.array([0.6, 0.9]), table, 0.5)
    assert high.tolist() == [15.0, 15.0]  # the sure band's top may not fall below the lean band's
    assert low.tolist() == [5.0, 8.0]  # its bottom keeps its own width


# -- the sliding scale features ----------------------------------------------------------------

def history_events(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """One patient's decision moments: a glucose reading and, sometimes, a Regular dose."""
    stamps = pd.Timestamp("1990-01-01 07:00") + pd.to_timedelta(np.sort(rng.choice(24 * 60, n, replace=False)) * 60, "min")
    glucose = rng.uniform(40, 450, n).round()
    dose = np.where(rng.random(n) < 0.7, rng.integers(1, 15, n), 0)
    rows = [dict(patient_id=1, timestamp=t, kind="glucose", value=g, detail="pre_breakfast") for t, g in zip(stamps, glucose)]
    rows += [dict(patient_id=1, timestamp=t, kind="regular", value=float(d), detail="") for t, d in zip(stamps, dose) if d]
    return pd.DataFrame(rows)


def with_moment(events: pd.DataFrame, glucose: float, pid: int) -> pd.DataFrame:
    moment = events["timestamp"].max() + pd.Timedelta(days=1)
    now = pd.DataFrame([dict(patient_id=1, timestamp=moment, kind="glucose", value=glucose, detail="pre_breakfast")])
    return pd.concat([events, now]).assign(patient_id=pid)


def as_events(frame: pd.DataFrame) -> pd.DataFrame:
    from insulin_core.data.aim94 import EVENT_COLUMNS  # the loader's own columns, defaults for the rest

    out = frame.copy()
    for col in EVENT_COLUMNS:
        if col not in out:
            out[col] = {"code": 0, "paper_time": False, "censored": "", "implausible": False}.get(col, "")
    return out[EVENT_COLUMNS]


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(0, 60))
def test_the_sliding_scale_features_never_fall_as_glucose_now_rises(seed, n):
    """For any history, the scale_* columns at a moment rise or stay with its glucose (every band)."""
    rng = np.random.default_rng(seed)
    history = history_events(rng, n) if n else history_events(rng, 1).iloc[:0]
    levels = np.arange(N_BANDS) * GLUCOSE_BAND_MGDL + GLUCOSE_BAND_MGDL / 2
    copies = pd.concat([with_moment(history, g, pid) for pid, g in enumerate(levels, start=1)])
    feats = add_features(build_timeline(as_events(copies)))
    last = feats.groupby("patient_id").tail(1).sort_values("patient_id")
    scale = last[[f"now_{c}" for c in ("scale_last_regular", "scale_median5_regular", "scale_share_dose", "scale_has")]]
    assert non_decreasing(scale.to_numpy(), axis=0), scale
    # where the patient's own band figures already rise, the scale is that band's own figure
    own = last["now_median5_regular_same_band"].to_numpy()
    if non_decreasing(own) and np.all(last["now_has_same_band"].to_numpy() > 0):
        assert np.allclose(last["now_scale_median5_regular"].to_numpy(), own)


# -- bundles saved before the monotone network ------------------------------------------------

OLD_NOW = NOW_FEATURES[:NOW_FEATURES.index("scale_last_regular")]  # the list before issue 17


def test_a_bundle_saved_before_still_loads_predicts_on_its_own_features_and_says_it_is_not_monotone(tmp_path):
    from insulin_core.bundles.registry import load_bundle, save_bundle

    from .test_registry import tiny_meta

    torch.manual_seed(0)
    cfg = ModelConfig(n_seq_features=len(SEQ_FEATURES), n_now_features=len(OLD_NOW), n_patients=3, window=4,
                      lstm_hidden=8, gru_hidden=8, dense=(8,), patient_embedding=2)
    old = cfg.to_dict()
    for key in ("monotone", "mono_hidden", "now_roles"):  # what such a bundle.json holds
        old.pop(key)
    meta = tiny_meta()
    meta["features"]["now"] = list(OLD_NOW)
    meta["scalers"]["now"] = {"low": [0.0] * len(OLD_NOW), "high": [1.0] * len(OLD_NOW)}
    network = DoseNet(ModelConfig.from_dict(old)).eval()
    path = save_bundle(network, meta, "before", tmp_path)
    written = json.loads((path / "bundle.json").read_text())
    written["model_config"] = old  # as a bundle.json of before the monotone network reads
    (path / "bundle.json").write_text(json.dumps(written))
    bundle = load_bundle(path)
    assert not bundle.monotone and not bundle.model.cfg.monotone
    # today's features are wider; the bundle reads the leading columns it was trained on
    rng = np.random.default_rng(0)
    seq, now = rng.random((6, 4, len(SEQ_FEATURES))), rng.random((6, len(NOW_FEATURES)))
    amount, p = bundle.predictor().heads_of(seq, now, 1)
    with torch.no_grad():
        want_amount, want_logit = network(torch.as_tensor(seq, dtype=torch.float32),
                                          torch.as_tensor(now[:, :len(OLD_NOW)], dtype=torch.float32),
                                          torch.ones(6, dtype=torch.long))
    assert np.allclose(amount, want_amount[:, 0].numpy()) and np.allclose(p, torch.sigmoid(want_logit)[:, 0].numpy())


def test_a_bundle_whose_features_are_not_a_prefix_of_todays_is_refused(tmp_path):
    from insulin_core.bundles.registry import BundleError, load_bundle, save_bundle

    from .test_registry import tiny_meta

    meta = tiny_meta()
    meta["features"]["now"] = list(OLD_NOW[1:])  # not the leading columns of today's list
    meta["scalers"]["now"] = {"low": [0.0] * (len(OLD_NOW) - 1), "high": [1.0] * (len(OLD_NOW) - 1)}
    net = DoseNet(ModelConfig(n_seq_features=len(SEQ_FEATURES), n_now_features=len(OLD_NOW) - 1, n_patients=3,
                              window=4, lstm_hidden=4, gru_hidden=4, dense=(4,), patient_embedding=2))
    meta["model_config"] = net.cfg.to_dict()
    with pytest.raises(BundleError, match="feature mismatch"):
        load_bundle(save_bundle(net, meta, "foreign", tmp_path))
