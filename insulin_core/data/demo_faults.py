"""The oddities planted in the demo cohort (demo.py), of the kinds the real AIM94 files hold: a
censored reading each way ("0Hi", "0Lo") and a fixed set of broken lines, each named by the
loader's rejection reason, so every rejection path of aim94.py is exercised."""
from __future__ import annotations

import numpy as np

Fault = tuple[str, int, str]  # (file name, 1-based line number, loader rejection reason)


def plant_censored(rng: np.random.Generator, files: dict[str, list[str]], spots: list[tuple[str, int, str]]) -> None:
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


def plant_faults(rng: np.random.Generator, files: dict[str, list[str]]) -> tuple[dict[str, str], list[Fault]]:
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
