"""The speed regression guard (bench/guard.py) in every `make test`: each stage timed against a
reference computed in the same run, failing beyond 3x its recorded budget; and proof that it fails
when a stage is slowed down."""
from __future__ import annotations

import time

import pytest

from bench import guard


@pytest.fixture(scope="module")
def calls():
    return guard.stages()


def test_every_stage_is_within_three_times_its_budget(calls):
    budgets = guard.load_budgets()
    assert set(budgets["stages"]) == set(calls), "bench/budgets.json must name every stage the guard times"
    measured, failures = guard.guard(calls, budgets, runs=3)
    report = "; ".join(f"{n} {m['ms']:.0f} ms = {m['ratio']:.2f}x ref" for n, m in measured.items())
    assert not failures, f"{failures} (measured: {report}); if a change made this slower on purpose, " \
                         "re-record with `python bench/guard.py --record` on an idle machine and say so"


def test_guard_fails_when_a_stage_is_slowed_down(calls, monkeypatch):
    """A slowdown injected into the core (the feature builder sleeps 3x the stage's whole allowed
    time, FACTOR x its budget) is caught; the untouched stages still pass. Two runs each: enough to
    tell 4x over from within, and the sleeps are most of this test's time."""
    from insulin_core.prep import features

    budgets = guard.load_budgets()
    reference_s = guard.measure({"reference": guard.reference}, runs=3)["reference"]["reference_ms"] / 1000
    delay = 3 * guard.FACTOR * budgets["stages"]["features"]["ratio"] * reference_s
    real = features.add_features

    def slow(*args, **kwargs):
        time.sleep(delay)
        return real(*args, **kwargs)

    monkeypatch.setattr(features, "add_features", slow)
    measured, failures = guard.guard({"features": calls["features"], "windows": calls["windows"]},
                                     {"stages": {n: budgets["stages"][n] for n in ("features", "windows")}}, runs=2)
    assert [f.split(":")[0] for f in failures] == ["features"], failures
    assert measured["features"]["ratio"] > guard.FACTOR * budgets["stages"]["features"]["ratio"]


def test_check_names_each_stage_over_its_budget():
    budgets = {"stages": {"a": {"ratio": 1.0}, "b": {"ratio": 2.0}, "c": {"ratio": 1.0}}}
    measured = {"a": {"ratio": 2.9, "ms": 1.0}, "b": {"ratio": 6.5, "ms": 1.0}}
    failures = guard.check(measured, budgets)
    assert [f.split(":")[0] for f in failures] == ["b", "c"]
    assert "not measured" in failures[1]
