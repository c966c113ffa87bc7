import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from insulin_core.evaluation.metrics import METRIC_COLUMNS, METRICS, dose_metrics, metrics_table, per_patient_metrics


def _random(n=500, seed=0):
    rng = np.random.default_rng(seed)
    y = np.where(rng.random(n) < 0.4, rng.integers(1, 15, n), 0).astype(float)
    return y, np.clip(y + rng.normal(0, 1.5, n), 0, None)


def _sk(t, p):
    return {"mae": mean_absolute_error(t, p), "rmse": np.sqrt(mean_squared_error(t, p)),
            "r2": r2_score(t, p), "within_1u": np.mean(np.abs(t - p) <= 1)}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_sklearn_all_rows_and_dose_occasions(seed):
    y, p = _random(seed=seed)
    m = dose_metrics(y, p)
    assert m["n"] == len(y) and m["n_dose"] == int((y > 0).sum())
    for name, value in _sk(y, p).items():
        assert m[name] == pytest.approx(value, rel=1e-12)
    d = y > 0
    for name, value in _sk(y[d], p[d]).items():
        assert m[f"{name}_dose"] == pytest.approx(value, rel=1e-12)


def test_keys_and_types():
    m = dose_metrics([0, 1, 2], [0, 1, 2])
    assert tuple(m) == METRIC_COLUMNS
    counts = ("n", "n_dose", "missed", "unwanted")
    assert all(isinstance(m[k], int) for k in counts)
    assert all(isinstance(m[k], float) for k in METRIC_COLUMNS if k not in counts)


def test_hand_computed_example():
    y = [0, 0, 4, 10]
    p = [0, 1.5, 3, 10.5]
    m = dose_metrics(y, p)
    # errors 0, 1.5, 1, 0.5
    assert m["mae"] == pytest.approx(3.0 / 4)
    assert m["rmse"] == pytest.approx(np.sqrt((0 + 2.25 + 1 + 0.25) / 4))
    # mean 3.5; ss_tot = 12.25+12.25+0.25+42.25 = 67; ss_res = 3.5
    assert m["r2"] == pytest.approx(1 - 3.5 / 67)
    assert m["within_1u"] == pytest.approx(3 / 4)
    assert m["n_dose"] == 2
    assert m["mae_dose"] == pytest.approx(0.75)
    assert m["rmse_dose"] == pytest.approx(np.sqrt(1.25 / 2))
    assert m["r2_dose"] == pytest.approx(1 - 1.25 / 18)  # mean 7, ss_tot 9 + 9
    assert m["within_1u_dose"] == 1.0


def test_a_zero_or_dose_answer_counts_its_two_errors_missed_and_unwanted_doses():
    # recorded: no dose, no dose, no dose, 4 U, 8 U, 6 U; an answer under half a unit is no dose
    y = [0, 0, 0, 4, 8, 6]
    p = [0, 0.4, 2, 0, 0.49, 6]
    m = dose_metrics(y, p)
    assert (m["missed"], m["unwanted"]) == (2, 1)
    # dose-occasion MAE sees the misses, not the unwanted dose: dosing everywhere lowers it
    always = dose_metrics(y, [6] * 6)
    assert always["mae_dose"] < m["mae_dose"] and (always["missed"], always["unwanted"]) == (0, 3)


def test_within_1u_boundary_is_inclusive_also_in_float32():
    y = np.array([2.1, 5.0], dtype=np.float32)
    p = np.array([1.1, 6.0], dtype=np.float32)
    assert dose_metrics(y, p)["within_1u"] == 1.0


def test_empty_and_constant_cases_give_nan_not_crash():
    m = dose_metrics([], [])
    assert m["n"] == m["n_dose"] == m["missed"] == m["unwanted"] == 0
    assert all(np.isnan(m[k]) for k in METRICS)
    m = dose_metrics([0, 0, 0], [0, 1, 0])  # no dose occasions, constant truth
    assert m["mae"] == pytest.approx(1 / 3) and np.isnan(m["r2"])
    assert m["n_dose"] == 0 and np.isnan(m["mae_dose"]) and np.isnan(m["r2_dose"])
    m = dose_metrics([5], [4])  # one row: R² undefined
    assert m["mae"] == 1.0 and np.isnan(m["r2"]) and np.isnan(m["r2_dose"])


@pytest.mark.parametrize("name", list(METRICS))
def test_every_metric_is_nan_on_empty_and_perfect_on_identity(name):
    metric = METRICS[name]
    assert np.isnan(metric(np.array([]), np.array([])))
    y = np.array([0.0, 2.0, 5.0])
    assert metric(y, y) == (1.0 if metric.higher_is_better else 0.0)


@pytest.mark.parametrize("y_true, y_pred, match", [
    ([1, 2, 3], [1, 2], "has 2 values"),
    ([[1, 2]], [[1, 2]], "1-D"),
    ([1, 2], [[1], [2]], "1-D"),
    ([1, np.nan], [1, 2], "non-finite"),
    ([1, 2], [1, np.inf], "non-finite"),
    (["a", "b"], [1, 2], "numeric"),
])
def test_validation_errors(y_true, y_pred, match):
    with pytest.raises(ValueError, match=match):
        dose_metrics(y_true, y_pred)


def test_per_patient_table():
    pid = [3, 1, 3, 1, 2]
    y = [0, 4, 6, 0, 0]
    p = [1, 2, 6.5, 0, 3]
    df = per_patient_metrics(pid, y, p)
    assert list(df.columns) == ["patient_id", "n", "n_dose", "mae", "mae_dose", "within_1u"]
    assert df["patient_id"].tolist() == [1, 2, 3]
    assert df["n"].tolist() == [2, 1, 2] and df["n_dose"].tolist() == [1, 0, 1]
    assert df["mae"].tolist() == pytest.approx([1.0, 3.0, 0.75])
    assert df.loc[0, "mae_dose"] == 2.0 and np.isnan(df.loc[1, "mae_dose"]) and df.loc[2, "mae_dose"] == 0.5
    assert df["within_1u"].tolist() == pytest.approx([0.5, 0.0, 1.0])


def test_per_patient_matches_dose_metrics_per_group():
    y, p = _random(300, seed=4)
    pid = np.random.default_rng(4).integers(1, 6, len(y))
    df = per_patient_metrics(pid, y, p).set_index("patient_id")
    for k in np.unique(pid):
        m = dose_metrics(y[pid == k], p[pid == k])
        assert df.loc[k, "n"] == m["n"] and df.loc[k, "n_dose"] == (y[pid == k] > 0).sum()
        assert df.loc[k, "mae"] == pytest.approx(m["mae"])
        assert df.loc[k, "mae_dose"] == pytest.approx(m["mae_dose"])
        assert df.loc[k, "within_1u"] == pytest.approx(m["within_1u"])


def test_per_patient_validates_length():
    with pytest.raises(ValueError, match="patient_id"):
        per_patient_metrics([1, 2], [0, 1, 2], [0, 1, 2])


def test_metrics_table_rows_in_order_and_mask():
    y, p = _random(200, seed=5)
    preds = {"zeros": np.zeros_like(y), "model": p}
    table = metrics_table(preds, y)
    assert table["name"].tolist() == ["zeros", "model"]
    assert list(table.columns) == ["name", *METRIC_COLUMNS]
    assert table.loc[1, "mae"] == pytest.approx(mean_absolute_error(y, p))
    mask = np.arange(len(y)) % 2 == 0
    masked = metrics_table(preds, y, mask=mask)
    assert masked.loc[1, "n"] == mask.sum()
    assert masked.loc[1, "mae"] == pytest.approx(mean_absolute_error(y[mask], p[mask]))
    assert metrics_table(preds, y, mask=np.flatnonzero(mask)).equals(masked)
    assert metrics_table({}, y).empty


def test_metrics_table_validates():
    y = np.zeros(5)
    with pytest.raises(ValueError, match="predictions\\['bad'\\] has 4 values"):
        metrics_table({"bad": np.zeros(4)}, y)
    with pytest.raises(ValueError, match="mask"):
        metrics_table({"ok": np.zeros(5)}, y, mask=np.ones(3, dtype=bool))
    # a valid table, worked by hand: errors 0, 1, 0, 3, 0; doses given on rows 2 and 3 (errors 0, 3)
    row = metrics_table({"ok": [0.0, 1.0, 2.0, 1.0, 0.0]}, [0.0, 0.0, 2.0, 4.0, 0.0]).iloc[0]
    assert (row["name"], row["n"], row["n_dose"]) == ("ok", 5, 2)
    assert row[["mae", "rmse", "r2", "within_1u"]].tolist() == pytest.approx([0.8, 2 ** 0.5, 1 - 10 / 12.8, 0.8])
    assert row[["mae_dose", "rmse_dose", "r2_dose", "within_1u_dose"]].tolist() == pytest.approx([1.5, 4.5 ** 0.5, -3.5, 0.5])
    # a constant truth and no dose: R² and every dose-occasion score undefined (NaN), not 0 or 1
    zeros = metrics_table({"ok": np.zeros(5)}, y).iloc[0]
    assert zeros[["mae", "rmse", "within_1u", "n_dose"]].tolist() == [0.0, 0.0, 1.0, 0]
    assert zeros[["r2", "mae_dose", "rmse_dose", "r2_dose", "within_1u_dose"]].isna().all()


@pytest.mark.parametrize("name", list(METRICS))
def test_every_metric_validates_its_inputs(name):
    with pytest.raises(ValueError, match="has 2 values"):
        METRICS[name]([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="non-finite"):
        METRICS[name]([1, np.nan], [1, 2])


def test_per_patient_scores_say_why_a_score_is_perfect_or_missing():
    from insulin_core.bundles.serving import per_patient_of

    table = pd.DataFrame({"patient_id": [1, 1, 2, 2, 3, 3, 4], "part": ["test"] * 6 + ["val"],
                          "actual": [0.0, 0.0, 0.0, 0.0, 4.0, 6.0, 5.0], "predicted": [0.0, 0.0, 2.0, 0.0, 4.0, 6.0, 1.0]})
    notes = per_patient_of(table, "test").set_index("patient_id")["note"]
    assert "perfect by construction" in notes[1]  # no dose given, all predicted 0
    assert notes[2] == "no dose given"  # a dose predicted where none was given: only the dose-occasion score is missing
    assert "check the rows" in notes[3]  # doses given and every one exact
    assert 4 not in notes.index  # the other part
    assert per_patient_of(table, "all").set_index("patient_id").loc[4, "note"] == ""


def test_the_headline_is_a_names_row_on_every_row_not_the_one_without_implausible_doses():
    from insulin_core.evaluation.metrics import all_rows, headline

    every = metrics_table({"model": [0.0, 4.0, 40.0], "ridge": [0.0, 3.0, 3.0]}, [0.0, 4.0, 344.0])
    without = metrics_table({"model": [0.0, 4.0, 40.0], "ridge": [0.0, 3.0, 3.0]}, [0.0, 4.0, 344.0],
                            np.array([True, True, False]))
    table = pd.concat([without.assign(rows="without implausible"), every.assign(rows="all")], ignore_index=True)
    assert list(all_rows(table)["name"]) == ["model", "ridge"] and "rows" not in all_rows(table)
    assert headline(table)["mae"] == pytest.approx(304 / 3) and headline(table)["n"] == 3
    assert headline(table, "ridge")["mae"] == pytest.approx((1 + 341) / 3)
    assert headline(table, "gbm") == {}
