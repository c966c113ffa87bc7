"""How the AIM94 parser scales: wall time and peak memory on large generated folders.

Two cases, each parsed in a fresh subprocess whose own peak (VmHWM) is reported:
- `valid`: one data file of ~50 MB of distinct valid events (target: < 5 s, < 1 GB);
- `duplicates`: four ~50 MB files, each one small block of events repeated (target: < 20 s, < 2 GB).
A reference computation on the same folder (read the bytes, split them into lines) is timed the
same way, so the ratios say how the parser compares on this machine, whatever its speed.

    .venv/bin/python bench/parser_scale.py [--mb 50] [--case valid|duplicates|all] [--root CHECKOUT]

`--root` measures another checkout (e.g. `git archive` of an older commit) with the same files.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {"valid": (5.0, 1024), "duplicates": (20.0, 2048)}  # seconds, MB

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
folder, mode = sys.argv[1], sys.argv[2]
start = time.perf_counter()
if mode == "parse":
    from insulin_core.data.aim94_folder import load_folder
    report = load_folder(folder).report
    counts = {{"lines": report.lines, "accepted": report.accepted, "rejected": report.rejected_total}}
else:  # reference: read every file and split it into lines, nothing more
    counts = {{"lines": sum(len(p.read_bytes().split(b"\n")) for p in sorted(Path(folder).iterdir()))}}
seconds = time.perf_counter() - start
# VmHWM is this process's own peak; ru_maxrss would carry over the parent's peak across exec.
status = Path("/proc/self/status")
hwm = [l for l in status.read_text().splitlines() if l.startswith("VmHWM")] if status.exists() else []
peak_kb = int(hwm[0].split()[1]) if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"seconds": seconds, "peak_mb": peak_kb / 1024, **counts}}))
"""


def valid_lines(n: int, offset: int = 0) -> bytes:
    """n distinct valid events: one glucose reading a minute, rolling over days from 1990-01-01."""
    import numpy as np
    import pandas as pd

    minutes = np.arange(offset, offset + n)
    stamps = pd.Timestamp("1990-01-01") + pd.to_timedelta(minutes, unit="min")
    dates = stamps.strftime("%m-%d-%Y")
    times = [f"{h}:{m:02d}" for h, m in zip(stamps.hour, stamps.minute)]
    values = (minutes % 500 + 20).astype(str)
    return "".join(f"{d}\t{t}\t58\t{v}\n" for d, t, v in zip(dates, times, values)).encode()


def make_valid(folder: Path, mb: int) -> None:
    block = valid_lines(100_000)
    per_line = len(block) / 100_000
    (folder / "data-01").write_bytes(valid_lines(int(mb * 1e6 / per_line)))


def make_duplicates(folder: Path, mb: int) -> None:
    block = valid_lines(1_000)
    for i in range(1, 5):
        (folder / f"data-{i:02d}").write_bytes(block * int(mb * 1e6 / len(block)))


def run(folder: Path, mode: str, root: str = str(ROOT)) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD.format(root=root), str(folder), mode],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=50, help="size of each generated file")
    parser.add_argument("--case", choices=("valid", "duplicates", "all"), default="all")
    parser.add_argument("--root", default=str(ROOT), help="the checkout whose insulin_core is measured")
    args = parser.parse_args()
    cases = TARGETS if args.case == "all" else {args.case: TARGETS[args.case]}
    for case, (max_s, max_mb) in cases.items():
        with tempfile.TemporaryDirectory(prefix="parser-scale-") as tmp:
            folder = Path(tmp)
            (make_valid if case == "valid" else make_duplicates)(folder, args.mb)
            size = sum(p.stat().st_size for p in folder.iterdir()) / 1e6
            ref, parsed = run(folder, "reference", args.root), run(folder, "parse", args.root)
        ok = parsed["seconds"] < max_s and parsed["peak_mb"] < max_mb
        print(f"{case:10s} {size:6.0f} MB, {parsed['lines']:,} lines ({parsed['accepted']:,} accepted): "
              f"{parsed['seconds']:6.2f} s, peak {parsed['peak_mb']:6.0f} MB | reference "
              f"{ref['seconds']:5.2f} s, {ref['peak_mb']:5.0f} MB | ratio x{parsed['seconds'] / ref['seconds']:.1f} "
              f"time, x{parsed['peak_mb'] / ref['peak_mb']:.1f} memory | target < {max_s:g} s, < {max_mb} MB: "
              f"{'ok' if ok else 'MISSED'}")


if __name__ == "__main__":
    main()
