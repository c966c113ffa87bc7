"""Baselines on hand-built WindowSet-like objects (no dependency on windows.py)."""
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from insulin_core.models.baselines import BASELINES, make_baseline

DAY_PARTS = ("morning", "afternoon", "evening", "night")
ALL = list(BASELINES)


def make_ws(n=1600, n_patients=6, L=3, seed=0, target="scale"):
    """Synthetic windows. now = [glucose, dose_flag, noise]; seq = noise with a few NaNs.

    target "scale": dose = flag * (glucose // 50 + offset[patient]), an exact integer sliding
    scale with about half the moments dose-free; "linear": a noisy linear function of now.
    """
    rng = np.random.default_rng(seed)
    pid = rng.integers(1, n_patients + 1, n)
    glucose = rng.uniform(60, 400, n)
    flag = (rng.random(n) < 0.5).astype(float)
    noise = rng.normal(size=n)
    if target == "scale":
        offset = np.arange(n_patients + 2) % 4  # patient 1 -> 1, 2 -> 2, ...
        y = flag * (glucose // 50 + offset[pid])
    else:
        y = np.clip(1 + 0.03 * glucose + 1.5 * noise + rng.normal(0, 0.3, n), 0, None)
    seq = rng.normal(size=(n, L, 4)).astype(np.float32)
    seq[rng.random(seq.shape) < 0.05] = np.nan
    now = np.column_stack([glucose, flag, noise]).astype(np.float32)
    context = pd.DataFrame({
        "patient_id": pid,
        "timestamp": pd.Timestamp("1990-01-01") + pd.to_timedelta(np.arange(n), unit="h"),
        "day_part": rng.choice(DAY_PARTS, n),
        "glucose_now": glucose,
        "glucose_band": (glucose // 40).astype(int),
        "prev_row_regular": np.roll(y, 1),
        "last_regular_same_daypart": np.where(rng.random(n) < 0.1, np.nan, np.roll(y, 7)),
    })
    return SimpleNamespace(seq_rows=seq, now=now, y=y.astype(np.float32)[:, None], context=context, patient_id=pid,
                           seq_features=("a", "b", "c", "d"), now_features=("glucose", "flag", "noise"))


@pytest.fixture(scope="module", autouse=True)
def one_openmp_thread():
    """Tiny data gains nothing from threads, and OpenMP spin-waiting on a CPU shared with other
    test runs made this file 5-8x slower; one thread keeps it fast and steady."""
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="module")
def ws():
    return make_ws(n=600, seed=1)


@pytest.fixture(scope="module")
def scale_ws():
    return make_ws(n=2400, seed=2)


def test_registry_order_and_metadata():
    assert ALL == ["previous_row", "last_same_daypart", "sliding_scale", "ridge", "gbm", "two_stage_gbm", "gbm_monotone",
                   "two_stage_gbm_monotone"]
    for name, cls in BASELINES.items():
        assert cls.name == name and cls.description
    with pytest.raises(ValueError, match="Unknown baseline"):
        make_baseline("nope")


@pytest.mark.parametrize("name", ALL)
def test_shapes_nonnegative_finite_deterministic(name, ws):
    train, test = np.arange(450), np.arange(450, 600)
    a = make_baseline(name).fit(ws, train)
    assert a.fit(ws, train) is a
    p = a.predict(ws, test)
    assert p.shape == (150,) and np.all(np.isfinite(p)) and np.all(p >= 0)
    q = make_baseline(name).fit(ws, train).predict(ws, test)
    np.testing.assert_array_equal(p, q)
    assert a.predict(ws, np.array([], dtype=int)).shape == (0,)
    mask = np.zeros(len(ws.y), dtype=bool)
    mask[test] = True
    np.testing.assert_array_equal(a.predict(ws, mask), p)


CONTEXT_COLUMNS = {"previous_row": "prev_row_regular", "last_same_daypart": "last_regular_same_daypart"}


def _relabelled(ws, old: int, new: int):
    pid = ws.context["patient_id"].to_numpy()
    pid = np.where(pid == old, new, pid)
    return SimpleNamespace(**{**vars(ws), "context": ws.context.assign(patient_id=pid), "patient_id": pid})


@pytest.mark.parametrize("name", ALL)
def test_unseen_patient_at_predict_time(name, ws):
    """Patient 6 is left out of training. The context baselines read their column as for anyone (a
    missing dose as 0); the sliding scale falls back to the training part's day-part median; the
    learners predict patient 6 as no patient in particular: as another unseen id, unlike each
    training patient, and within 1 U of its own sliding scale (only its offset is new)."""
    pid = ws.context["patient_id"].to_numpy()
    train, test = np.flatnonzero(pid != 6), np.flatnonzero(pid == 6)
    model = make_baseline(name).fit(ws, train)
    p = model.predict(ws, test)
    if name in CONTEXT_COLUMNS:
        column = ws.context[CONTEXT_COLUMNS[name]].to_numpy(dtype=float)[test]
        np.testing.assert_array_equal(p, np.where(np.isnan(column), 0.0, column))
        return
    if name == "sliding_scale":
        part = ws.context["day_part"].to_numpy()
        median = {d: float(np.median(ws.y[train[part[train] == d], 0])) for d in DAY_PARTS}
        np.testing.assert_array_equal(p, [median[d] for d in part[test]])
        return
    np.testing.assert_array_equal(model.predict(_relabelled(ws, 6, 99), test), p)
    for seen in range(1, 6):
        assert not np.array_equal(model.predict(_relabelled(ws, 6, seen), test), p), seen
    assert np.abs(p - ws.y[test, 0]).mean() < 1.0


@pytest.mark.parametrize("name", ALL)
def test_predict_before_fit_and_empty_fit(name, ws):
    with pytest.raises(RuntimeError, match="fit"):
        make_baseline(name).predict(ws, np.arange(3))
    with pytest.raises(ValueError, match="empty"):
        make_baseline(name).fit(ws, np.array([], dtype=int))


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("fill", [0.0, 4.0])
def test_degenerate_training_parts(name, fill):
    """A training part of one dose only (all 0, all 4 U): every baseline that learns gives that dose
    everywhere (the two-stage model through its constant P(dose) of 0 or 1); the context baselines
    learn nothing and read their column."""
    ws = make_ws(n=80, seed=3)
    ws.y[:] = fill
    p = make_baseline(name).fit(ws, np.arange(60)).predict(ws, np.arange(60, 80))
    if name in CONTEXT_COLUMNS:
        column = ws.context[CONTEXT_COLUMNS[name]].to_numpy(dtype=float)[60:]
        expected = np.where(np.isnan(column), 0.0, column)
        assert len(np.unique(expected)) > 1  # the column, not the training doses
    else:
        expected = np.full(20, fill)
    np.testing.assert_allclose(p, expected, rtol=0, atol=1e-9)


def _hand_ws(context, y):
    n = len(context)
    return SimpleNamespace(seq_rows=np.zeros((n, 2, 1), np.float32), now=np.zeros((n, 1), np.float32),
                           y=np.asarray(y, np.float32)[:, None], context=context,
                           seq_features=("x",), now_features=("x",))


def test_context_baselines_return_the_context_columns():
    ctx = pd.DataFrame({"patient_id": [1, 1, 2, 2], "day_part": ["morning"] * 4, "glucose_band": [3] * 4,
                        "prev_row_regular": [3.5, 0.0, np.nan, 12.0],
                        "last_regular_same_daypart": [np.nan, 7.0, 2.5, 0.0]})
    ws = _hand_ws(ctx, [1, 2, 3, 4])
    idx = np.array([3, 0, 2, 1])
    np.testing.assert_array_equal(make_baseline("previous_row").fit(ws, idx).predict(ws, idx), [12.0, 3.5, 0.0, 0.0])
    np.testing.assert_array_equal(make_baseline("last_same_daypart").fit(ws, idx).predict(ws, idx), [0.0, 0.0, 2.5, 7.0])


def test_sliding_scale_group_median_and_fallbacks():
    train = [  # (patient, day part, band, dose)
        (1, "morning", 3, 3), (1, "morning", 3, 4), (1, "morning", 3, 10),
        (1, "morning", 4, 0), (1, "morning", 4, 0),
        (1, "evening", 2, 6),
        (2, "morning", 3, 5), (2, "morning", 3, 5), (2, "morning", 3, 5),
        (2, "night", 1, 7), (2, "night", 1, 9),
    ]
    test = [  # (patient, day part, band) -> expected
        ((1, "morning", 3), 4.0),    # own group: median(3, 4, 10)
        ((1, "morning", 4), 0.0),    # own group: zeros count
        ((1, "morning", 7), 3.0),    # no band -> patient x day part: median(3, 4, 10, 0, 0)
        ((1, "evening", 2), 6.0),
        ((1, "night", 3), 8.0),      # patient 1 never at night -> day part: median(7, 9)
        ((3, "morning", 3), 4.5),    # unseen patient -> day part: median(3, 4, 10, 0, 0, 5, 5, 5)
        ((3, "afternoon", 1), 5.0),  # unseen day part -> global median of all 11 doses
    ]
    rows = [r[:3] for r in train] + [t for t, _ in test]
    ctx = pd.DataFrame(rows, columns=["patient_id", "day_part", "glucose_band"])
    y = [r[3] for r in train] + [99.0] * len(test)  # test doses must not leak
    ws = _hand_ws(ctx, y)
    test_idx = np.arange(len(train), len(rows))[::-1]  # reversed: order must follow idx
    p = make_baseline("sliding_scale").fit(ws, np.arange(len(train))).predict(ws, test_idx)
    np.testing.assert_array_equal(p, [e for _, e in test][::-1])


def _mae(ws, idx, pred):
    return float(np.mean(np.abs(ws.y[idx, 0] - pred)))


def test_gbms_learn_an_exact_sliding_scale(scale_ws):
    train, test = np.arange(1800), np.arange(1800, 2400)
    preds = {n: make_baseline(n).fit(scale_ws, train).predict(scale_ws, test) for n in ["previous_row", "gbm", "two_stage_gbm"]}
    maes = {k: _mae(scale_ws, test, v) for k, v in preds.items()}
    assert maes["gbm"] < 0.5, maes
    assert maes["two_stage_gbm"] < 0.5, maes
    assert maes["previous_row"] > 4 * max(maes["gbm"], maes["two_stage_gbm"]), maes
    assert maes["previous_row"] > 2.0, maes


def test_ridge_beats_global_median_on_linear_target():
    ws = make_ws(n=800, seed=4, target="linear")
    train, test = np.arange(600), np.arange(600, 800)
    ridge = _mae(ws, test, make_baseline("ridge").fit(ws, train).predict(ws, test))
    median = _mae(ws, test, np.full(len(test), np.median(ws.y[train, 0])))
    assert ridge < 0.5 * median, (ridge, median)


def test_every_baseline_meets_the_predictor_contract(ws):
    """heads -> the one dose rule gives exactly the baseline's own prediction (predictor.py)."""
    from insulin_core.models.predictor import BaselinePredictor

    train, test = np.arange(400), np.arange(400, 600)
    for name in ALL:
        baseline = make_baseline(name).fit(ws, train)
        amount, p = baseline.heads(ws, test)
        assert amount.shape == p.shape == (200,) and ((p >= 0) & (p <= 1)).all(), name
        assert np.array_equal(BaselinePredictor(baseline).dose(ws, test), baseline.predict(ws, test)), name
    with pytest.raises(ValueError, match="Unknown baseline"):
        make_baseline("lstm")


def test_two_stage_dose_probability(scale_ws):
    train, test = np.arange(1800), np.arange(1800, 2400)
    model = make_baseline("two_stage_gbm").fit(scale_ws, train)
    p = model.dose_probability(scale_ws, test)
    assert p.shape == (600,) and np.all((p >= 0) & (p <= 1))
    flag = scale_ws.now[test, 1] > 0
    assert np.mean((p > 0.5) == flag) > 0.95


def _sweep(model, ws, rows, column, values) -> np.ndarray:
    """(len(values), len(rows)) predictions with one decision-moment column set to each value."""
    out = []
    for v in values:
        now = ws.now.copy()
        now[rows, column] = v
        out.append(model.predict(SimpleNamespace(**{**vars(ws), "now": now}), rows))
    return np.array(out)


def test_monotone_gbms_never_give_less_for_more_glucose_nor_more_for_more_exercise():
    """The monotone GBMs hold the network's prior (features.MONOTONE_ROLES) even where the data
    rise and fall with glucose; the unconstrained GBM follows the data down."""
    ws = make_ws(n=2400, seed=5)
    ws.now_features = ("glucose", "flag", "exercise")
    glucose, flag = ws.now[:, 0], ws.now[:, 1]
    ws.y = (flag * np.clip(12 - np.abs(glucose - 230) / 15, 0, None)).astype(np.float32)[:, None]  # peaks at 230
    train, rows = np.arange(1800), np.arange(1800, 1900)
    grid, levels = np.linspace(60, 400, 18), np.linspace(-3, 3, 7)
    for name in ("gbm_monotone", "two_stage_gbm_monotone"):
        model = make_baseline(name).fit(ws, train)
        assert np.all(np.diff(_sweep(model, ws, rows, 0, grid), axis=0) >= -1e-9), name
        assert np.all(np.diff(_sweep(model, ws, rows, 2, levels), axis=0) <= 1e-9), name
    plain = make_baseline("gbm").fit(ws, train)
    assert np.any(np.diff(_sweep(plain, ws, rows, 0, grid), axis=0) < -1.0)
