"""The AIM94 code table and the clinical constants every other module reads.

One source of truth: the code table (from the data set's `Data-Codes` file), the paper-record
times, the day-part boundaries, the meter range and the plausibility limits for doses.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Code:
    kind: str  # glucose | regular | nph | ultralente | hypo | meal | exercise | special
    detail: str  # glucose slot, meal size or exercise level; "" where it has none
    label: str  # the wording of Data-Codes


CODE_TABLE: dict[int, Code] = {
    33: Code("regular", "", "Regular insulin dose"),
    34: Code("nph", "", "NPH insulin dose"),
    35: Code("ultralente", "", "UltraLente insulin dose"),
    48: Code("glucose", "unspecified", "Unspecified blood glucose measurement"),
    57: Code("glucose", "unspecified", "Unspecified blood glucose measurement"),
    58: Code("glucose", "pre_breakfast", "Pre-breakfast blood glucose measurement"),
    59: Code("glucose", "post_breakfast", "Post-breakfast blood glucose measurement"),
    60: Code("glucose", "pre_lunch", "Pre-lunch blood glucose measurement"),
    61: Code("glucose", "post_lunch", "Post-lunch blood glucose measurement"),
    62: Code("glucose", "pre_supper", "Pre-supper blood glucose measurement"),
    63: Code("glucose", "post_supper", "Post-supper blood glucose measurement"),
    64: Code("glucose", "pre_snack", "Pre-snack blood glucose measurement"),
    65: Code("hypo", "", "Hypoglycemic symptoms"),
    66: Code("meal", "typical", "Typical meal ingestion"),
    67: Code("meal", "more", "More-than-usual meal ingestion"),
    68: Code("meal", "less", "Less-than-usual meal ingestion"),
    69: Code("exercise", "typical", "Typical exercise activity"),
    70: Code("exercise", "more", "More-than-usual exercise activity"),
    71: Code("exercise", "less", "Less-than-usual exercise activity"),
    72: Code("special", "", "Unspecified special event"),
}

INSULIN_KINDS = ("regular", "nph", "ultralente")
GLUCOSE_CODES = tuple(c for c, v in CODE_TABLE.items() if v.kind == "glucose")
# Reverse lookups used by writers (demo cohort, what-if edits).
MEAL_CODES = {"typical": 66, "more": 67, "less": 68}
EXERCISE_CODES = {"typical": 69, "more": 70, "less": 71}
# Ordinal levels: what a meal or exercise slider means numerically. 0 = nothing recorded.
LEVELS = {"none": 0.0, "less": 1.0, "typical": 2.0, "more": 3.0}
LEVEL_NAMES = tuple(LEVELS)  # none, less, typical, more


def level_name(value: float) -> str:
    """The level (LEVEL_NAMES) of a meal or exercise value, rounded to the nearest. A value off the
    scale (below -0.5, from 3.5 up, NaN) is given as the number itself; no recorded or edited moment
    has one (features write LEVELS' values, an unknown word reads as none), so it shows a bug."""
    if not -0.5 <= value < len(LEVEL_NAMES) - 0.5:  # as 0 <= round(value) < 4, and False for NaN
        return f"{value:g}"
    return LEVEL_NAMES[int(round(value))]

# Paper records carry fictitious "logical" times (Data-Codes): breakfast, lunch, dinner, bedtime.
PAPER_TIMES_MIN = (8 * 60, 12 * 60, 18 * 60, 22 * 60)

# Day parts by hour of day, [start, end). Night wraps midnight.
DAY_PARTS = ("morning", "afternoon", "evening", "night")
DAY_PART_STARTS = {"morning": 5, "afternoon": 11, "evening": 17, "night": 22}

# Blood glucose meters of the time read roughly 10-600 mg/dL. The files write "0Hi"/"0Lo" for a
# reading above/below that range: we keep such a reading as a censored value at the limit
# (a real, clinically important high or low), flagged in the `censored` column.
GLUCOSE_METER_MIN = 10.0
GLUCOSE_METER_MAX = 600.0
# mg/dL per mmol/L of glucose (molar mass 180.16 g/mol): the factor the modern readers convert with.
MGDL_PER_MMOL = 18.0182

# Doses above these are typing errors (real data: 344, 99 and 60 U of Regular; 240-388 U of
# NPH/UltraLente). The loader keeps them but flags them `implausible`; training leaves them out
# by default (TrainData option) and evaluation reports metrics with and without them.
MAX_PLAUSIBLE_DOSE = {"regular": 40.0, "nph": 100.0, "ultralente": 100.0}

# The decision dose: minutes after a decision point within which Regular written on an
# insulin-only row belongs to that decision (many patients logged the dose minutes after the
# reading). 0 = only the dose written at the moment itself, the earlier definition.
DEFAULT_DOSE_WINDOW_MIN = 60
# A CGM reading is a decision point only at this cadence (prep/timeline.py, `cgm_decisions`): the
# first reading in each clock interval of this many minutes. 60: about a dozen glucose checks in a
# waking day, of the order a pump user looks at the CGM, and meals, fingersticks and exercise add
# their own points; every 5 minutes would make 12 no-dose moments per dose moment.
DEFAULT_CGM_EVERY_MIN = 60
CGM_CODE = 48  # the readers' CGM code (data/readers/base.py); AIM94's 48 is a meter reading
MAX_DOSE_WINDOW_MIN = 24 * 60

DEMO_LABEL = "SYNTHETIC demo cohort (not real patients)"
