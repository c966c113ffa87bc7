"""ui/cache.py's cohort cache: bounded by the bytes its cohorts take, least recently used out first,
one load per source however many sessions ask at once."""
from __future__ import annotations

import threading
import time

import numpy as np
import pandas as pd
import pytest

from insulin_core.prep.dataset import Cohort, load_cohort
from insulin_core.data.source import DataSource
from ui import cache as ui_cache
from ui.cache import CohortCache, cohort_budget_bytes, cohort_bytes

# A hang (a stuck worker, server or child) fails here in minutes, not at CI's limit.
pytestmark = pytest.mark.timeout(180)

MB = 2**20


def fake_cohort(source: DataSource, mb: float) -> Cohort:
    """A cohort whose frames take about `mb` MB (float64 columns: 8 bytes a value)."""
    rows = int(mb * MB / 8 / 2)
    frame = pd.DataFrame({"a": np.zeros(rows), "b": np.ones(rows)})
    return Cohort(source, frame, report=None, features=frame.iloc[:0])


@pytest.fixture
def sized_loads(monkeypatch):
    """load_cohort replaced: demo seed k gives a cohort of sizes[k] MB; records every load."""
    sizes: dict[int, float] = {}
    loaded: list[int] = []

    def load(source: DataSource) -> Cohort:
        loaded.append(source.demo_seed)
        return fake_cohort(source, sizes[source.demo_seed])

    monkeypatch.setattr(ui_cache, "load_cohort", load)
    return sizes, loaded


def demo(seed: int) -> DataSource:
    return DataSource("demo", demo_seed=seed)


def test_cohort_bytes_counts_the_frames_deeply():
    cohort = load_cohort(DataSource("demo", demo_patients=2))
    expected = cohort.events.memory_usage(deep=True).sum() + cohort.features.memory_usage(deep=True).sum()
    assert cohort_bytes(cohort) == expected
    assert cohort_bytes(load_cohort(DataSource("demo", demo_patients=4))) > 1.5 * cohort_bytes(cohort)


def test_evicts_by_bytes_least_recently_used_first(sized_loads):
    sizes, loaded = sized_loads
    sizes.update({0: 4, 1: 4, 2: 4, 3: 9})
    cache = CohortCache(10 * MB)
    cache.get(demo(0))
    cache.get(demo(1))
    assert cache.held_bytes() == pytest.approx(8 * MB, rel=0.01)
    cache.get(demo(0))  # 0 is now the most recently used
    cache.get(demo(2))  # 12 MB > 10: the least recently used, 1, goes
    assert demo(1) not in cache.cache and demo(0) in cache.cache and demo(2) in cache.cache
    assert cache.held_bytes() <= 10 * MB
    cache.get(demo(3))  # 9 MB: everything else must go to make room
    assert list(cache.cache) == [demo(3)]
    assert loaded == [0, 1, 2, 3]
    cache.get(demo(3))
    assert loaded == [0, 1, 2, 3]  # a hit loads nothing


def test_many_small_cohorts_fit_where_a_count_bound_would_drop_them(sized_loads):
    sizes, loaded = sized_loads
    sizes.update({k: 0.5 for k in range(30)})
    cache = CohortCache(20 * MB)
    for k in range(30):
        cache.get(demo(k))
    assert len(cache.cache) == 30  # st.cache_data(max_entries=8) kept 8
    for k in range(30):
        cache.get(demo(k))
    assert len(loaded) == 30


def test_a_cohort_bigger_than_the_budget_is_returned_not_kept(sized_loads):
    sizes, loaded = sized_loads
    sizes.update({0: 1, 1: 30})
    cache = CohortCache(10 * MB)
    cache.get(demo(0))
    big = cache.get(demo(1))
    assert cohort_bytes(big) > 10 * MB
    assert demo(1) not in cache.cache and demo(0) in cache.cache
    cache.get(demo(1))
    assert loaded == [0, 1, 1]


def test_concurrent_misses_load_once(monkeypatch):
    loads = []

    def slow_load(source):
        loads.append(source)
        time.sleep(0.2)
        return fake_cohort(source, 0.1)

    monkeypatch.setattr(ui_cache, "load_cohort", slow_load)
    cache = CohortCache(10 * MB)
    got = []
    threads = [threading.Thread(target=lambda: got.append(cache.get(demo(0)))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(loads) == 1 and len(got) == 8 and all(g is got[0] for g in got)


def test_a_failed_load_is_not_cached(monkeypatch):
    calls = []

    def failing(source):
        calls.append(source)
        raise ValueError("nothing usable")

    monkeypatch.setattr(ui_cache, "load_cohort", failing)
    cache = CohortCache(10 * MB)
    for _ in range(2):
        with pytest.raises(ValueError):
            cache.get(demo(0))
    assert len(calls) == 2 and cache.held_bytes() == 0


@pytest.mark.parametrize("raw, mb", [("64", 64), ("0.5", 0.5), ("", 512), ("-3", 512), ("lots", 512), ("0", 512)])
def test_the_budget_comes_from_the_environment(raw, mb):
    assert cohort_budget_bytes({"INSULIN_DASH_COHORT_CACHE_MB": raw}) == int(mb * MB)
    assert cohort_budget_bytes({}) == 512 * MB


# ---- chart specs: built once, the same as st.altair_chart's own -------------------------------------
def test_chart_spec_is_what_altair_chart_sends_and_is_built_once(monkeypatch):
    from ui import charts
    from ui.chart_specs import chart_spec
    from ui.streamlit_internals import altair_spec

    counts = pd.DataFrame({"kind": ["glucose", "regular"], "events": [10, 3]})
    direct = altair_spec(charts.counts_bar(counts, "kind", "events", "Events by kind"))
    built = []
    real = charts.counts_bar
    monkeypatch.setattr(charts, "counts_bar", lambda *a: built.append(a) or real(*a))
    first = chart_spec(charts.counts_bar, counts, "kind", "events", "Events by kind")
    again = chart_spec(charts.counts_bar, counts.copy(), "kind", "events", "Events by kind")
    assert first == direct and again == direct and len(built) == 1
    first["title"] = "changed by a caller"
    assert chart_spec(charts.counts_bar, counts, "kind", "events", "Events by kind") == direct
    other = chart_spec(charts.counts_bar, counts.assign(events=[11, 3]), "kind", "events", "Events by kind")
    assert other["datasets"] != direct["datasets"] and len(built) == 2


def test_whatif_specs_swap_the_data_into_the_same_structure():
    """The fast What-if specs say what the Altair builders say, for any data."""
    import json

    from ui import charts

    curve = pd.DataFrame({"glucose": [40.0, 200.0, 400.0], "dose": [0.0, 4.0, 9.0], "low": [0.0, 2.0, 6.0],
                          "high": [1.0, 6.0, 12.0]})
    real = pd.DataFrame({"glucose": [180.0], "dose": [5.0], "timestamp": [pd.Timestamp("1991-01-02 08:00")],
                         "meal": ["typical"]})
    specs = [charts.dose_response_spec(curve.assign(dose=curve["dose"] + k), real, {"glucose": 100.0 + k, "dose": 3.0,
                                                                                    "low": 1.0, "high": 5.0})
             for k in range(2)]
    structure = [json.dumps({k: v for k, v in s.items() if k != "datasets"}, sort_keys=True) for s in specs]
    assert structure[0] == structure[1]  # the browser updates the data in place
    assert specs[0]["datasets"]["curve"]["dose"].tolist() == [0.0, 4.0, 9.0]
    assert specs[1]["datasets"]["here"]["glucose"].tolist() == [101.0]
    layers = specs[0]["layer"]
    assert [layer["mark"]["type"] for layer in layers] == ["area", "line", "circle", "rule", "rule", "point"]
    assert len(charts.dose_response_spec(curve, real, None)["layer"]) == 3

    table = pd.DataFrame({"meal": ["none", "less", "typical", "more"], "dose": [1.0, 2.0, 3.0, 4.0],
                          "low": [0.0] * 4, "high": [5.0] * 4, "recorded_median": [1.0, None, 3.0, None]})
    meal = charts.meal_response_spec(table, "typical")
    assert meal["datasets"]["meal"]["this"].tolist() == ["other", "other", "this scenario", "other"]
    assert len(meal["datasets"]["meal_median"]) == 2

    points = pd.DataFrame({"point": ["a", "b"], "timestamp": pd.to_datetime(["1991-01-01", "1991-01-02"]),
                           "day_part": ["morning", "evening"], "glucose_now": [100.0, 200.0], "actual": [2.0, 4.0]})
    timeline = charts.decision_timeline_spec(points, "b")
    assert {"name": "timeline_picked", "value": "b"} in timeline["params"]
    assert charts.decision_timeline_spec(points, None)["params"] != timeline["params"]


def test_chart_spec_sends_only_the_columns_the_chart_names():
    import pyarrow as pa

    from ui import charts
    from ui.chart_specs import chart_spec

    counts = pd.DataFrame({"kind": ["glucose", "regular"], "events": [10, 3], "unused_wide_column": ["x" * 500] * 2})
    spec = chart_spec(charts.counts_bar, counts, "kind", "events", "Events by kind")
    (data,) = spec["datasets"].values()
    assert pa.ipc.open_stream(data).read_all().column_names[:2] == ["kind", "events"]
    assert "unused_wide_column" not in pa.ipc.open_stream(data).read_all().column_names


def test_the_measured_tables_replace_only_their_own_docs_subsection(tmp_path):
    from bench.load_sessions import write_section

    doc = tmp_path / "performance.md"
    doc.write_text("# Performance\n\n## Dashboard clicks\n\nby hand\n\n## Concurrent sessions\n\nalso by hand\n")
    write_section(doc, "### Latest run", "first table", parent="## Dashboard clicks")
    write_section(doc, "### Latest run", "second table", parent="## Dashboard clicks")
    text = doc.read_text()
    assert text.count("### Latest run") == 1 and "second table" in text and "first table" not in text
    assert text.index("by hand") < text.index("second table") < text.index("## Concurrent sessions")
    assert "also by hand" in text


def test_the_overview_imports_neither_torch_nor_sklearn():
    """The first page a user sees must not wait seconds for torch or scikit-learn (app.py imports the
    registry in the background after it): what app.py and the Overview import stays free of them."""
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys\n"
            "import ui.session, ui.cache, ui.charts, insulin_core.data.download, insulin_core.labels, insulin_core.data.source\n"
            "print(sorted(m for m in ('torch', 'sklearn') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parent.parent, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_bundles_of_one_experiment_share_one_fit_of_the_baselines(monkeypatch, tmp_path):
    """Two bundles (here two copies of the shipped demo model) on the same data and experiment:
    each gets its own model columns, the baselines are fit once."""
    import shutil
    from pathlib import Path

    from insulin_core.bundles import serving
    from insulin_core.bundles.registry import load_bundle

    fits = []
    real = serving.baseline_table
    monkeypatch.setattr(serving, "baseline_table", lambda *a, **k: fits.append(a[1]) or real(*a, **k))
    ui_cache._cached_baselines.clear()
    cohort = load_cohort(DataSource("demo"))
    shipped = Path(__file__).resolve().parent.parent / "models" / "demo"
    tables = []
    for name in ("first", "second"):
        shutil.copytree(shipped, tmp_path / name)
        tables.append(ui_cache.predictions(load_bundle(tmp_path / name), cohort, ["previous_row"]))
    assert len(fits) == 1
    assert tables[0].equals(tables[1]) and tables[0] is not tables[1]  # two bundles' tables, same numbers
    assert tables[0]["previous_row"].equals(serving.predictions_table(load_bundle(shipped), cohort, ["previous_row"])["previous_row"])
