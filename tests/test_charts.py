"""ui/charts.py: what the charts draw (their data), independent of the page around them."""
from insulin_core.data.aim94 import load_texts
from insulin_core.prep.features import add_features
from insulin_core.prep.timeline import build_timeline
from ui import charts

# Patient 1 writes the Regular on a row of its own 5 minutes after the reading (a late logger, as
# 39 of the 70 real patients mostly are); at 20:00 the reading comes with no dose.
LATE_LOGGER = ("04-01-1991\t08:00\t58\t250\n04-01-1991\t08:05\t33\t7\n"
               "04-01-1991\t12:00\t60\t140\n04-01-1991\t12:00\t33\t4\n"
               "04-01-1991\t20:00\t62\t110\n")


def test_the_own_sliding_scale_plots_the_decision_dose_not_the_reading_rows_regular():
    features = add_features(build_timeline(load_texts({"data-01": LATE_LOGGER}, "fixture").events))
    drawn = charts.sliding_scale(features).data.sort_values("timestamp")
    assert list(drawn["glucose"]) == [250, 140, 110]  # one point per decision point with a reading
    assert list(drawn["regular"]) == [7, 4, 0]  # the late-written 7 U belongs to the 08:00 reading


def test_the_explanation_heatmap_keeps_one_spec_and_swaps_its_cells():
    import pandas as pd

    steps = pd.to_datetime(["1991-04-01 08:00", "1991-04-01 12:00"])
    first = pd.DataFrame({"glucose": [0.5, -0.2], "meal": [0.0, 0.1]}, index=steps)
    second = first * -3
    a, b = charts.attribution_heatmap_spec(first), charts.attribution_heatmap_spec(second)
    assert {k: v for k, v in a.items() if k != "datasets"} == {k: v for k, v in b.items() if k != "datasets"}
    assert sorted(b["datasets"]["cells"]["units"]) == sorted((second.to_numpy()).ravel())
    assert a["encoding"]["color"]["scale"]["domainMid"] == 0  # white is "no effect" whatever the data
