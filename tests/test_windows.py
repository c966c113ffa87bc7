"""Windows: shapes, the two target formulations, and no look-ahead."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from insulin_core.data.aim94 import load_texts
from insulin_core.prep.features import NOW_FEATURES, SEQ_FEATURES, add_features
from insulin_core.prep.timeline import build_timeline
from insulin_core.prep.windows import WindowConfig, WindowError, make_windows, target_rows

from .conftest import aim94_text


def cohort_features(days: int = 6, patients: int = 2) -> pd.DataFrame:
    texts = {}
    for p in range(1, patients + 1):
        rows = []
        for d in range(1, days + 1):
            date = f"03-{d:02d}-1991"
            rows += [f"{date} 7:{10 + p} 58 {100 + 10 * d}", f"{date} 7:{10 + p} 33 {d}",
                     f"{date} 11:50 33 2",  # insulin only
                     f"{date} 12:00 60 {150 + d}", f"{date} 22:00 48 {90 + d}"]
        texts[f"data-{p:02d}"] = aim94_text(*rows)
    return add_features(build_timeline(load_texts(texts, "t").events))


def test_decision_point_windows_shapes_and_targets():
    features = cohort_features()
    ws = make_windows(features, WindowConfig(length=4))
    assert ws.seq.shape == (len(ws), 4, len(SEQ_FEATURES)) and ws.seq.dtype == np.float32
    assert ws.now.shape == (len(ws), len(NOW_FEATURES))
    assert ws.y.shape == (len(ws), 1)
    # every target is a decision point with >= 4 earlier rows of its own patient
    rows = ws.context["row"].to_numpy()
    assert features.loc[rows, "decision_point"].all()
    assert np.array_equal(ws.y[:, 0], features.loc[rows, "regular"].to_numpy(dtype=np.float32))


def test_window_is_exactly_the_rows_before_the_target():
    features = cohort_features()
    ws = make_windows(features, WindowConfig(length=3))
    glucose = features["seq_glucose"].to_numpy()
    for i in [0, 5, len(ws) - 1]:
        r = ws.context["row"].iloc[i]
        assert np.allclose(ws.seq[i, :, 0], glucose[r - 3:r])


def test_no_look_ahead_and_no_patient_mixing():
    features = cohort_features()
    ws = make_windows(features, WindowConfig(length=4))
    stamps = features["timestamp"].to_numpy()
    pids = features["patient_id"].to_numpy()
    for i, r in enumerate(ws.context["row"]):
        window_rows = np.arange(r - 4, r)
        assert (stamps[window_rows] < stamps[r]).all(), "an input is not earlier than its target"
        assert (pids[window_rows] == pids[r]).all(), "a window crosses patients"


def test_next_row_targets_every_row_from_the_window_alone():
    features = cohort_features()
    ws = make_windows(features, WindowConfig(length=4, target="next-row"))
    assert ws.now.shape == (len(ws), 0)
    assert len(ws) == len(features) - 2 * 4  # every row after the first 4 of each patient
    assert not features.loc[ws.context["row"], "decision_point"].all()  # insulin-only rows too
    assert ws.context["glucose_now"].isna().all()


def test_context_columns():
    features = cohort_features()
    ws = make_windows(features, WindowConfig(length=4))
    ctx = ws.context
    r = ctx["row"].to_numpy()
    assert np.array_equal(ctx["prev_row_regular"], features["regular"].to_numpy()[r - 1])
    assert (ctx["glucose_band"] == np.floor(ctx["glucose_now"] / 40)).all()
    assert set(ctx["day_part"]) <= {"morning", "afternoon", "night"}


def test_multi_output_targets():
    ws = make_windows(cohort_features(), WindowConfig(length=4, multi_output=True))
    assert ws.targets == ("regular", "nph", "ultralente") and ws.y.shape[1] == 3


def test_window_longer_than_history_is_a_clear_error():
    features = cohort_features(days=1)
    with pytest.raises(WindowError, match="at least 21 rows"):
        make_windows(features, WindowConfig(length=20))


@pytest.mark.parametrize("kwargs", [{"length": 0}, {"length": 10_000}, {"target": "tomorrow"}])
def test_bad_window_config_is_refused(kwargs):
    with pytest.raises(ValueError):
        WindowConfig(**kwargs)


def test_windowing_many_patients_at_once():
    """Its speed is measured in bench/windows_speed.py; here, that every target row gets its window."""
    features = pd.concat([cohort_features(days=60, patients=2)] * 30, ignore_index=True)
    features["patient_id"] = np.repeat(np.arange(60), len(features) // 60)
    ws = make_windows(features, WindowConfig(length=10))
    assert len(ws) > 5_000 and len(target_rows(features, WindowConfig(length=10))) == len(ws)
    rows = ws.context["row"].to_numpy()
    assert np.array_equal(ws.seq[:, -1, :], features.loc[rows - 1, [f"seq_{n}" for n in ws.seq_features]].to_numpy(np.float32))


@pytest.mark.parametrize("target", ["decision-point", "next-row"])
def test_lazy_windows_equal_make_windows_batch_by_batch(target):
    from insulin_core.prep.windows import lazy_windows

    features = cohort_features(days=8, patients=3)
    cfg = WindowConfig(length=4, target=target)
    ws, lazy = make_windows(features, cfg), lazy_windows(features, cfg)
    assert len(lazy) == len(ws) > 0
    np.testing.assert_array_equal(lazy.rows, ws.context["row"].to_numpy())
    got = list(lazy.batches(batch=5))
    assert len(got) == -(-len(ws) // 5)
    for name, i in (("seq", 0), ("now", 1), ("y", 2)):
        np.testing.assert_array_equal(np.concatenate([b[i] for b in got]), getattr(ws, name))
    picked = np.array([len(ws) - 1, 0, 3])
    np.testing.assert_array_equal(lazy.seq(picked), ws.seq[picked])


# -- windows as a view of their rows ----------------------------------------------------------

def copied_windows(ws) -> np.ndarray:
    """Every window copied out the plain way (the reference RowWindows must equal)."""
    L, rows = ws.config.length, ws.seq_rows.rows
    return np.stack([rows[end - L:end] for end in ws.seq_rows.ends])


def test_row_windows_index_like_the_copied_windows():
    ws = make_windows(cohort_features(days=5), WindowConfig(length=3))
    copied, lazy = copied_windows(ws), ws.seq_rows
    rng = np.random.default_rng(0)
    picks = rng.choice(len(ws), 7, replace=False)
    mask = rng.random(len(ws)) < 0.3
    assert lazy.shape == copied.shape and len(lazy) == len(copied) and lazy.dtype == np.float32
    assert np.array_equal(np.asarray(lazy), copied) and np.array_equal(ws.seq, copied)
    for key in (4, -1, slice(2, 9), slice(None, 0), picks, mask, (picks, -1), (slice(1, 5), slice(None), 0), (3, 1, 2)):
        assert np.array_equal(lazy[key], copied[key]), key


def test_a_selection_keeps_only_its_own_rows_and_the_same_windows():
    ws = make_windows(cohort_features(days=8), WindowConfig(length=4))
    copied = copied_windows(ws)
    picks = np.array([len(ws) - 1, 0, 5, 6])  # any order, neighbours sharing rows
    part = ws.seq_rows.select(picks)
    assert np.array_equal(part[:], copied[picks])
    # the rows: the union of the picked windows' rows, each once (not 4 windows x 4 rows)
    wanted = np.unique(np.concatenate([np.arange(e - 4, e) for e in ws.seq_rows.ends[picks]]))
    assert np.array_equal(part.rows, ws.seq_rows.rows[wanted])
    assert part.covered().all() and not ws.seq_rows.select([0]).rows.shape[0] > 4
    scaled = part.map_rows(lambda r: r * 2)
    assert np.array_equal(scaled[:], copied[picks] * 2)


def test_a_cohorts_windows_are_never_copied_whole_on_the_training_path():
    from insulin_core.evaluation.pipeline import ExperimentConfig, prepare

    features = cohort_features(days=30, patients=3)
    prepared = prepare(features, ExperimentConfig(WindowConfig(length=10), split="random"))
    data = prepared.train_data()
    assert "seq" not in vars(prepared.ws)  # the copied-out form was never asked for
    copied_bytes = len(data.train) * 10 * len(SEQ_FEATURES) * 4
    assert data.train.seq.rows.nbytes < copied_bytes / 3  # its rows, not 10 copies of them
    # the scaler's bounds over the rows equal the bounds over the copied windows
    from insulin_core.prep.scaling import MinMaxScaler

    reference = MinMaxScaler.fit(copied_windows(prepared.ws)[prepared.train_idx])
    assert np.array_equal(prepared.scaling.seq.low, reference.low) and np.array_equal(prepared.scaling.seq.high, reference.high)
