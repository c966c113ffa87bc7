"""Split-conformal intervals: coverage on a set with known noise (intervals.py), and the table
and test-part coverage the pipeline stores in a bundle."""
from __future__ import annotations

import json

import numpy as np
import pytest

from insulin_core.models.intervals import conformal_from_scores, conformal_interval, coverage_of
from insulin_core.evaluation.pipeline import ExperimentConfig, bundle_meta
from insulin_core.models.train import TrainConfig
from insulin_core.prep.windows import WindowConfig

from .whatif_fixtures import L


def test_conformal_covers_the_target_share_on_a_set_with_known_noise():
    rng = np.random.default_rng(0)

    def synthetic(n):
        amount = rng.uniform(2, 12, n)
        p = rng.uniform(0, 1, n)
        dosed = p > 0.5
        noise = rng.normal(0, 1.5, n)  # doses scatter around the prediction with sd 1.5 U
        y = np.where(dosed, np.maximum(np.round(amount + noise), 0), np.where(rng.random(n) < 0.15, np.round(amount), 0))
        return amount, p, y

    amount, p, y = synthetic(4000)
    table = conformal_from_scores(np.where(p > 0.5, amount, 0.0), y, p, alpha=0.1)
    assert table["groups"]["sure_dose"]["q"] == pytest.approx(1.645 * 1.5, abs=0.5)
    amount, p, y = synthetic(20000)
    dose, low, high = conformal_interval(amount, p, table)
    cov = coverage_of(y, low, high)
    assert 0.87 <= cov["coverage"] <= 0.95
    q = [table["groups"][g]["q"] for g in ("lean_dose", "sure_dose")]
    for band, own_width in (((p > 0.5) & (p <= 0.8), q[0] >= q[1]), (p > 0.8, q[1] >= q[0])):
        # Mondrian: the guarantee holds within each band. A band narrower than the one below it
        # is widened to it above the dose (so that no bound falls as P(dose) rises: the monotone
        # envelope), and may then cover more than its share; one at its own width covers about it.
        coverage = coverage_of(y[band], low[band], high[band])["coverage"]
        assert 0.87 <= coverage <= (0.93 if own_width else 0.97), (coverage, q)
    assert ((low <= dose) & (dose <= high)).all() and (low >= 0).all()


def test_bundle_meta_stores_the_validation_table_and_the_test_coverage(setup):
    cohort, result, bundle, engine = setup
    exp = ExperimentConfig(WindowConfig(length=L))
    meta = bundle_meta(result, exp, TrainConfig(epochs=3), cohort.source.label, cohort.fingerprint)
    prepared = result.prepared
    predictor = prepared.predictor(result.training.model).calibrated(prepared.ws, prepared.val_idx)
    table = predictor.conformal
    assert meta["conformal"] == table and meta["conformal"]["part"] == "val"
    coverage = predictor.coverage(prepared.ws, prepared.split.test, "test")
    assert json.dumps(meta["metrics_extra"]["interval_coverage"]) == json.dumps(coverage)
    assert json.dumps(result.evaluation.coverage) == json.dumps(coverage)


def test_tables_from_before_the_bands_keep_their_two_groups():
    """A bundle saved with the dose / no-dose grouping still gets its own intervals."""
    old = {"alpha": 0.1, "pooled": 2.0, "groups": {"no_dose": {"q": 0.0}, "dose": {"q": 1.0}}}
    dose, low, high = conformal_interval(np.array([5.0, 5.0]), np.array([0.9, 0.1]), old)
    assert dose.tolist() == [5.0, 0.0] and low.tolist() == [4.0, 0.0] and high.tolist() == [6.0, 0.0]


def test_borderline_rows_get_wider_intervals_than_sure_ones():
    rng = np.random.default_rng(1)
    n = 6000
    p = rng.uniform(0, 1, n)
    amount = np.full(n, 6.0)
    y = np.where(rng.random(n) < p ** 2, 6.0, 0.0)  # doses rare where P(dose) is low, common where high
    table = conformal_from_scores(np.where(p > 0.5, amount, 0.0), y, p, alpha=0.1)
    q = {g: v["q"] for g, v in table["groups"].items()}
    assert q["sure_no_dose"] == 0.0 and q["lean_no_dose"] == 6.0 and q["lean_dose"] == 6.0


def test_every_baseline_gets_its_own_interval_and_coverage(setup):
    """Conformal intervals wrap any predictor, each calibrated on its own validation scores. So on
    the validation part itself each interval holds at least 90% of the doses (split conformal's
    ceil((n+1)(1-alpha))-th smallest score; rounding a bound outward keeps whole-unit doses in), and
    the evaluation reports each one's own share of test doses inside its own interval."""
    from insulin_core.evaluation.pipeline import evaluate, predictors

    cohort, result, bundle, engine = setup
    prepared, names = result.prepared, ["sliding_scale", "two_stage_gbm"]
    ws, val, test = prepared.ws, prepared.val_idx, prepared.split.test
    ev = evaluate(result.training.model, prepared, baselines=names)
    assert list(ev.coverages) == ["model", *names] and ev.coverages["model"] == ev.coverage
    for name, predictor in predictors(result.training.model, prepared, names).items():
        y = ws.y[val, 0]
        assert np.array_equal(y, np.round(y))  # whole units, as the rounding argument needs
        _, low, high = predictor.interval(ws, val)
        assert np.mean((low <= y) & (y <= high)) >= 1 - predictor.conformal["alpha"], name
        y, (_, low, high) = ws.y[test, 0], predictor.interval(ws, test)
        reported = ev.coverages[name]
        assert reported["n"] == len(test) and reported["coverage"] == np.mean((low <= y) & (y <= high)), name
        assert reported["mean_width_u"] == pytest.approx(np.mean(high - low)), name
    assert len({cov["mean_width_u"] for cov in ev.coverages.values()}) == 3  # three calibrations, not one
