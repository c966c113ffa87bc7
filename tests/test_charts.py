"""ui/charts.py: what the charts draw (their data), independent of the page around them."""
from insulin_core.aim94 import load_texts
from insulin_core.features import add_features, build_timeline
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
