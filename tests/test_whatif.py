"""What-if: scenario edits on events, exactness of the rebuilt features, sweeps, the intervals and
explanations of a bundle through the engine, bounds and the `predict` command. Intervals, safety
flags and explanations on their own: test_intervals.py, test_safety.py, test_explain.py."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from insulin_core.whatif import engine as W
from insulin_core.whatif.rebuild import build
from insulin_core.data.demo_modern import ModernDemoConfig, modern_files
from insulin_core.data.readers.detect import read_files
from insulin_core.prep.features import add_features
from insulin_core.prep.timeline import build_timeline
from insulin_core.prep.windows import WindowConfig, make_windows
from insulin_core.cli import main
from insulin_core.prep.features import GLUCOSE_DRIVEN, N_BANDS, NOW_FEATURES
from insulin_core.models.intervals import P_DOSE_BANDS
from insulin_core.bundles.registry import ModelBundle, save_bundle
from insulin_core.bundles.serving import predict_windows
from ui.whatif import edits_from_widgets

from .whatif_fixtures import L, NOW, SEQ, sample_windows, scenario_at


# -- exactness -------------------------------------------------------------------------------

def test_bounded_tail_gives_the_full_history_features(setup):
    cohort, result, bundle, engine = setup
    ws, idx = sample_windows(result, 6)
    scenarios = [scenario_at(ws, i) for i in idx]
    scenarios += [scenario_at(ws, i, time_of_day=t) for i, t in zip(idx[:4], ["06:30", "12:00", "19:45", "23:10"])]
    scenarios += [scenario_at(ws, idx[5], glucose_now=530.0), W.Scenario(1, "next", time_of_day="07:30")]
    for s in scenarios:
        tail, full = engine.build(s), engine.build(s, bounded=False)
        assert len(tail.events) <= len(full.events)
        assert np.array_equal(tail.ws.seq, full.ws.seq), s
        assert np.array_equal(tail.ws.now, full.ws.now), s
        assert tail.moment == full.moment


@pytest.mark.parametrize("every", [60, 90])
def test_the_bounded_tail_is_exact_on_cgm_data_at_the_models_cadence(every):
    """On pump + CGM data a CGM reading is a decision point only at the model's cadence; the tail
    bound counts decision points the same way, and starts at a clock interval's start. Before, it
    counted every reading (the rebuilt features differed from the pipeline's at 6 of 30 pump-demo
    moments), then could start inside an interval (1 of these 150 moments, at 60 and at 90 min)."""
    events = read_files(modern_files(ModernDemoConfig(patients=3, days=12)), "test").events
    cfg = WindowConfig(length=6, cgm_every=every)
    ws = make_windows(add_features(build_timeline(events)), cfg)  # the pipeline's windows at that cadence
    shorter = 0
    for i in np.random.default_rng(1).choice(len(ws), 150, replace=False):
        s = scenario_at(ws, i)
        mine = events[events["patient_id"] == s.patient_id]
        tail = build(s, mine, cfg)
        shorter += len(tail.events) < len(mine)
        assert np.array_equal(tail.ws.now, ws.now[i:i + 1]) and np.array_equal(tail.ws.seq, ws.seq[i:i + 1]), s
    assert shorter >= 100  # the tail is a bound, not the whole history


def test_unedited_scenario_reproduces_the_pipeline_prediction(setup):
    cohort, result, bundle, engine = setup
    ws, idx = sample_windows(result, 8, seed=1)
    expected = predict_windows(bundle, ws, idx)
    for i, want in zip(idx, expected):
        s = scenario_at(ws, i)
        built = engine.build(s)
        assert np.array_equal(built.ws.seq, ws.seq[i:i + 1]) and np.array_equal(built.ws.now, ws.now[i:i + 1])
        assert engine.predict(s, rebuild=True).dose == want
        pred = engine.predict(s)
        assert pred.dose == want and pred.unedited_dose == want and pred.low <= pred.dose <= pred.high


def test_the_regular_dose_at_the_moment_is_never_an_input(setup):
    cohort, result, bundle, engine = setup
    ws = result.prepared.ws
    i = int(np.flatnonzero(ws.y[:, 0] > 0)[5])
    built = engine.build(scenario_at(ws, i))
    at = built.events[built.events["timestamp"] == built.moment]
    assert not (at["kind"] == "regular").any()


def changed(a: np.ndarray, b: np.ndarray, names) -> set:
    diff = (a != b).reshape(-1, len(names)).any(axis=0)
    return {names[j] for j in np.flatnonzero(diff)}


def test_each_edit_changes_exactly_its_features(setup):
    cohort, result, bundle, engine = setup
    ws = result.prepared.ws
    # a decision point with a glucose reading, no hypo, a typical-or-no meal, no exercise now
    i = next(i for i in range(200, len(ws)) if ws.now[i, NOW["has_glucose"]] > 0 and ws.now[i, NOW["hypo"]] == 0
             and ws.now[i, NOW["exercise"]] == 0 and ws.now[i, NOW["meal"]] == 0)
    base = engine.build(scenario_at(ws, i))
    # glucose now also moves the patient's same-band history and sliding scale (features.GLUCOSE_DRIVEN)
    band = set(GLUCOSE_DRIVEN) - {"has_glucose"} - {n for n in GLUCOSE_DRIVEN if n.startswith("slot_")}
    cases = {"glucose_now": (dict(glucose_now=333.0), {"glucose"} | band),
             "meal_now": (dict(meal_now="more"), {"meal", "has_meal", "meal_size"}),  # none -> more: all three meal inputs
             "exercise_now": (dict(exercise_now="less"), {"exercise"}),
             "hypo_now": (dict(hypo_now=True), {"hypo"})}
    for name, (edit, want) in cases.items():
        b = engine.build(scenario_at(ws, i, **edit))
        got = changed(b.ws.now, base.ws.now, NOW_FEATURES)
        assert "glucose" in got if name == "glucose_now" else got == want, name
        assert got <= want, name
        assert np.array_equal(b.ws.seq, base.ws.seq), name
    # an earlier reading in the window that is not the latest one: only that step's glucose moves
    stamps = base.features["timestamp"].iloc[base.row - L:base.row].reset_index(drop=True)
    has_g = base.ws.seq[0, :, SEQ["has_glucose"]] > 0
    t = int(np.flatnonzero(has_g)[0])
    assert has_g[t + 1:].any(), "need a later reading in the window"
    b = engine.build(scenario_at(ws, i, glucose_readings={stamps[t]: 77.0}))
    assert np.array_equal(b.ws.now, base.ws.now)
    assert np.argwhere(b.ws.seq != base.ws.seq).tolist() == [[0, t, SEQ["glucose"]]]
    assert b.ws.seq[0, t, SEQ["glucose"]] == 77.0
    # exercise earlier on a window row that already is a decision moment
    b = engine.build(scenario_at(ws, i, exercise_earlier={stamps[t]: "more"}))
    assert np.array_equal(b.ws.now, base.ws.now)
    assert np.argwhere(b.ws.seq != base.ws.seq).tolist() == [[0, t, SEQ["exercise"]]]
    # time of day moves the moment within its day and recomputes its time features
    b = engine.build(scenario_at(ws, i, time_of_day="03:15"))
    assert b.moment == base.moment.normalize() + pd.Timedelta("3h15min") and b.day_part == "night"


def test_moment_edits_on_the_cached_history_equal_a_rebuild(setup):
    cohort, result, bundle, engine = setup
    ws, idx = sample_windows(result, 6, seed=2)
    edits = [dict(glucose_now=45.0), dict(glucose_now=280.0, meal_now="none"), dict(meal_now="less", hypo_now=True),
             dict(exercise_now="more", hypo_now=False), dict(glucose_now=600.0, meal_now="typical", exercise_now="none")]
    scenarios = [scenario_at(ws, i, **e) for i, e in zip(idx, edits)]
    scenarios += [W.Scenario(2, "next", glucose_now=190.0, meal_now="typical"), W.Scenario(3, "next", hypo_now=True),
                  scenario_at(ws, idx[0], time_of_day="18:30", glucose_now=150.0)]
    for s in scenarios:
        fast_now = engine._moment_now(engine._base(s), s)
        assert np.array_equal(fast_now, engine.build(s).ws.now), s
        fast, slow = engine.predict(s), engine.predict(s, rebuild=True)
        assert (fast.dose, fast.low, fast.high) == (slow.dose, slow.low, slow.high)
        assert fast.amount == pytest.approx(slow.amount, abs=1e-6)


def test_sweeps_match_one_by_one_predictions(setup):
    cohort, result, bundle, engine = setup
    ws, idx = sample_windows(result, 2, seed=3)
    for s in (scenario_at(ws, idx[0], meal_now="typical"), W.Scenario(4, "next")):
        values = [40.0, 150.0, 222.0, 480.0]
        sweep = engine.sweep_glucose(s, values)
        one = [engine.predict(replace(s, glucose_now=v), rebuild=True) for v in values]
        assert sweep.dose.tolist() == [p.dose for p in one]
        assert sweep.low.tolist() == [p.low for p in one] and sweep.high.tolist() == [p.high for p in one]
        meals = engine.sweep_meal(s)
        assert meals.dose.tolist() == [engine.predict(replace(s, meal_now=m), rebuild=True).dose for m in W.LEVEL_NAMES]
    full = engine.sweep_glucose(s)
    assert len(full.values) == W.SWEEP_POINTS and full.values[0] == 10.0 and full.values[-1] == 600.0


def test_the_pages_answers_in_one_pass_equal_the_answers_asked_apart(setup):
    cohort, result, bundle, engine = setup
    ws, idx = sample_windows(result, 2, seed=5)
    for s in (scenario_at(ws, idx[0], glucose_now=260.0, meal_now="more"), scenario_at(ws, idx[1]),
              W.Scenario(4, "next", hypo_now=True)):
        prediction, glucose, meal, explained = engine.answers(s, points=40)
        apart = engine.predict(s)
        assert (prediction.dose, prediction.low, prediction.high, prediction.unedited_dose) == \
               (apart.dose, apart.low, apart.high, apart.unedited_dose)
        assert prediction.p_dose == pytest.approx(apart.p_dose, abs=1e-6)
        assert [f.kind for f in prediction.flags] == [f.kind for f in apart.flags]
        for one, other in ((glucose, engine.sweep_glucose(s, points=40)), (meal, engine.sweep_meal(s))):
            assert one.values == other.values and one.dose.tolist() == other.dose.tolist()
            assert np.allclose(one.p_dose, other.p_dose, atol=1e-6)
        alone = engine.explain(s)
        assert explained.sentence == alone.sentence
        assert np.allclose(explained.seq.to_numpy(), alone.seq.to_numpy(), atol=1e-5)
        assert list(explained.groups["what"]) == list(alone.groups["what"])


def test_sweep_returns_the_patients_real_doses_for_the_chart(setup):
    cohort, result, bundle, engine = setup
    ws, idx = sample_windows(result, 1, seed=4)
    s = scenario_at(ws, idx[0])
    sweep = engine.sweep_glucose(s, [100.0, 200.0])
    real = sweep.real_doses
    assert set(real.columns) >= {"timestamp", "glucose", "dose", "meal"} and len(real) > 0
    assert (real["timestamp"] < s.at).all()
    near = real.loc[(real["glucose"] - 200).abs() <= 20, "dose"]
    assert sweep.band_median[1] == (near.median() if len(near) else np.nan) or np.isnan(sweep.band_median[1])


# -- intervals -------------------------------------------------------------------------------


def test_calibration_on_the_bundle_and_coverage_on_the_test_part(setup):
    cohort, result, bundle, engine = setup
    table = bundle.meta["conformal"]
    assert table["part"] == "val" and set(table["groups"]) == set(P_DOSE_BANDS) and table["by"] == "p_dose"
    prepared = result.prepared
    cov = bundle.predictor().coverage(prepared.ws, prepared.split.test)
    assert cov["n"] == len(prepared.split.test) and 0 <= cov["coverage"] <= 1
    # a bundle without the table calibrates one on the fly, from its own validation part
    bare = ModelBundle("bare", bundle.model, {k: v for k, v in bundle.meta.items() if k != "conformal"})
    fly = W.WhatIf(bare, cohort.events, cohort.features).conformal
    assert fly["computed_on_the_fly"] and fly["groups"] == table["groups"]


# -- bounds ----------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    (dict(glucose_now=900), "glucose 900 mg/dL is outside the meter range 10-600"),
    (dict(glucose_now=5), "glucose 5 mg/dL is outside the meter range 10-600"),
    (dict(glucose_now="abc"), "must be a number"),
    (dict(glucose_readings={"1991-01-10 08:00": 700}), "outside the meter range"),
    (dict(meal_now="huge"), "meal now must be one of none, less, typical, more"),
    (dict(exercise_earlier={"1991-01-10 08:00": "lots"}), "exercise must be one of"),
    (dict(time_of_day="25:00"), "time_of_day must be HH:MM"),
    (dict(hypo_now="yes"), "hypo_now must be True, False or None"),
    (dict(at="not a time"), "is not a date and time"),
])
def test_bounds_refuse_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        W.Scenario(1, **kwargs)


def test_moments_and_window_edits_are_checked_against_the_data(setup):
    cohort, result, bundle, engine = setup
    with pytest.raises(ValueError, match="Unknown patient 99"):
        engine.predict(W.Scenario(99))
    ev = engine.events_of(1)
    dose_only = ev.groupby("timestamp")["kind"].agg(set)
    stamp = dose_only[dose_only.apply(lambda k: k <= {"regular", "nph", "ultralente"})].index
    at = stamp[0] if len(stamp) else ev["timestamp"].iloc[0] + pd.Timedelta(minutes=1)
    with pytest.raises(ValueError, match="is not a decision point of patient 1"):
        engine.predict(W.Scenario(1, at))
    with pytest.raises(ValueError, match="outside the window"):
        engine.predict(W.Scenario(1, "next", glucose_readings={ev["timestamp"].iloc[0]: 100.0}))


# -- command line ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def saved(setup, tmp_path_factory):
    from insulin_core.data.demo import DemoConfig, write_cohort

    cohort, result, bundle, engine = setup
    root = tmp_path_factory.mktemp("cli")
    write_cohort(root / "data", DemoConfig(patients=5, seed=0))
    save_bundle(bundle.model, bundle.meta, "tiny", root / "models")
    return root


def run_cli(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_predict_happy_path(saved, capsys, setup):
    base = ["predict", "--model", "tiny", "--data-dir", str(saved / "data"), "--models-dir", str(saved / "models")]
    code, out, err = run_cli(capsys, *base, "--patient", "2", "--glucose", "250", "--meal", "typical")
    assert code == 0, err
    assert "Decision dose of Regular" in out and "90% interval" in out and "Unedited:" in out
    code, out, err = run_cli(capsys, *base, "--patient", "2", "--json", "--sweep", "glucose", "--points", "5")
    assert code == 0, err
    data = json.loads(out)
    assert {"dose", "low", "high", "unedited_dose", "flags"} <= set(data) and len(data["sweep"]["curve"]) == 5
    ws = setup[1].prepared.ws
    at = str(ws.context["timestamp"][ws.context["patient_id"] == 3].iloc[10])
    code, out, err = run_cli(capsys, *base, "--patient", "3", "--at", at, "--sweep", "meal")
    assert code == 0 and "typical" in out, err


@pytest.mark.parametrize("extra, message", [
    (["--patient", "1", "--glucose", "900"], "outside the meter range 10-600"),
    (["--patient", "1", "--meal", "huge"], "invalid choice"),
    (["--patient", "77"], "Unknown patient 77"),
    (["--patient", "1", "--at", "1991-01-01 03:00"], "not a decision point"),
])
def test_cli_predict_errors_are_one_line_exit_2(saved, capsys, extra, message):
    base = ["predict", "--model", "tiny", "--data-dir", str(saved / "data"), "--models-dir", str(saved / "models")]
    code, out, err = run_cli(capsys, *base, *extra)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_cli_predict_unknown_model(saved, capsys):
    code, out, err = run_cli(capsys, "predict", "--model", "nope", "--patient", "1", "--models-dir", str(saved / "models"),
                             "--data-dir", str(saved / "data"))
    assert code == 2 and "No model bundle" in err


def test_band_variants_equal_one_rebuild_per_band(setup):
    cohort, result, bundle, engine = setup
    ws, idx = sample_windows(result, 1, seed=8)
    s = scenario_at(ws, idx[0], glucose_readings={})
    base = engine._base(s)
    bands = engine._bands(base)
    for b in (0, 3, 6, 9, N_BANDS - 1):
        g = float(min(b * 40 + 20, 600))
        assert np.array_equal(bands[b], engine.build(replace(s, glucose_now=g)).ws.now[0]), b


# -- the What-if page's widgets become a scenario's edits (ui/whatif.edits_from_widgets) -------

def test_widgets_equal_to_the_record_are_no_edit_and_changes_are():
    import datetime as dt

    stamp = pd.Timestamp("1991-03-05 07:30")
    recorded = {"whatif_glucose_on": True, "whatif_glucose": 150, "whatif_meal": "typical", "whatif_exercise": "none",
                "whatif_hypo": False, "whatif_time": dt.time(8, 0), "whatif_reading_0": 120.0}
    readings = [(0, stamp, 120.0)]
    edits, refused = edits_from_widgets(recorded, {}, readings)
    assert not refused and not any(v for v in edits.values())
    edits, refused = edits_from_widgets(recorded, {"whatif_glucose": 250, "whatif_meal": "less",
                                                   "whatif_time": dt.time(6, 30), "whatif_reading_0": 180.0}, readings)
    assert edits["glucose_now"] == 250.0 and edits["meal_now"] == "less" and edits["time_of_day"] == "06:30"
    assert edits["glucose_readings"] == {stamp: 180.0} and edits["exercise_now"] is None
    assert W.Scenario(3, stamp, **edits).edited


def test_grams_become_the_meal_the_model_reads_only_when_changed():
    import datetime as dt

    stamp = pd.Timestamp("2024-02-04 12:00:27")
    recorded = {"whatif_glucose_on": True, "whatif_glucose": 150, "whatif_meal": "typical", "whatif_exercise": "none",
                "whatif_hypo": False, "whatif_time": dt.time(12, 0), "whatif_carbs_g": 60}
    grams = W.MealGrams(recorded=60.0, usual=50.0)
    assert edits_from_widgets(recorded, {"whatif_carbs_g": 60}, [], grams)[0]["meal_now"] is None  # as recorded
    # 40 g is typical against a usual 50 g: the recorded meal's size, so no edit
    for carbs, meal in ((0, "none"), (30, "less"), (40, None), (80, "more")):
        edits, _ = edits_from_widgets(recorded, {"whatif_carbs_g": carbs}, [], grams)
        assert edits["meal_now"] == meal, carbs
    assert W.Scenario(2, stamp, **edits_from_widgets(recorded, {"whatif_carbs_g": 80}, [], grams)[0]).meal_now == "more"


def test_an_absurd_window_reading_is_refused_and_the_record_kept():
    stamp = pd.Timestamp("1991-03-05 07:30")
    recorded = {"whatif_glucose_on": False, "whatif_glucose": 150, "whatif_meal": "none", "whatif_exercise": "none",
                "whatif_hypo": False, "whatif_time": None, "whatif_reading_0": 120.0}
    edits, refused = edits_from_widgets(recorded, {"whatif_reading_0": 9000.0, "whatif_glucose_on": True}, [(0, stamp, 120.0)])
    assert edits["glucose_readings"] == {} and len(refused) == 1 and "meter range" in refused[0]
    assert edits["glucose_now"] == 150.0  # a reading added where none was recorded


def test_a_scenarios_edits_read_as_english_for_the_saved_table():
    from insulin_core.whatif.scenarios import Scenario

    assert Scenario(1, "next").words() == "as recorded"
    edited = Scenario(1, "next", glucose_now=250, meal_now="less", exercise_now="more", hypo_now=False, time_of_day="07:30",
                      glucose_readings={pd.Timestamp("1991-04-01 12:00"): 140})
    assert edited.words() == ("glucose now 250 mg/dL; a smaller meal than usual now; more exercise than usual now; "
                              "no hypoglycemic symptoms now; moment moved to 07:30; reading of 01 Apr 12:00 at 140 mg/dL")
    assert "_" not in edited.words()


def test_a_prediction_reads_as_one_sentence_with_its_change_and_the_dose_given():
    scenario = W.Scenario(1, "next", glucose_now=250, glucose_readings={pd.Timestamp("1991-04-01 12:00"): 140})
    inputs = {"glucose_now": 250.0, "meal_now": "less", "exercise_now": "none", "hypo_now": False,
              "time": "07:30", "day_part": "breakfast"}
    p = W.Prediction(1, pd.Timestamp("1991-04-02 07:30"), "breakfast", 9.0, 7.0, 12.0, 0.83, 9.2, 6.0, [], inputs, scenario)
    assert p.words(5.0) == ("Scenario: glucose 250 mg/dL, a smaller meal than usual, no exercise, no hypo, 07:30 "
                            "(breakfast), 1 window reading(s) edited -> 9 U of Regular (90% interval 7-12 U), P(dose) 83%; "
                            "unedited 6 U (change +3 U); actually given 5 U.")
    assert p.words().endswith("(change +3 U).") and "no glucose reading" in replace(
        p, inputs={**inputs, "glucose_now": None}).words()


def test_a_patient_new_to_the_model_is_gated_at_its_new_patient_threshold(setup):
    """The same moment through the same weights: as a known patient the dose is gated at the
    model's threshold, as a patient its training never saw at its new-patient threshold, which the
    answer carries (the What-if page names it)."""
    import copy

    import torch

    from insulin_core.models.dose_rule import to_dose

    cohort, result, bundle, _ = setup
    model = copy.deepcopy(bundle.model)
    with torch.no_grad():
        model.dose_threshold.fill_(0.97)
        model.new_patient_threshold.fill_(0.03)
    ws, idx = sample_windows(result, n=1)
    scenario = scenario_at(ws, idx[0])
    unseen = {k: v for k, v in bundle.meta["patient_index"].items() if k != str(scenario.patient_id)}
    answers = {}
    for name, meta in (("known", bundle.meta), ("new", {**bundle.meta, "patient_index": unseen})):
        answers[name] = W.WhatIf(ModelBundle(name, model, meta), cohort.events, cohort.features).predict(scenario)
    known, new = answers["known"], answers["new"]
    assert (known.new_patient, new.new_patient) == (False, True)
    assert (known.threshold, new.threshold) == (pytest.approx(0.97), pytest.approx(0.03))
    for answer in (known, new):
        assert answer.dose == to_dose(np.array([answer.amount]), np.array([answer.p_dose]), answer.threshold)[0]
        assert answer.to_dict()["threshold"] == answer.threshold
