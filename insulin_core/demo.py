"""A deterministic synthetic cohort in the exact AIM94 file format, clearly labelled synthetic.

Each patient follows a 1990-era regimen: NPH or UltraLente once or twice a day, and Regular before
meals by a personal sliding scale on the pre-meal glucose, shifted for meal size and exercise and
cut after a hypoglycemia. Like many real patients, some write the insulin down a few minutes after
the reading, on a row of its own (`log_delay`): their dose belongs to the decision point before it
(the decision dose, features.py). Doses are therefore learnable: mostly a deterministic function of
(patient, slot, glucose, meal, exercise) with a little noise. A fixed set of broken lines of the
kinds the real files hold is planted so the loader's rejection paths are exercised;
`planted_faults` says where they are, named by the loader's rejection reasons.
"""
from __future__ import annotations

import numbers
import re
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from .codes import DEMO_LABEL, EXERCISE_CODES, MEAL_CODES, PAPER_TIMES_MIN

GENERATOR_VERSION = "1.1"
README_NAME = "README.md"

MEALS = ("breakfast", "lunch", "supper")
PRE_MEAL_CODE = {"breakfast": 58, "lunch": 60, "supper": 62}
POST_MEAL_CODE = {"breakfast": 59, "lunch": 61, "supper": 63}
HYPO_CODE, REGULAR_CODE, UNSPECIFIED_GLUCOSE = 65, 33, 57
BASAL_CODE = {"nph": 34, "ultralente": 35}
PAPER_MIN = dict(zip((*MEALS, "bedtime"), PAPER_TIMES_MIN))

NO_DOSE_BELOW = 80  # mg/dL: the scale holds the Regular below this (a low before a meal)
LOW_TIER_BELOW = 120  # 80-119 mg/dL: one unit less than the base dose
BEDTIME_CORRECTION_FROM = 250  # mg/dL: patients with a bedtime correction take Regular above it
GLUCOSE_CLIP = (36, 480)  # keeps the random walk physiological and inside the meter range
NOISE_SHARE = 0.10  # share of doses that end up 1 U off the scale
LATE_LOGGER_SHARE = 0.4  # clock-time patients who write the insulin 2-12 minutes after the reading

# The order lines take at one moment in the real files: glucose, meal/exercise, hypo, insulin.
_ORDER = {"glucose": 0, "meal": 1, "exercise": 1, "hypo": 2, "regular": 3, "basal": 4}

Fault = tuple[str, int, str]  # (file name, 1-based line number, loader rejection reason)


@dataclass(frozen=True)
class DemoConfig:
    patients: int = 20
    days: int = 90
    seed: int = 0
    start: date = date(1991, 1, 7)

    def __post_init__(self) -> None:
        if not _whole(self.patients) or not 1 <= self.patients <= 99:
            raise ValueError(f"patients must be a whole number from 1 to 99 (data-01..data-99), got {self.patients!r}")
        if not _whole(self.days) or not 1 <= self.days <= 1000:
            raise ValueError(f"days must be a whole number from 1 to 1000, got {self.days!r}")
        if not _whole(self.seed) or self.seed < 0:
            raise ValueError(f"seed must be a whole number >= 0, got {self.seed!r}")
        if not isinstance(self.start, date):
            raise ValueError(f"start must be a datetime.date, got {self.start!r}")


def _whole(x: object) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


@dataclass(frozen=True)
class Patient:
    """One synthetic patient's regimen and habits; everything the dose rule needs."""

    paper: bool  # paper records: logical times 08:00/12:00/18:00/22:00
    basal: str  # "nph" | "ultralente"
    basal_doses: tuple[int, ...]  # one per basal time: breakfast, then supper if twice a day
    base: dict[str, int]  # Regular base dose per meal; 0 at lunch = no lunch Regular
    threshold: int  # mg/dL above which the scale adds units
    step: int  # mg/dL per extra unit
    meal_more: int
    meal_less: int
    exercise_cut: int
    hypo_cut: int  # units taken off the next dose after a hypoglycemia
    bedtime_code: int
    bedtime_correction: bool
    mean_glucose: float
    log_sd: float
    clock_min: dict[str, int]  # usual minute of day per slot (clock-time patients)
    read_prob: dict[str, float]  # chance of a glucose reading per slot
    padded_values: bool  # "009" like data-01, or "9" like data-27
    log_delay: int = 0  # minutes after the reading at which the insulin is written (0 = with it)


def sliding_scale(p: Patient, meal: str, glucose: float | None, meal_size: str = "", exercise: str = "") -> int:
    """The patient's Regular dose (units) before `meal`; 0 means no dose. No noise, no hypo cut."""
    base = p.base[meal]
    if base == 0:
        return 0
    if glucose is None:
        dose = base
    elif glucose < NO_DOSE_BELOW:
        return 0
    elif glucose < LOW_TIER_BELOW:
        dose = base - 1
    else:
        dose = base + max(0, int(glucose - p.threshold) // p.step)
    dose += {"more": p.meal_more, "less": -p.meal_less}.get(meal_size, 0)
    dose -= {"less": 1, "typical": p.exercise_cut, "more": p.exercise_cut + 1}.get(exercise, 0)
    return max(dose, 0)


def generate_cohort(cfg: DemoConfig) -> dict[str, str]:
    """File name (`data-01`...) -> AIM94 text. Same config -> byte-identical output."""
    return _build(cfg)[0]


def planted_faults(cfg: DemoConfig) -> list[Fault]:
    """(file, line, reason) of every planted broken line, reasons named as the loader names them."""
    return _build(cfg)[1]


def write_cohort(dest: Path, cfg: DemoConfig) -> list[Path]:
    """Write the cohort and a README that labels it synthetic; returns the paths written."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    _clear_old_demo(dest)
    texts, faults = _build(cfg)
    paths = []
    for name, text in texts.items():
        path = dest / name
        path.write_text(text, encoding="ascii", newline="")
        paths.append(path)
    readme = dest / README_NAME
    readme.write_text(_readme(cfg, faults), encoding="utf-8")
    return [*paths, readme]


def _clear_old_demo(dest: Path) -> None:
    """Remove stale data-NN files of an earlier demo; refuse to write over anything else."""
    old = [p for p in dest.iterdir() if re.fullmatch(r"data-\d\d", p.name)]
    if not old:
        return
    readme = dest / README_NAME
    if not (readme.is_file() and DEMO_LABEL in readme.read_text(encoding="utf-8", errors="replace")):
        raise ValueError(f"{dest} already holds data-NN files that are not a demo cohort; refusing to overwrite them")
    for path in old:
        path.unlink()


def _readme(cfg: DemoConfig, faults: list[Fault]) -> str:
    planted = "\n".join(f"- `{f}` line {n}: {reason}" for f, n, reason in faults)
    return (
        f"# {DEMO_LABEL.upper()}\n\n"
        f"**{DEMO_LABEL}. THESE ARE NOT REAL PATIENTS AND NOT MEDICAL DATA.** Generated by "
        f"`insulin_core.demo` (generator version {GENERATOR_VERSION}) in the AIM94 file format, "
        "for demonstrations and tests only. Never use it to decide a real insulin dose.\n\n"
        f"- seed: {cfg.seed}\n- patients: {cfg.patients}\n- days: {cfg.days}\n"
        f"- start: {cfg.start.isoformat()}\n- generator version: {GENERATOR_VERSION}\n\n"
        f"## Planted broken lines ({len(faults)})\n\n"
        "Deliberately broken lines of the kinds the real files hold; a loader must reject them.\n\n"
        f"{planted}\n"
    )


# --- generation ---------------------------------------------------------------------------------

def regimens(cfg: DemoConfig) -> dict[int, Patient]:
    """Patient id (data-NN -> NN) -> the regimen its doses follow: the known truth a What-if curve
    can be checked against (bench/fidelity.py)."""
    return dict(enumerate(_regimens(np.random.default_rng(cfg.seed), cfg.patients), start=1))


def _regimens(rng: np.random.Generator, n: int) -> list[Patient]:
    paper = _paper_flags(rng, n)
    patients = [_draw_patient(rng, bool(flag)) for flag in paper]
    late = _late_flags(rng, [p.paper for p in patients])
    return [replace(p, log_delay=int(rng.integers(2, 13)) if is_late else 0) for p, is_late in zip(patients, late)]


def _build(cfg: DemoConfig) -> tuple[dict[str, str], list[Fault]]:
    rng = np.random.default_rng(cfg.seed)
    patients = _regimens(rng, cfg.patients)
    children = rng.spawn(cfg.patients)
    dates = [(cfg.start + timedelta(days=d)).strftime("%m-%d-%Y") for d in range(cfg.days)]
    files: dict[str, list[str]] = {}
    censor_spots: list[tuple[str, int, str]] = []  # (file, line index, "0Hi"/"0Lo") candidates
    for number, (patient, child) in enumerate(zip(patients, children), start=1):
        name = f"data-{number:02d}"
        lines, spots = _patient_lines(patient, child, cfg.days, dates)
        files[name] = lines
        censor_spots += [(name, i, word) for i, word in spots]
    _plant_censored(rng, files, censor_spots)
    return _plant_faults(rng, files)


def _late_flags(rng: np.random.Generator, paper: list[bool]) -> np.ndarray:
    """Which patients write the insulin minutes after the reading: a share of the clock-time ones,
    at least one whenever there are two (paper records have fixed logical times)."""
    clock = np.flatnonzero(~np.asarray(paper, dtype=bool))
    n_late = 0 if len(clock) < 2 else max(1, round(LATE_LOGGER_SHARE * len(clock)))
    flags = np.zeros(len(paper), dtype=bool)
    flags[rng.permutation(clock)[:n_late]] = True
    return flags


def _paper_flags(rng: np.random.Generator, n: int) -> np.ndarray:
    """About a third of the patients keep paper records; at least one each way when n >= 2."""
    n_paper = 0 if n == 1 else max(1, round(n / 3))
    flags = np.zeros(n, dtype=bool)
    flags[rng.permutation(n)[:n_paper]] = True
    return flags


def _draw_patient(rng: np.random.Generator, paper: bool) -> Patient:
    basal = "nph" if rng.random() < 0.7 else "ultralente"
    twice = rng.random() < (0.6 if basal == "nph" else 0.4)
    morning = int(rng.integers(8, 25) if basal == "nph" else rng.integers(10, 29))
    doses = (morning, int(rng.integers(4, 13))) if twice else (morning,)
    # The classic split-mixed regimen (Regular + NPH twice a day) often skips Regular at lunch.
    lunch = 0 if (basal == "nph" and twice and rng.random() < 0.5) else int(rng.integers(2, 7))
    return Patient(
        paper=paper, basal=basal, basal_doses=doses,
        base={"breakfast": int(rng.integers(3, 10)), "lunch": lunch, "supper": int(rng.integers(3, 9))},
        threshold=int(rng.choice([120, 140, 150, 160])), step=int(rng.choice([40, 50])),
        meal_more=int(rng.integers(1, 3)), meal_less=int(rng.integers(1, 3)),
        exercise_cut=int(rng.integers(1, 3)), hypo_cut=int(rng.integers(1, 3)),
        bedtime_code=int(rng.choice([48, 57, 64], p=[0.6, 0.2, 0.2])),
        bedtime_correction=bool(rng.random() < 0.5),
        mean_glucose=float(rng.uniform(135, 185)), log_sd=float(rng.uniform(0.32, 0.42)),
        clock_min={
            "breakfast": int(rng.integers(390, 481)), "lunch": int(rng.integers(690, 781)),
            "supper": int(rng.integers(1020, 1111)), "bedtime": int(rng.integers(1290, 1351)),
        },
        read_prob={
            "breakfast": 0.95, "lunch": float(rng.uniform(0.35, 0.8)), "supper": 0.88,
            "bedtime": float(rng.uniform(0.25, 0.7)), "post": 0.0 if paper else 0.07,
        },
        padded_values=bool(rng.random() < 0.7),
    )


@dataclass
class _Draws:
    """Every random number one patient needs, drawn up front as arrays (one row per day)."""

    glucose: np.ndarray  # (days, 4): breakfast, lunch, supper, bedtime
    read: np.ndarray  # (days, 5) bool: breakfast, lunch, supper, bedtime, post
    post_meal: np.ndarray  # (days,) which meal gets the post-meal reading
    post_rise: np.ndarray  # (days,)
    post_delay: np.ndarray  # (days,) minutes after the meal
    jitter: np.ndarray  # (days, 4) minutes
    meal_size: np.ndarray  # (days, 3) "" | typical | more | less
    exercise: np.ndarray  # (days, 3)
    noise: np.ndarray  # (days, 4) -1 | 0 | +1 (three meals and bedtime)
    insulin_only: np.ndarray  # (days, 3) bool: Regular without a reading when there is none
    hypo_day: np.ndarray  # (days,) bool: a hypoglycemia between meals
    hypo_night: np.ndarray  # (days,) bool: at night rather than in the afternoon
    hypo_value: np.ndarray  # (days,)
    hypo_offset: np.ndarray  # (days,) minutes
    low_symptoms: np.ndarray  # (days, 3) bool: a low pre-meal reading comes with symptoms
    basal_step: np.ndarray  # (days,) titration of the basal dose: -1 | 0 | +1


def _draw(rng: np.random.Generator, p: Patient, days: int) -> _Draws:
    read = rng.random((days, 5)) < np.array([p.read_prob[k] for k in ("breakfast", "lunch", "supper", "bedtime", "post")])
    # 2-4 readings a day (hypo readings come on top).
    few = read.sum(axis=1) < 2
    read[few, 0] = read[few, 2] = True
    read[read.sum(axis=1) > 4, 4] = False
    sizes = np.array(["", "typical", "more", "less"])
    efforts = np.array(["", "less", "typical", "more"])
    return _Draws(
        glucose=_glucose_walk(rng, p, days), read=read,
        post_meal=rng.integers(0, 3, days), post_rise=rng.uniform(1.1, 1.5, days),
        post_delay=rng.integers(90, 151, days),
        jitter=np.clip(rng.normal(0, 22, (days, 4)), -70, 70).round().astype(int),
        meal_size=sizes[rng.choice(4, (days, 3), p=[0.86, 0.05, 0.05, 0.04])],
        exercise=efforts[rng.choice(4, (days, 3), p=[0.93, 0.02, 0.03, 0.02])],
        noise=rng.choice([-1, 0, 1], (days, 4), p=[NOISE_SHARE / 2, 1 - NOISE_SHARE, NOISE_SHARE / 2]),
        insulin_only=rng.random((days, 3)) < 0.35,
        hypo_day=rng.random(days) < 0.025, hypo_night=rng.random(days) < 0.4,
        hypo_value=rng.integers(32, 63, days), hypo_offset=rng.integers(0, 91, days),
        low_symptoms=rng.random((days, 3)) < 0.6,
        basal_step=rng.choice([-1, 0, 1], days, p=[0.02, 0.96, 0.02]),
    )


def _glucose_walk(rng: np.random.Generator, p: Patient, days: int) -> np.ndarray:
    """A log-space AR(1) walk over the day's four slots: skewed, persistent, bounded."""
    phi = 0.5
    shocks = rng.normal(0.0, p.log_sd * np.sqrt(1 - phi**2), days * 4)
    z = np.empty_like(shocks)
    level = 0.0
    for i, shock in enumerate(shocks):  # 4 * days steps: cheap, and clearer than a filter call
        level = phi * level + shock
        z[i] = level
    slot_factor = np.array([1.0, 0.9, 1.05, 1.1])  # dawn effect, lunch dip, evening and bedtime rise
    values = p.mean_glucose * slot_factor * np.exp(z.reshape(days, 4))
    return np.clip(values.round(), *GLUCOSE_CLIP).astype(int)


class _Day:
    """Collects one day's events, then renders them in the order the real files use."""

    def __init__(self, p: Patient) -> None:
        self.p = p
        # minute, order, code, value, and the meter word the reading could become ("" = none)
        self.events: list[tuple[int, int, int, str, str]] = []

    def add(self, minute: int, kind: str, code: int, value: int, censor: str = "") -> None:
        text = f"{value:03d}" if self.p.padded_values else str(value)
        self.events.append((minute, _ORDER[kind], code, text, censor))

    def render(self, day: str) -> list[tuple[str, str]]:
        out = []
        for minute, _, code, value, censor in sorted(self.events, key=lambda e: e[:3]):
            hh, mm = divmod(minute, 60)
            clock = f"{hh:02d}:{mm:02d}" if self.p.paper else f"{hh}:{mm:02d}"
            out.append((f"{day}\t{clock}\t{code}\t{value}", censor))
        return out


def _patient_lines(p: Patient, rng: np.random.Generator, days: int, dates: list[str]) -> tuple[list[str], list[tuple[int, str]]]:
    """The patient's lines, plus (index, "0Hi"/"0Lo") of readings that could be a meter word."""
    d = _draw(rng, p, days)
    lines: list[str] = []
    spots: list[tuple[int, str]] = []
    basal = list(p.basal_doses)
    after_hypo = False
    for day in range(days):
        if d.basal_step[day]:
            basal = [max(2, b + int(d.basal_step[day])) for b in basal]
        today = _Day(p)
        after_hypo = _one_day(today, p, d, day, basal, after_hypo)
        for text, censor in today.render(dates[day]):
            if censor:
                spots.append((len(lines), censor))
            lines.append(text)
    return lines, spots


def _one_day(today: _Day, p: Patient, d: _Draws, day: int, basal: list[int], after_hypo: bool) -> bool:
    """Add one day's events in time order; returns whether a hypo awaits its smaller next dose."""
    times = _slot_times(p, d, day)
    hypo_minute = _hypo_minute(p, d, day, times)
    if hypo_minute is not None and hypo_minute < times["breakfast"]:
        after_hypo = _hypo(today, d, day, hypo_minute)
    for i, meal in enumerate(MEALS):
        after_hypo = _meal(today, p, d, day, i, meal, times[meal], basal, after_hypo)
        if d.read[day, 4] and d.post_meal[day] == i:
            _post_meal(today, d, day, meal, times)
        if meal == "lunch" and hypo_minute is not None and times["lunch"] < hypo_minute < times["supper"]:
            after_hypo = _hypo(today, d, day, hypo_minute)
    return _bedtime(today, p, d, day, times["bedtime"], after_hypo)


def _post_meal(today: _Day, d: _Draws, day: int, meal: str, times: dict[str, int]) -> None:
    """A post-meal reading 1.5-2.5 h after the meal, kept clear of the next slot."""
    next_slot = {"breakfast": "lunch", "lunch": "supper", "supper": "bedtime"}[meal]
    minute = min(times[meal] + int(d.post_delay[day]), times[next_slot] - 20)
    if minute <= times[meal] + 30:
        return
    value = int(min(round(d.glucose[day, MEALS.index(meal)] * d.post_rise[day]), GLUCOSE_CLIP[1]))
    today.add(minute, "glucose", POST_MEAL_CODE[meal], value, censor="0Hi")


def _slot_times(p: Patient, d: _Draws, day: int) -> dict[str, int]:
    slots = (*MEALS, "bedtime")
    if p.paper:
        return {s: PAPER_MIN[s] for s in slots}
    return {s: p.clock_min[s] + int(d.jitter[day, i]) for i, s in enumerate(slots)}


def _hypo_minute(p: Patient, d: _Draws, day: int, times: dict[str, int]) -> int | None:
    """When today's between-meal hypo happens: night or afternoon (clock records only)."""
    if p.paper or not d.hypo_day[day]:
        return None
    if d.hypo_night[day]:
        return 120 + int(d.hypo_offset[day])  # 2:00-3:30
    return times["lunch"] + 160 + int(d.hypo_offset[day]) // 2  # mid-afternoon, after any post-lunch reading


def _hypo(today: _Day, d: _Draws, day: int, minute: int) -> bool:
    today.add(minute, "glucose", UNSPECIFIED_GLUCOSE, int(d.hypo_value[day]), censor="0Lo")
    today.add(minute, "hypo", HYPO_CODE, 0)
    return True


def _meal(today: _Day, p: Patient, d: _Draws, day: int, i: int, meal: str, minute: int,
          basal: list[int], after_hypo: bool) -> bool:
    """Reading, meal/exercise notes and insulin at one meal; returns the pending-hypo flag."""
    glucose = int(d.glucose[day, i]) if d.read[day, i] else None
    size, effort = str(d.meal_size[day, i]), str(d.exercise[day, i])
    if glucose is not None:
        today.add(minute, "glucose", PRE_MEAL_CODE[meal], glucose)
    if size:
        today.add(minute, "meal", MEAL_CODES[size], 0)
    if effort:
        today.add(minute, "exercise", EXERCISE_CODES[effort], 0)
    if glucose is not None and glucose < NO_DOSE_BELOW and d.low_symptoms[day, i]:
        today.add(minute, "hypo", HYPO_CODE, 0)
        after_hypo = True
    # Without a reading, Regular is taken (at its base) only at breakfast or some of the time.
    takes_regular = glucose is not None or meal == "breakfast" or bool(d.insulin_only[day, i])
    dose = sliding_scale(p, meal, glucose, size, effort) if takes_regular else 0
    if dose > 0:
        if after_hypo:
            dose, after_hypo = max(dose - p.hypo_cut, 1), False
        dose = max(dose + int(d.noise[day, i]), 1)
        today.add(minute + p.log_delay, "regular", REGULAR_CODE, dose)
    basal_slot = {"breakfast": 0, "supper": 1}.get(meal)
    if basal_slot is not None and basal_slot < len(basal):
        today.add(minute + p.log_delay, "basal", BASAL_CODE[p.basal], basal[basal_slot])
    return after_hypo


def _bedtime(today: _Day, p: Patient, d: _Draws, day: int, minute: int, after_hypo: bool) -> bool:
    if p.paper and d.hypo_day[day]:  # paper records note a night low at the bedtime slot
        return _hypo(today, d, day, minute)
    if not d.read[day, 3]:
        return after_hypo
    glucose = int(d.glucose[day, 3])
    dose = 0
    if p.bedtime_correction and glucose >= BEDTIME_CORRECTION_FROM:
        dose = 1 + (glucose - BEDTIME_CORRECTION_FROM) // 50
    today.add(minute, "glucose", p.bedtime_code, glucose, censor="" if dose else "0Hi")
    if dose:
        if after_hypo:
            dose, after_hypo = max(dose - p.hypo_cut, 1), False
        today.add(minute + p.log_delay, "regular", REGULAR_CODE, max(dose + int(d.noise[day, 3]), 1))
    return after_hypo


# --- planted oddities ---------------------------------------------------------------------------

def _plant_censored(rng: np.random.Generator, files: dict[str, list[str]], spots: list[tuple[str, int, str]]) -> None:
    """One 0Hi on the highest no-dose reading and one 0Lo on a hypo reading, where there are any."""
    for word in ("0Hi", "0Lo"):
        mine = [s for s in spots if s[2] == word]
        if not mine:
            continue
        if word == "0Hi":  # the highest such reading: a meter over range is believable there
            values = [int(files[f][i].split("\t")[3]) for f, i, _ in mine]
            name, index, _ = mine[int(np.argmax(values))]
        else:
            name, index, _ = mine[int(rng.integers(len(mine)))]
        date_, clock, code, _ = files[name][index].split("\t")
        files[name][index] = f"{date_}\t{clock}\t{code}\t{word}"


def _fault_templates(day: str) -> list[list[tuple[str, str]]]:
    """Broken records as the real files have them; each a list of (line, reason)."""
    year = day[-4:]
    return [
        [(f"06-31-{year}\t07:50\t58\t149", "impossible_date")],
        [(f"{day}\t56:35\t58\t237", "impossible_time")],
        [(f"{day}\t188:00\t33\t005", "impossible_time")],
        [(f"{day}\t11:0\t60\t194", "bad_time")],
        [(f"{day}\t11:00\t57\t0''", "non_numeric_value")],
        [(f"{day}\t7:00\t33\t3A", "non_numeric_value")],
        [(f"{day}\t7:00\t0\t000", "unknown_code")],
        [(f"{day}\t8:15\t4\t012", "unknown_code")],
        [(f"{day}\t17:30\t36\t100", "unknown_code")],
        [(f"{day}\t5:56\t56\t108", "unknown_code")],
        # data-27: a record split over two lines.
        [(f"{day}\t7:00\t0\t", "missing_field"), ("\t138\t33\t3A", "shifted_fields")],
        [(f"{day}\t\t33\t004", "missing_field")],
        [(f"{day}\t12:00\t60", "wrong_field_count")],
    ]


def _plant_faults(rng: np.random.Generator, files: dict[str, list[str]]) -> tuple[dict[str, str], list[Fault]]:
    """Insert the broken records at random places; returns texts and where each broken line ended up."""
    names = list(files)
    inserts: dict[str, list[tuple[int, int, list[tuple[str, str]]]]] = {n: [] for n in names}
    for k in range(len(_fault_templates("01-01-1990"))):
        name = names[int(rng.integers(len(names)))]
        after = int(rng.integers(1, len(files[name]) + 1))  # insert after this many lines
        day = files[name][after - 1].split("\t")[0]
        inserts[name].append((after, k, _fault_templates(day)[k]))
    texts: dict[str, str] = {}
    faults: list[Fault] = []
    for name in names:
        out: list[str] = []
        pending = sorted(inserts[name], key=lambda x: x[:2])
        for n_done, line in enumerate(files[name], start=1):
            out.append(line)
            while pending and pending[0][0] == n_done:
                for text, reason in pending.pop(0)[2]:
                    out.append(text)
                    faults.append((name, len(out), reason))
        texts[name] = "".join(f"{line}\n" for line in out)
    return texts, faults
