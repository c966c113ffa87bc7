"""Altair chart builders for the pages: every chart has tooltips, time axes zoom and pan
(`selection_interval(bind="scales")`), and legends toggle their series (click; shift-click for more).

Builders take plain DataFrames and return a chart; they never compute model results. Colours are
left to the Streamlit theme except where a colour carries meaning (insulin types, actual vs model).
The What-if charts also come as Vega-Lite specs built once per structure (`*_spec`, on
ui/chart_specs.py's `with_data`); pages draw any other builder's spec with `chart_specs.chart_spec`.
"""
from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from insulin_core.data.codes import DAY_PARTS, LEVEL_NAMES, MAX_PLAUSIBLE_DOSE
from insulin_core.prep.timeline import hour_of_day
from insulin_core.labels import METRIC_LABELS, PREDICTOR_LABELS, TRIAL_LABELS
from ui.chart_specs import with_data

# Axis and tooltip formats by unit (d3-format): insulin with 0-1 decimals, glucose whole, shares as %.
UNITS = ".1~f"
MGDL = ".0f"
SHARE = ".0%"

# Streamlit sends the data to the browser itself; Altair's 5,000-row guard would only get in the way
# of a real 70-patient cohort.
alt.data_transformers.disable_max_rows()

INSULIN_COLOURS = {"regular": "#1f77b4", "nph": "#2ca02c", "ultralente": "#9467bd"}
INSULIN_NAMES = {"regular": "Regular", "nph": "NPH", "ultralente": "UltraLente"}
IMPLAUSIBLE_COLOUR = "#d62728"
# actual (orange diamonds), the model (blue), then the baselines: readable on light and dark themes
SERIES_COLOURS = ["#f58518", "#1f6feb", "#8c8c8c", "#54a24b", "#b279a2", "#9d755d", "#e45756", "#72b7b2"]
MARKER_COLOURS = {"meal": "#ff7f0e", "exercise": "#17becf", "hypo": "#d62728"}


def _zoom_x(name: str = "zoom"):
    return alt.selection_interval(bind="scales", encodings=["x"], name=name)


def _zoom_xy(name: str = "zoom"):
    return alt.selection_interval(bind="scales", name=name)


def _legend_toggle(field: str, name: str = "legend"):
    return alt.selection_point(fields=[field], bind="legend", name=name)


def _faded(selection):
    return alt.when(selection).then(alt.value(1.0)).otherwise(alt.value(0.08))


# ---- overview -------------------------------------------------------------------------------
def counts_bar(counts: pd.DataFrame, category: str, value: str, title: str) -> alt.Chart:
    return alt.Chart(counts, title=title).mark_bar().encode(
        x=alt.X(f"{value}:Q", title=value),
        y=alt.Y(f"{category}:N", sort="-x", title=None, axis=alt.Axis(labelLimit=0)),  # names never cut
        tooltip=[alt.Tooltip(f"{category}:N"), alt.Tooltip(f"{value}:Q", format=",")],
    )


# ---- patients -------------------------------------------------------------------------------
def dose_marks(tl: pd.DataFrame, kinds: list[str]) -> pd.DataFrame:
    """One row per dose of these insulin kinds (columns patient, timestamp, insulin, units, recorded,
    implausible): an implausible dose (a typing error, over MAX_PLAUSIBLE_DOSE) is drawn at the
    plausible maximum (`units`), its recorded value kept for the tooltip, never drawn to scale."""
    doses = tl.melt(id_vars=["patient", "timestamp"], value_vars=kinds, var_name="insulin", value_name="recorded")
    doses = doses[doses["recorded"] > 0]
    cap = doses["insulin"].map(MAX_PLAUSIBLE_DOSE)
    return doses.assign(units=np.minimum(doses["recorded"], cap), implausible=doses["recorded"] > cap,
                        insulin=doses["insulin"].map(INSULIN_NAMES))


def _dose_panel(doses: pd.DataFrame, x, title: str, colour, height: int, legend_name: str) -> alt.LayerChart:
    """Bars of doses (clipped at the plausible maximum) with a red triangle on each implausible one."""
    pick = _legend_toggle(colour.shorthand.split(":")[0], legend_name)
    tooltip = ["patient:N", alt.Tooltip("timestamp:T", format="%Y-%m-%d %H:%M"), alt.Tooltip("insulin:N", title="insulin"),
               alt.Tooltip("recorded:Q", title="recorded (U)", format=".0f")]
    # room above the largest dose so an implausible dose's marker (at the plausible maximum) shows whole
    top = float(doses["units"].max()) * 1.15 if len(doses) else 1.0
    y = alt.Y("units:Q", title="units", stack=None, scale=alt.Scale(domain=[0, top], nice=False),
              axis=alt.Axis(format=".0f", tickMinStep=1))
    bars = alt.Chart(doses).mark_bar(size=3, clip=True).encode(x=x, y=y, color=colour, opacity=_faded(pick),
                                                                 tooltip=tooltip).add_params(pick)
    typos = alt.Chart(doses[doses["implausible"]].assign(
        note=lambda d: d.apply(lambda r: f"recorded {r['recorded']:g} U: implausible (over {r['units']:g} U), "
                                         f"drawn at {r['units']:g} U", axis=1))).mark_point(
        shape="triangle-down", size=90, filled=True, color=IMPLAUSIBLE_COLOUR, clip=True).encode(
        x=x, y=y, tooltip=[*tooltip, alt.Tooltip("note:N", title="note")])
    return alt.layer(bars, typos).properties(height=height, title=title)


def patient_timeline(tl: pd.DataFrame) -> alt.VConcatChart:
    """Glucose, Regular insulin (what the model predicts, in a panel of its own), basal insulin and
    meal/exercise/hypo markers on one shared time axis: drag any panel to pan, scroll to zoom, all
    move together. Implausible doses are clipped and marked (dose_marks)."""
    tl = tl.assign(patient=tl["patient_id"].map(lambda p: f"patient {p}"))
    x = alt.X("timestamp:T", title=None, axis=alt.Axis(format="%a %d %b"))
    glucose = tl.dropna(subset=["glucose"])[["patient", "timestamp", "glucose", "glucose_slot"]]  # only what is drawn
    pick = _legend_toggle("patient", "glucose_legend")
    glucose_panel = alt.Chart(glucose, height=200, title="Blood glucose (mg/dL)").mark_line(
        point=alt.OverlayMarkDef(size=14), strokeWidth=1, clip=True).encode(
        x=x, y=alt.Y("glucose:Q", title="mg/dL", axis=alt.Axis(format=".0f")), color=alt.Color("patient:N", title="Patient"),
        opacity=_faded(pick),
        tooltip=["patient:N", alt.Tooltip("timestamp:T", format="%Y-%m-%d %H:%M"),
                 alt.Tooltip("glucose:Q", format=".0f"), alt.Tooltip("glucose_slot:N", title="reading")],
    ).add_params(pick, _zoom_x("time_zoom"))

    regular_panel = _dose_panel(dose_marks(tl, ["regular"]), x, "Regular insulin (units): what the model predicts",
                                alt.Color("patient:N", title="Patient"), 130, "regular_legend")
    basal_kinds = ["nph", "ultralente"]
    basal_panel = _dose_panel(dose_marks(tl, basal_kinds), x, "Basal insulin: NPH and UltraLente (units)",
                              alt.Color("insulin:N", title="Insulin",
                                        scale=alt.Scale(domain=[INSULIN_NAMES[k] for k in basal_kinds],
                                                        range=[INSULIN_COLOURS[k] for k in basal_kinds])),
                              100, "basal_legend")

    markers = pd.concat([
        tl.loc[tl["meal"] > 0, ["patient", "timestamp"]].assign(marker="meal"),
        tl.loc[tl["exercise"] > 0, ["patient", "timestamp"]].assign(marker="exercise"),
        tl.loc[tl["hypo"] > 0, ["patient", "timestamp"]].assign(marker="hypo"),
    ], ignore_index=True)
    marker_pick = _legend_toggle("marker", "marker_legend")
    marker_panel = alt.Chart(markers, height=70, title="Meals, exercise, hypoglycemia").mark_tick(
        thickness=2, clip=True).encode(
        x=x, y=alt.Y("marker:N", title=None, sort=list(MARKER_COLOURS)),
        color=alt.Color("marker:N", title="Event",
                        scale=alt.Scale(domain=list(MARKER_COLOURS), range=list(MARKER_COLOURS.values()))),
        opacity=_faded(marker_pick),
        tooltip=["patient:N", alt.Tooltip("timestamp:T", format="%Y-%m-%d %H:%M"), "marker:N"],
    ).add_params(marker_pick)

    # one time scale for every panel: a zoom or pan on any of them moves them all
    # legends above each panel: Streamlit stretches every panel to the page width, a legend on the right would be cut off
    return alt.vconcat(glucose_panel, regular_panel, basal_panel, marker_panel).resolve_scale(
        x="shared", color="independent").configure_legend(orient="top")


def daily_pattern(tl: pd.DataFrame) -> alt.LayerChart:
    """Glucose by time of day: every reading and the hourly median."""
    g = tl.dropna(subset=["glucose"]).assign(
        hour=lambda d: hour_of_day(d["timestamp"]),
        patient=lambda d: d["patient_id"].map(lambda p: f"patient {p}"))
    medians = g.assign(hour=np.floor(g["hour"]) + 0.5).groupby(["patient", "hour"], as_index=False)["glucose"].median()
    pick = _legend_toggle("patient", "pattern_legend")
    zoom = _zoom_xy("pattern_zoom")
    points = alt.Chart(g).mark_circle(size=12, opacity=0.35).encode(
        x=alt.X("hour:Q", title="hour of day", scale=alt.Scale(domain=[0, 24])),
        y=alt.Y("glucose:Q", title="glucose (mg/dL)", axis=alt.Axis(format=MGDL)), color=alt.Color("patient:N", title="Patient"),
        tooltip=["patient:N", alt.Tooltip("timestamp:T", format="%Y-%m-%d %H:%M"),
                 alt.Tooltip("glucose:Q", format=".0f"), alt.Tooltip("day_part:N", title="day part")],
    )
    line = alt.Chart(medians).mark_line(strokeWidth=2.5).encode(
        x="hour:Q", y="glucose:Q", color="patient:N",
        tooltip=["patient:N", alt.Tooltip("hour:Q", title="hour", format=".1f"),
                 alt.Tooltip("glucose:Q", title="hourly median", format=".0f")],
    )
    return (points + line).encode(opacity=_faded(pick)).add_params(pick, zoom).properties(
        height=300, title="Daily pattern: readings and hourly median")


def sliding_scale(tl: pd.DataFrame) -> alt.Chart:
    """The patient's own sliding scale: the decision dose (what the model predicts: the Regular
    written at the decision point plus any written on its own rows within the dose window after it)
    against the glucose measured there. Plotting the Regular on the reading's row alone would show a
    flat 0 for every patient who wrote the dose a few minutes after the reading. An implausible dose
    is drawn at the plausible maximum, its recorded value in the tooltip."""
    cap = MAX_PLAUSIBLE_DOSE["regular"]
    d = tl[tl["decision_point"].astype(bool) & tl["glucose"].notna()].assign(
        patient=lambda d: d["patient_id"].map(lambda p: f"patient {p}"),
        recorded=lambda d: d["decision_dose"], regular=lambda d: np.minimum(d["decision_dose"], cap))
    pick = _legend_toggle("day_part", "scale_legend")
    return alt.Chart(d, height=300, title="Own sliding scale: Regular decided vs glucose").mark_circle(
        size=40).encode(
        x=alt.X("glucose:Q", title="glucose at the decision point (mg/dL)", axis=alt.Axis(format=".0f")),
        y=alt.Y("regular:Q", title="Regular decided there (units)", axis=alt.Axis(format=".0f", tickMinStep=1)),
        color=alt.Color("day_part:N", title="Day part", sort=list(DAY_PARTS)),
        shape=alt.Shape("patient:N", title="Patient"),
        opacity=alt.when(pick).then(alt.value(0.75)).otherwise(alt.value(0.05)),
        tooltip=["patient:N", alt.Tooltip("timestamp:T", format="%Y-%m-%d %H:%M"), alt.Tooltip("day_part:N", title="day part"),
                 alt.Tooltip("glucose:Q", format=".0f"), alt.Tooltip("recorded:Q", title="decision dose (U)", format=".0f")],
    ).add_params(pick, _zoom_xy("scale_zoom"))


# ---- training -------------------------------------------------------------------------------
def loss_curve(history: pd.DataFrame, total_epochs: int | None = None) -> alt.Chart:
    """Train and validation loss per epoch (one row per EpochLog)."""
    long = history.melt(id_vars=["epoch"], value_vars=["train_loss", "val_loss"], var_name="series",
                        value_name="loss").replace({"series": {"train_loss": "train", "val_loss": "validation"}})
    pick = _legend_toggle("series", "loss_legend")
    # while training, the axis spans every planned epoch so the curve grows into it
    x_scale = alt.Scale(domain=[1, max(total_epochs or 1, int(history["epoch"].max() if len(history) else 1), 2)])
    return alt.Chart(long, height=260, title="Loss per epoch").mark_line(point=True).encode(
        x=alt.X("epoch:Q", title="epoch", scale=x_scale, axis=alt.Axis(tickMinStep=1)),
        y=alt.Y("loss:Q", title="loss", scale=alt.Scale(zero=False), axis=alt.Axis(format=".2~f")),
        color=alt.Color("series:N", title=None), opacity=_faded(pick),
        tooltip=["series:N", "epoch:Q", alt.Tooltip("loss:Q", format=".4f")],
    ).add_params(pick, _zoom_xy("loss_zoom"))


def metric_bars(metrics: pd.DataFrame, metric: str = "mae") -> alt.Chart:
    """One bar per model/baseline (the `name` column); the model stands out."""
    # the names may be identifiers or already in words (labels.PREDICTOR_LABELS)
    is_model = metrics["name"].str.startswith("model") | (metrics["name"] == PREDICTOR_LABELS["model"])
    d = metrics.assign(kind=np.where(is_model, "model", "baseline"))
    words = METRIC_LABELS.get(metric, metric)
    share = metric.startswith("within")
    return alt.Chart(d, height=max(200, 36 * len(d)), title=f"{words} on the test part (lower is better)"
                     if metric in ("mae", "rmse", "mae_dose") else f"{words} on the test part").mark_bar().encode(
        x=alt.X(f"{metric}:Q", title=words, axis=alt.Axis(format=SHARE if share else ".2~f")),
        y=alt.Y("name:N", sort="x", title=None),
        color=alt.Color("kind:N", title=None, scale=alt.Scale(domain=["model", "baseline"], range=["#1f6feb", "#9aa4b2"])),
        tooltip=[alt.Tooltip("name:N", title="model or baseline"),
                 alt.Tooltip(f"{metric}:Q", title=words, format=SHARE if share else ".3f")],
    )


def compare_models(long: pd.DataFrame) -> alt.Chart:
    """Grouped bars: columns model, metric, value."""
    pick = _legend_toggle("model", "compare_legend")
    return alt.Chart(long, height=220).mark_bar().encode(
        x=alt.X("model:N", title=None, axis=alt.Axis(labels=False, ticks=False)),
        y=alt.Y("value:Q", title=None, axis=alt.Axis(format=".2~f")),
        color=alt.Color("model:N", title="Model"), column=alt.Column("metric:N", title=None),
        opacity=_faded(pick), tooltip=["model:N", "metric:N", alt.Tooltip("value:Q", format=".3f")],
    ).add_params(pick).resolve_scale(y="independent")


# ---- predictions ----------------------------------------------------------------------------
def actual_vs_predicted(week: pd.DataFrame, series: list[str]) -> alt.LayerChart:
    """Regular insulin at each decision point of one week: actual (points), model and baselines (lines)."""
    long = week.melt(id_vars=["timestamp", "day_part", "glucose_now"], value_vars=["actual", *series],
                     var_name="series", value_name="units")
    # legend and tooltips in words: "actual dose", "LSTM-GRU model", the baselines' labels
    words = {"actual": "actual dose", "predicted": PREDICTOR_LABELS["model"],
             **{s: PREDICTOR_LABELS.get(s, s) for s in series if s != "predicted"}}
    long["series"] = long["series"].map(words)
    names = [words["actual"], words["predicted"], *[words[s] for s in series if s != "predicted"]]
    top = float(long["units"].max()) if len(long) else 1.0
    pick = _legend_toggle("series", "avp_legend")
    base = alt.Chart(long).encode(
        x=alt.X("timestamp:T", title=None, axis=alt.Axis(format="%a %d %b", tickCount="day")),  # one label a day
        y=alt.Y("units:Q", title="Regular insulin (units)", scale=alt.Scale(domain=[0, top * 1.1 + 0.5]),
                axis=alt.Axis(format=UNITS)),
        # the legend above the plot: on the right, Vega cut the baselines' names ("two-stage gradient boost...")
        color=alt.Color("series:N", title=None, sort=names, scale=alt.Scale(domain=names, range=SERIES_COLOURS[:len(names)]),
                        legend=alt.Legend(orient="top", labelLimit=0, columns=4)),
        opacity=_faded(pick),
        tooltip=["series:N", alt.Tooltip("timestamp:T", title="time", format="%a %Y-%m-%d %H:%M"),
                 alt.Tooltip("day_part:N", title="day part"),
                 alt.Tooltip("glucose_now:Q", title="glucose (mg/dL)", format=".0f"),
                 alt.Tooltip("units:Q", title="Regular (U)", format=".1f")],
    )
    lines = base.transform_filter(alt.datum.series != words["actual"]).mark_line(point=True, strokeWidth=1.5, clip=True)
    actual = base.transform_filter(alt.datum.series == words["actual"]).mark_point(size=90, filled=True, shape="diamond",
                                                                             clip=True)
    return (lines + actual).add_params(pick, _zoom_x("avp_zoom")).properties(height=320)


def predicted_scatter(table: pd.DataFrame) -> alt.LayerChart:
    hi = float(max(table["actual"].max(), table["predicted"].max(), 1)) if len(table) else 1.0
    counts = table.groupby(["actual", "predicted"], as_index=False).size().rename(columns={"size": "windows"})
    diagonal = alt.Chart(pd.DataFrame({"u": [0, hi]})).mark_line(strokeDash=[4, 4], color="gray").encode(x="u:Q", y="u:Q")
    points = alt.Chart(counts).mark_circle(opacity=0.6).encode(
        x=alt.X("actual:Q", title="actual Regular dose (units)", axis=alt.Axis(format=UNITS)),
        y=alt.Y("predicted:Q", title="predicted by the model (units)", axis=alt.Axis(format=UNITS)),
        size=alt.Size("windows:Q", title="decision points"),
        tooltip=[alt.Tooltip("actual:Q", title="actual (U)", format=".1f"),
                 alt.Tooltip("predicted:Q", title="predicted (U)", format=".1f"),
                 alt.Tooltip("windows:Q", title="decision points")],
    )
    return (diagonal + points).add_params(_zoom_xy("scatter_zoom")).properties(
        height=300, title="LSTM-GRU model: predicted vs actual")


def residuals(table: pd.DataFrame) -> alt.Chart:
    d = table.assign(residual=table["predicted"] - table["actual"])
    return alt.Chart(d, height=300, title="LSTM-GRU model: error (predicted - actual)").mark_bar().encode(
        x=alt.X("residual:Q", bin=alt.Bin(step=1), title="error (units)", axis=alt.Axis(format=".0f")),
        y=alt.Y("count():Q", title="decision points", scale=alt.Scale(type="symlog"), axis=alt.Axis(format=",.0f")),
        color=alt.Color("day_part:N", title="Day part", sort=list(DAY_PARTS)),
        tooltip=[alt.Tooltip("residual:Q", bin=alt.Bin(step=1), title="error (U)"), alt.Tooltip("day_part:N", title="day part"),
                 alt.Tooltip("count():Q", title="decision points")],
    )


# ---- what-if --------------------------------------------------------------------------------
WHATIF_COLOURS = {"model": "#1f6feb", "recorded": "#f58518", "current": "#d62728"}


def decision_timeline(points: pd.DataFrame, selected: str | None) -> alt.LayerChart:
    """One mark per decision point (columns point, timestamp, day_part, glucose_now, actual): click one
    to pick it (selection `timeline_pick`, field `point`); drag to pan, scroll to zoom in time."""
    pick = alt.selection_point(fields=["point"], on="click", name="timeline_pick", clear=False)
    picked = alt.param(name="timeline_picked", value=selected or "")  # a value, not spec text: see with_data
    base = alt.Chart(points).encode(
        x=alt.X("timestamp:T", title=None, axis=alt.Axis(format="%d %b")),
        y=alt.Y("day_part:N", title=None, sort=list(DAY_PARTS)),
    )
    dots = base.mark_circle(size=40, opacity=0.85).encode(
        color=alt.Color("glucose_now:Q", title="glucose", scale=alt.Scale(scheme="redyellowblue", reverse=True,
                                                                          domain=[40, 400], clamp=True)),
        tooltip=[alt.Tooltip("timestamp:T", title="time", format="%a %Y-%m-%d %H:%M"), alt.Tooltip("day_part:N", title="day part"),
                 alt.Tooltip("glucose_now:Q", title="glucose (mg/dL)", format=".0f"),
                 alt.Tooltip("actual:Q", title="Regular given (U)", format=".0f")],
    ).add_params(pick, _zoom_x("timeline_zoom"))
    ring = base.transform_filter(alt.datum.point == picked).mark_point(
        size=220, strokeWidth=2.5, color=WHATIF_COLOURS["current"], filled=False)
    # discrete y: a step per row (a fixed height is squeezed by st.altair_chart's own sizing)
    return (dots + ring).add_params(picked).properties(height=alt.Step(22), width="container",
                                    title="Decision points: click one to pick it (drag to pan, scroll to zoom)")


def dose_response(curve: pd.DataFrame, real: pd.DataFrame, current: dict | None) -> alt.LayerChart:
    """The model's dose over glucose now (columns glucose, dose, low, high) with its 90% band, the
    patient's recorded doses at this day part as dots (columns glucose, dose, timestamp) and the
    scenario's own point (`current`: glucose, dose, low, high; None when there is no reading now)."""
    x = alt.X("glucose:Q", title="glucose now (mg/dL)", scale=alt.Scale(domain=[0, 600]), axis=alt.Axis(format=MGDL))
    band = alt.Chart(curve).mark_area(opacity=0.2, interpolate="step-after", color=WHATIF_COLOURS["model"]).encode(
        x=x, y=alt.Y("low:Q", title="Regular dose (units)", axis=alt.Axis(format=UNITS)), y2="high:Q")
    line = alt.Chart(curve).mark_line(interpolate="step-after", color=WHATIF_COLOURS["model"], strokeWidth=2).encode(
        x=x, y="dose:Q",
        tooltip=[alt.Tooltip("glucose:Q", format=".0f"), alt.Tooltip("dose:Q", title="model dose", format=".0f"),
                 alt.Tooltip("low:Q", title="90% low", format=".0f"), alt.Tooltip("high:Q", title="90% high", format=".0f")])
    dots = alt.Chart(real).mark_circle(size=28, opacity=0.55, color=WHATIF_COLOURS["recorded"]).encode(
        x=x, y="dose:Q",
        tooltip=[alt.Tooltip("timestamp:T", format="%a %Y-%m-%d %H:%M"), alt.Tooltip("glucose:Q", format=".0f"),
                 alt.Tooltip("dose:Q", title="Regular given (U)", format=".0f"), "meal:N"])
    layers = [band, line, dots]
    if current is not None:
        here = current if isinstance(current, alt.NamedData) else pd.DataFrame([current])
        layers += [
            alt.Chart(here).mark_rule(color=WHATIF_COLOURS["current"], strokeDash=[4, 3]).encode(x=x),
            alt.Chart(here).mark_rule(color=WHATIF_COLOURS["current"], strokeWidth=3).encode(x=x, y="low:Q", y2="high:Q"),
            alt.Chart(here).mark_point(size=160, filled=True, shape="diamond", color=WHATIF_COLOURS["current"]).encode(
                x=x, y="dose:Q", tooltip=[alt.Tooltip("glucose:Q", title="this scenario", format=".0f"),
                                          alt.Tooltip("dose:Q", format=".0f"), alt.Tooltip("low:Q", format=".0f"),
                                          alt.Tooltip("high:Q", format=".0f")]),
        ]
    return alt.layer(*layers).add_params(_zoom_xy("whatif_zoom")).properties(
        height=280, title="Dose vs glucose now (dots: their own doses)")


def meal_response_data(table: pd.DataFrame, current: str | None) -> dict[str, pd.DataFrame]:
    d = table.assign(this=np.where(table["meal"] == current, "this scenario", "other"))
    return {"meal": d, "meal_median": d.dropna(subset=["recorded_median"])}


def meal_response(table: pd.DataFrame | None, current: str | None) -> alt.LayerChart:
    """Predicted dose per meal size now (columns meal, dose, low, high, recorded_median); the
    scenario's own meal size stands out; the recorded median at that meal size is a tick. With
    `table` None the chart reads the named data of meal_response_data (see with_data)."""
    d, with_median = ((alt.NamedData("meal"), alt.NamedData("meal_median")) if table is None else
                      meal_response_data(table, current).values())
    x = alt.X("meal:N", title="meal now", sort=list(LEVEL_NAMES))
    bars = alt.Chart(d).mark_bar(size=28).encode(
        x=x, y=alt.Y("dose:Q", title="Regular dose (units)", axis=alt.Axis(format=UNITS)),
        color=alt.Color("this:N", title=None, scale=alt.Scale(domain=["this scenario", "other"],
                                                              range=[WHATIF_COLOURS["current"], WHATIF_COLOURS["model"]])),
        tooltip=["meal:N", alt.Tooltip("dose:Q", format=".0f"), alt.Tooltip("low:Q", title="90% low", format=".0f"),
                 alt.Tooltip("high:Q", title="90% high", format=".0f"),
                 alt.Tooltip("recorded_median:Q", title="their median dose", format=".1f")])
    whiskers = alt.Chart(d).mark_rule(strokeWidth=2, color="gray").encode(x=x, y="low:Q", y2="high:Q")
    median = alt.Chart(with_median).mark_tick(
        thickness=3, size=34, color=WHATIF_COLOURS["recorded"]).encode(x=x, y="recorded_median:Q")
    return (bars + whiskers + median).properties(height=280, title="By meal size (tick: their median dose)")


def dose_response_spec(curve: pd.DataFrame, real: pd.DataFrame, current: dict | None) -> dict:
    """dose_response as a Vega-Lite spec, built once per structure (see with_data)."""
    key = ("dose_response", current is None, tuple(curve.columns), tuple(real.columns))
    here = None if current is None else alt.NamedData("here")
    data = {"curve": curve, "real": real, **({} if current is None else {"here": pd.DataFrame([current])})}
    return with_data(key, lambda: dose_response(alt.NamedData("curve"), alt.NamedData("real"), here), data)


def meal_response_spec(table: pd.DataFrame, current: str | None) -> dict:
    """meal_response as a Vega-Lite spec, built once (see with_data)."""
    return with_data(("meal_response", tuple(table.columns)), lambda: meal_response(None, None),
                     meal_response_data(table, current))


def decision_timeline_spec(points: pd.DataFrame, selected: str | None) -> dict:
    """decision_timeline as a Vega-Lite spec, built once (see with_data)."""
    return with_data(("decision_timeline", tuple(points.columns)),
                     lambda: decision_timeline(alt.NamedData("points"), None), {"points": points},
                     params={"timeline_picked": selected or ""})


def attribution_heatmap(cells, features: list[str]) -> alt.Chart:
    """Occlusion attributions (rows: the window's time steps, columns: features), in units of
    expected dose; red pushes the dose up, blue pulls it down (white at 0: domainMid, so the spec
    does not depend on the data and is built once, see attribution_heatmap_spec)."""
    return alt.Chart(cells).mark_rect().encode(
        x=alt.X("feature:N", title=None, sort=features, axis=alt.Axis(labelAngle=-40, labelOverlap=False, labelLimit=0)),
        y=alt.Y("step:O", title=None, timeUnit="yearmonthdatehoursminutes",
                axis=alt.Axis(format="%a %d %b %H:%M", labelOverlap=False)),
        color=alt.Color("units:Q", title="U", scale=alt.Scale(scheme="redblue", reverse=True, domainMid=0),
                        legend=alt.Legend(format="+.2~f")),
        tooltip=[alt.Tooltip("step:T", title="entry", format="%a %Y-%m-%d %H:%M"), "feature:N",
                 alt.Tooltip("units:Q", format="+.2f")],
    ).properties(height=alt.Step(20),
                 title="What moved the expected dose (window steps x features)")


def attribution_heatmap_spec(seq: pd.DataFrame) -> dict:
    """attribution_heatmap of an explanation's `seq` table as a Vega-Lite spec, built once per
    feature list (see with_data): a slider move then sends new cells, not a new chart."""
    cells = seq.rename_axis("step").reset_index().melt(id_vars="step", var_name="feature", value_name="units")
    features = [str(c) for c in seq.columns]
    return with_data(("attribution_heatmap", tuple(features)),
                     lambda: attribution_heatmap(alt.NamedData("cells"), features), {"cells": cells})


def scenario_comparison(table: pd.DataFrame) -> alt.LayerChart:
    """Saved scenarios side by side (columns name, dose, low, high): bar = dose, whisker = 90% interval."""
    y = alt.Y("name:N", title=None, sort=list(table["name"]))
    bars = alt.Chart(table).mark_bar(color=WHATIF_COLOURS["model"], opacity=0.8).encode(
        x=alt.X("dose:Q", title="predicted Regular dose (units)", axis=alt.Axis(format=UNITS)), y=y,
        tooltip=["name:N", alt.Tooltip("dose:Q", format=".0f"), alt.Tooltip("low:Q", title="90% low", format=".0f"),
                 alt.Tooltip("high:Q", title="90% high", format=".0f")])
    whiskers = alt.Chart(table).mark_rule(strokeWidth=2, color="#444").encode(x="low:Q", x2="high:Q", y=y)
    return (bars + whiskers).properties(height=alt.Step(30), title="Saved scenarios: dose and 90% interval")


# ---- tune -----------------------------------------------------------------------------------
TRIAL_STATE_COLOURS = {"complete": "#1f6feb", "pruned": "#f58518", "fail": "#e45756", "running": "#8c8c8c"}


def trials_chart(trials: pd.DataFrame) -> alt.LayerChart:
    """Validation MAE by trial (one point per finished trial, colour = state) and the best so far."""
    done = trials.dropna(subset=["val_mae"]).sort_values("trial")
    best = done.assign(best=done["val_mae"].cummin())
    params = [c for c in trials.columns if c not in ("trial", "state", "val_mae", "seconds", "default", "worker")]
    pick = _legend_toggle("state", "trials_legend")
    points = alt.Chart(done).mark_circle(size=70).encode(
        x=alt.X("trial:Q", title="trial", axis=alt.Axis(tickMinStep=1)),
        y=alt.Y("val_mae:Q", title="validation MAE (U)", scale=alt.Scale(zero=False), axis=alt.Axis(format=".2~f")),
        color=alt.Color("state:N", title=None, scale=alt.Scale(domain=list(TRIAL_STATE_COLOURS),
                                                                 range=list(TRIAL_STATE_COLOURS.values()))),
        opacity=_faded(pick),
        tooltip=["trial:Q", alt.Tooltip("val_mae:Q", format=".3f", title=TRIAL_LABELS["val_mae"]),
                 *[alt.Tooltip(f"{p}:N", title=TRIAL_LABELS.get(p, p)) for p in params],
                 alt.Tooltip("seconds:Q", format=".1f")],
    ).add_params(pick, _zoom_xy("trials_zoom"))
    line = alt.Chart(best).mark_line(interpolate="step-after", strokeDash=[4, 3], color="#54a24b").encode(
        x="trial:Q", y="best:Q", tooltip=["trial:Q", alt.Tooltip("best:Q", format=".3f", title="best so far")])
    return alt.layer(points, line).properties(height=280, title="Validation MAE by trial (dashed: best so far)")


def params_chart(trials: pd.DataFrame, params: list[str]) -> alt.FacetChart:
    """One panel per setting: each finished trial's validation MAE at the value it tried."""
    done = trials.dropna(subset=["val_mae"])
    long = done.melt(id_vars=["trial", "val_mae"], value_vars=params, var_name="setting", value_name="value")
    long["value"] = long["value"].astype(str)
    long["setting"] = long["setting"].map(lambda p: TRIAL_LABELS.get(p, p))  # panel titles in words
    params = [TRIAL_LABELS.get(p, p) for p in params]
    return alt.Chart(long).mark_circle(size=50, opacity=0.8).encode(
        x=alt.X("value:N", title=None, sort=None),
        y=alt.Y("val_mae:Q", title="validation MAE (U)", scale=alt.Scale(zero=False)),
        tooltip=["trial:Q", "setting:N", "value:N", alt.Tooltip("val_mae:Q", format=".3f")],
    ).properties(width=130, height=140).facet(facet=alt.Facet("setting:N", title=None, sort=params), columns=5
                                             ).resolve_scale(x="independent")
