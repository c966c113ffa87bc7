"""Altair chart builders for the pages: every chart has tooltips, time axes zoom and pan
(`selection_interval(bind="scales")`), and legends toggle their series (click; shift-click for more).

Builders take plain DataFrames and return a chart; they never compute model results. Colours are
left to the Streamlit theme except where a colour carries meaning (insulin types, actual vs model).
"""
from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

# Streamlit sends the data to the browser itself; Altair's 5,000-row guard would only get in the way
# of a real 70-patient cohort.
alt.data_transformers.disable_max_rows()

INSULIN_COLOURS = {"regular": "#1f77b4", "nph": "#2ca02c", "ultralente": "#9467bd"}
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
        y=alt.Y(f"{category}:N", sort="-x", title=None),
        tooltip=[alt.Tooltip(f"{category}:N"), alt.Tooltip(f"{value}:Q", format=",")],
    )


# ---- patients -------------------------------------------------------------------------------
def patient_timeline(tl: pd.DataFrame) -> alt.VConcatChart:
    """Glucose, insulin doses by type and meal/exercise/hypo markers over time; the strip at the bottom
    is a brush: drag on it to choose the span the three panels above show."""
    tl = tl.assign(patient=tl["patient_id"].map(lambda p: f"patient {p}"))
    brush = alt.selection_interval(encodings=["x"], name="span")
    x = alt.X("timestamp:T", title=None, scale=alt.Scale(domain=brush))
    glucose = tl.dropna(subset=["glucose"])
    pick = _legend_toggle("patient", "glucose_legend")
    glucose_panel = alt.Chart(glucose, height=220, title="Blood glucose (mg/dL)").mark_line(
        point=alt.OverlayMarkDef(size=14), strokeWidth=1, clip=True).encode(
        x=x, y=alt.Y("glucose:Q", title="mg/dL"), color=alt.Color("patient:N", title="Patient"),
        opacity=_faded(pick),
        tooltip=["patient:N", alt.Tooltip("timestamp:T", format="%Y-%m-%d %H:%M"),
                 alt.Tooltip("glucose:Q", format=".0f"), "glucose_slot:N"],
    ).add_params(pick)

    doses = tl.melt(id_vars=["patient", "timestamp"], value_vars=list(INSULIN_COLOURS),
                    var_name="insulin", value_name="units")
    doses = doses[doses["units"] > 0]
    dose_pick = _legend_toggle("insulin", "insulin_legend")
    dose_panel = alt.Chart(doses, height=150, title="Insulin doses (units)").mark_bar(
        size=3, clip=True).encode(
        x=x, y=alt.Y("units:Q", title="units", stack=None),
        color=alt.Color("insulin:N", title="Insulin",
                        scale=alt.Scale(domain=list(INSULIN_COLOURS), range=list(INSULIN_COLOURS.values()))),
        opacity=_faded(dose_pick),
        tooltip=["patient:N", alt.Tooltip("timestamp:T", format="%Y-%m-%d %H:%M"), "insulin:N",
                 alt.Tooltip("units:Q", format=".0f")],
    ).add_params(dose_pick)

    markers = pd.concat([
        tl.loc[tl["meal"] > 0, ["patient", "timestamp"]].assign(marker="meal"),
        tl.loc[tl["exercise"] > 0, ["patient", "timestamp"]].assign(marker="exercise"),
        tl.loc[tl["hypo"] > 0, ["patient", "timestamp"]].assign(marker="hypo"),
    ], ignore_index=True)
    marker_pick = _legend_toggle("marker", "marker_legend")
    marker_panel = alt.Chart(markers, height=80, title="Meals, exercise, hypoglycemia").mark_tick(
        thickness=2, clip=True).encode(
        x=x, y=alt.Y("marker:N", title=None, sort=list(MARKER_COLOURS)),
        color=alt.Color("marker:N", title="Event",
                        scale=alt.Scale(domain=list(MARKER_COLOURS), range=list(MARKER_COLOURS.values()))),
        opacity=_faded(marker_pick),
        tooltip=["patient:N", alt.Tooltip("timestamp:T", format="%Y-%m-%d %H:%M"), "marker:N"],
    ).add_params(marker_pick)

    overview = alt.Chart(glucose, height=50, title="Drag here to choose the span shown above").mark_line(
        strokeWidth=1).encode(
        x=alt.X("timestamp:T", title=None), y=alt.Y("glucose:Q", title=None, axis=None),
        color=alt.Color("patient:N", legend=None),
    ).add_params(brush)
    return alt.vconcat(glucose_panel, dose_panel, marker_panel, overview).resolve_scale(color="independent")


def daily_pattern(tl: pd.DataFrame) -> alt.LayerChart:
    """Glucose by time of day: every reading and the hourly median."""
    g = tl.dropna(subset=["glucose"]).assign(
        hour=lambda d: d["timestamp"].dt.hour + d["timestamp"].dt.minute / 60,
        patient=lambda d: d["patient_id"].map(lambda p: f"patient {p}"))
    medians = g.assign(hour=np.floor(g["hour"]) + 0.5).groupby(["patient", "hour"], as_index=False)["glucose"].median()
    pick = _legend_toggle("patient", "pattern_legend")
    zoom = _zoom_xy("pattern_zoom")
    points = alt.Chart(g).mark_circle(size=12, opacity=0.35).encode(
        x=alt.X("hour:Q", title="hour of day", scale=alt.Scale(domain=[0, 24])),
        y=alt.Y("glucose:Q", title="glucose (mg/dL)"), color=alt.Color("patient:N", title="Patient"),
        tooltip=["patient:N", alt.Tooltip("timestamp:T", format="%Y-%m-%d %H:%M"),
                 alt.Tooltip("glucose:Q", format=".0f"), "day_part:N"],
    )
    line = alt.Chart(medians).mark_line(strokeWidth=2.5).encode(
        x="hour:Q", y="glucose:Q", color="patient:N",
        tooltip=["patient:N", alt.Tooltip("hour:Q", title="hour", format=".1f"),
                 alt.Tooltip("glucose:Q", title="hourly median", format=".0f")],
    )
    return (points + line).encode(opacity=_faded(pick)).add_params(pick, zoom).properties(
        height=300, title="Daily pattern: readings and hourly median")


def sliding_scale(tl: pd.DataFrame) -> alt.Chart:
    """The patient's own sliding scale: Regular dose against the glucose measured at a decision point."""
    d = tl[tl["decision_point"].astype(bool) & tl["glucose"].notna()].assign(
        patient=lambda d: d["patient_id"].map(lambda p: f"patient {p}"))
    pick = _legend_toggle("day_part", "scale_legend")
    return alt.Chart(d, height=300, title="Own sliding scale: Regular dose vs glucose at the decision point").mark_circle(
        size=40).encode(
        x=alt.X("glucose:Q", title="glucose at the decision point (mg/dL)"),
        y=alt.Y("regular:Q", title="Regular insulin given (units)"),
        color=alt.Color("day_part:N", title="Day part", sort=["morning", "afternoon", "evening", "night"]),
        shape=alt.Shape("patient:N", title="Patient"),
        opacity=alt.when(pick).then(alt.value(0.75)).otherwise(alt.value(0.05)),
        tooltip=["patient:N", alt.Tooltip("timestamp:T", format="%Y-%m-%d %H:%M"), "day_part:N",
                 alt.Tooltip("glucose:Q", format=".0f"), alt.Tooltip("regular:Q", format=".0f")],
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
        y=alt.Y("loss:Q", title="loss", scale=alt.Scale(zero=False)),
        color=alt.Color("series:N", title=None), opacity=_faded(pick),
        tooltip=["series:N", "epoch:Q", alt.Tooltip("loss:Q", format=".4f")],
    ).add_params(pick, _zoom_xy("loss_zoom"))


def metric_bars(metrics: pd.DataFrame, metric: str = "mae") -> alt.Chart:
    """One bar per model/baseline (the `name` column); the model stands out."""
    d = metrics.assign(kind=np.where(metrics["name"].str.startswith("model"), "model", "baseline"))
    return alt.Chart(d, height=max(200, 36 * len(d)), title=f"{metric} on the test part (lower is better)"
                     if metric in ("mae", "rmse", "mae_dose") else f"{metric} on the test part").mark_bar().encode(
        x=alt.X(f"{metric}:Q", title=metric), y=alt.Y("name:N", sort="x", title=None),
        color=alt.Color("kind:N", title=None, scale=alt.Scale(domain=["model", "baseline"], range=["#1f6feb", "#9aa4b2"])),
        tooltip=["name:N", alt.Tooltip(f"{metric}:Q", format=".3f")],
    )


def compare_models(long: pd.DataFrame) -> alt.Chart:
    """Grouped bars: columns model, metric, value."""
    pick = _legend_toggle("model", "compare_legend")
    return alt.Chart(long, height=220).mark_bar().encode(
        x=alt.X("model:N", title=None, axis=alt.Axis(labels=False, ticks=False)), y=alt.Y("value:Q", title=None),
        color=alt.Color("model:N", title="Model"), column=alt.Column("metric:N", title=None),
        opacity=_faded(pick), tooltip=["model:N", "metric:N", alt.Tooltip("value:Q", format=".3f")],
    ).add_params(pick).resolve_scale(y="independent")


# ---- predictions ----------------------------------------------------------------------------
def actual_vs_predicted(week: pd.DataFrame, series: list[str]) -> alt.LayerChart:
    """Regular insulin at each decision point of one week: actual (points), model and baselines (lines)."""
    long = week.melt(id_vars=["timestamp", "day_part", "glucose_now"], value_vars=["actual", *series],
                     var_name="series", value_name="units")
    long["series"] = long["series"].replace({"predicted": "model"})
    names = ["actual", "model", *[s for s in series if s != "predicted"]]
    top = float(long["units"].max()) if len(long) else 1.0
    pick = _legend_toggle("series", "avp_legend")
    base = alt.Chart(long).encode(
        x=alt.X("timestamp:T", title=None, axis=alt.Axis(format="%a %d %b")),
        y=alt.Y("units:Q", title="Regular insulin (units)", scale=alt.Scale(domain=[0, top * 1.1 + 0.5])),
        color=alt.Color("series:N", title="Series", sort=names,
                        scale=alt.Scale(domain=names, range=SERIES_COLOURS[:len(names)])),
        opacity=_faded(pick),
        tooltip=["series:N", alt.Tooltip("timestamp:T", format="%a %Y-%m-%d %H:%M"), "day_part:N",
                 alt.Tooltip("glucose_now:Q", title="glucose", format=".0f"), alt.Tooltip("units:Q", format=".1f")],
    )
    lines = base.transform_filter(alt.datum.series != "actual").mark_line(point=True, strokeWidth=1.5, clip=True)
    actual = base.transform_filter(alt.datum.series == "actual").mark_point(size=90, filled=True, shape="diamond",
                                                                             clip=True)
    return (lines + actual).add_params(pick, _zoom_x("avp_zoom")).properties(height=320)


def predicted_scatter(table: pd.DataFrame) -> alt.LayerChart:
    hi = float(max(table["actual"].max(), table["predicted"].max(), 1)) if len(table) else 1.0
    counts = table.groupby(["actual", "predicted"], as_index=False).size().rename(columns={"size": "windows"})
    diagonal = alt.Chart(pd.DataFrame({"u": [0, hi]})).mark_line(strokeDash=[4, 4], color="gray").encode(x="u:Q", y="u:Q")
    points = alt.Chart(counts).mark_circle(opacity=0.6).encode(
        x=alt.X("actual:Q", title="actual Regular dose (units)"),
        y=alt.Y("predicted:Q", title="predicted (units)"),
        size=alt.Size("windows:Q", title="decision points"),
        tooltip=["actual:Q", "predicted:Q", "windows:Q"],
    )
    return (diagonal + points).add_params(_zoom_xy("scatter_zoom")).properties(height=300, title="Predicted vs actual")


def residuals(table: pd.DataFrame) -> alt.Chart:
    d = table.assign(residual=table["predicted"] - table["actual"])
    return alt.Chart(d, height=300, title="Residuals (predicted - actual)").mark_bar().encode(
        x=alt.X("residual:Q", bin=alt.Bin(step=1), title="units"),
        y=alt.Y("count():Q", title="decision points", scale=alt.Scale(type="symlog")),
        color=alt.Color("day_part:N", title="Day part", sort=["morning", "afternoon", "evening", "night"]),
        tooltip=[alt.Tooltip("residual:Q", bin=alt.Bin(step=1), title="residual"), "day_part:N",
                 alt.Tooltip("count():Q", title="decision points")],
    )


# ---- what-if --------------------------------------------------------------------------------
def dose_response(sweep: pd.DataFrame, glucose: float) -> alt.LayerChart:
    """Predicted dose against glucose (columns glucose, predicted) with the chosen glucose marked."""
    line = alt.Chart(sweep).mark_line(point=True, interpolate="step-after").encode(
        x=alt.X("glucose:Q", title="glucose at the decision point (mg/dL)"),
        y=alt.Y("predicted:Q", title="predicted Regular dose (units)"),
        tooltip=[alt.Tooltip("glucose:Q", format=".0f"), alt.Tooltip("predicted:Q", format=".0f")],
    )
    rule = alt.Chart(pd.DataFrame({"glucose": [glucose]})).mark_rule(color="#d62728", strokeWidth=2).encode(x="glucose:Q")
    return (line + rule).add_params(_zoom_xy("whatif_zoom")).properties(height=260, title="Dose response at this moment")
