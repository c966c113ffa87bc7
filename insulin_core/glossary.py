"""A short glossary for a stakeholder: the words the dashboard and the CLI use, in plain English.

One place for the text, so the dashboard (a sidebar popover on every page, ui/glossary.py) and the
command line (`python -m insulin_core glossary`) say the same thing. Numbers come from the code's
own constants, so the text cannot drift from what the code does.
"""
from __future__ import annotations

from .models.baselines import BASELINES
from .data.codes import DEFAULT_DOSE_WINDOW_MIN, MAX_PLAUSIBLE_DOSE
from .models.intervals import P_DOSE_EDGES
from .labels import PREDICTOR_LABELS
from .evaluation.metrics import WITHIN_UNITS
from .prep.splits import FRACTIONS

_TRAIN, _VAL, _TEST = (round(f * 100) for f in FRACTIONS)

TERMS: dict[str, str] = {
    "Decision point": (
        "A moment in a patient's diary when something was recorded that a dose decision depends on: a glucose "
        "reading, a meal, exercise or hypoglycemic symptoms. The model predicts the Regular insulin dose at each one."),
    "Decision dose": (
        "The Regular insulin counted as given at a decision point: the dose written at that moment plus any "
        f"Regular written on a row of its own up to {DEFAULT_DOSE_WINDOW_MIN} minutes later (before the next decision "
        "point), because many patients logged the dose a few minutes after the reading. 0 U when none was given."),
    "Regular, NPH, UltraLente": (
        "The three insulins in the AIM94 diaries: Regular is fast-acting (the dose predicted here); NPH and "
        "UltraLente are slower, basal insulins. Doses above "
        f"{MAX_PLAUSIBLE_DOSE['regular']:g} U of Regular or {MAX_PLAUSIBLE_DOSE['nph']:g} U of NPH/UltraLente are "
        "treated as typing errors (implausible)."),
    "MAE": (
        "Mean absolute error: the average distance, in units (U), between the predicted and the actual dose. "
        "Lower is better; 0 would be perfect."),
    "R²": (
        "How much of the variation in the actual doses the predictions explain: 1 is perfect, 0 is no better than "
        "always predicting the average dose, below 0 is worse than that."),
    "Within ±1 U": (
        f"The share of decision points where the prediction is at most {WITHIN_UNITS:g} unit away from the actual "
        "dose. Higher is better."),
    "On dose occasions": (
        "The same scores counted only where a Regular dose was actually given. Most decision points have no dose, "
        "so scores over all points reward predicting 0; these say how well the amount is judged when it matters."),
    "P(dose)": (
        "The model's probability that a Regular dose is given at this moment at all (before how much). Above its "
        "threshold the model suggests a dose: 0.5 for the patients it trained on; for a patient it has never seen, "
        "a threshold chosen on the validation part (fewer missed doses, more unwanted ones). Near the "
        "threshold, dose and no dose are about equally likely: the dashboard flags that as a coin toss."),
    "90% interval": (
        "A range that should hold the actual dose 9 times out of 10 (split-conformal: sized on the validation "
        f"part's errors, separately for P(dose) below {P_DOSE_EDGES[0]:g}, "
        + ", ".join(f"{a:g}-{b:g}" for a, b in zip(P_DOSE_EDGES, P_DOSE_EDGES[1:]))
        + f" and above {P_DOSE_EDGES[-1]:g}). The Predictions page shows how often it really did."),
    "Split: chrono": (
        f"Each patient's first {_TRAIN}% of decision points (by time) train the model, the next {_VAL}% validate it, "
        f"the last {_TEST}% test it. Answers: how well does it do in the next weeks of a patient it knows?"),
    "Split: patients": (
        f"Whole patients are held out: {_TRAIN}% of patients train, {_VAL}% validate, {_TEST}% test. Answers: how "
        "well does it do for a new patient?"),
    "Split: random": (
        "Decision points shuffled at random. Overlapping windows of one patient land on both sides, so it flatters "
        "the scores; kept only to show by how much."),
    "Train, validation and test parts": (
        "The model learns from the training part, stops and sizes its intervals on the validation part, and is "
        "scored on the test part, which it never saw."),
    "Baselines": (
        "Simple ways to guess the dose, fitted on the same training part and scored on the same test part, so the "
        "model is judged beside them: "
        + "; ".join(f"{PREDICTOR_LABELS[b]}" for b in BASELINES) + ". A model that does not beat the best "
        "baseline adds nothing."),
    **{f"Baseline: {PREDICTOR_LABELS[b]}": text for b, text in {
        "previous_row": "The Regular dose of the diary entry just before (0 if none).",
        "last_same_daypart": "The patient's last Regular dose at the same time of day: 'what I did last time'.",
        "sliding_scale": "The patient's own habit: their median dose at this time of day and glucose level "
                         "(40 mg/dL bands) in the training part.",
        "ridge": "A linear model on the same inputs as the network.",
        "gbm": "Gradient boosting (many small decision trees) on the same inputs as the network.",
        "two_stage_gbm": "Two gradient-boosting models: one decides whether a dose is given, the other how much. "
                         "Usually the strongest baseline.",
        "gbm_monotone": "Gradient boosting held to the network's rule: never less insulin for a higher glucose now, "
                        "never more for more exercise now.",
        "two_stage_gbm_monotone": "Two-stage gradient boosting held to the network's rule: never less insulin (nor a "
                                  "lower chance of a dose) for a higher glucose now, never more for more exercise now.",
    }.items() if b in BASELINES},
}


def glossary_text(width: int = 0) -> str:
    """The glossary as plain text: each term, then its explanation (for the command line)."""
    import textwrap

    lines = []
    for term, text in TERMS.items():
        lines.append(term)
        body = textwrap.fill(text, width, initial_indent="  ", subsequent_indent="  ") if width else f"  {text}"
        lines += [body, ""]
    return "\n".join(lines).rstrip() + "\n"


def glossary_markdown() -> str:
    return "\n".join(f"- **{term}**: {text}" for term, text in TERMS.items())
