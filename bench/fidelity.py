"""Counterfactual fidelity on the synthetic demo cohort: What-if curves against the true rule.

    .venv/bin/python bench/fidelity.py [--bundle models/demo] [--max-moments 0] [--out docs/results.md]
        [--json docs/fidelity.json]
    .venv/bin/python bench/fidelity.py --demo modern --bundle DIR [--max-moments 0] [--out docs/results.md]

At every pre-meal decision point of the bundle's test part (insulin_core/whatif/fidelity.py says exactly
what is compared), glucose now is swept over 80-400 mg/dL and meal size over less/typical/more;
each point is compared with the patient's own dosing rule. With `--demo modern` the bundle is
one trained on the pump + CGM demo (`train --demo modern`) and the sweeps are glucose and
carbohydrates in grams against each pump's bolus calculator (`fidelity.measure_pump`); the page's
JSON is left as it is. Prints MAE and the share of points
within 1 U per sweep and per patient, appends a dated section to docs/results.md and writes the
figures the What-if page shows to docs/fidelity.json.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from insulin_core.whatif import fidelity  # noqa: E402
from insulin_core.prep.dataset import load_cohort  # noqa: E402
from insulin_core.data.demo import DemoConfig  # noqa: E402
from insulin_core.bundles.registry import load_bundle  # noqa: E402
from insulin_core.data.demo_modern import ModernDemoConfig  # noqa: E402
from insulin_core.data.source import DataSource, demo_source  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundle", default="models/demo")
    ap.add_argument("--max-moments", type=int, default=0, help="0 = every pre-meal moment of the test part")
    ap.add_argument("--out", default="docs/results.md")
    ap.add_argument("--json", default="docs/fidelity.json")
    ap.add_argument("--demo", default="aim94", choices=("aim94", "modern"))
    args = ap.parse_args()
    torch.set_num_threads(1)

    pump = args.demo == "modern"
    cfg = ModernDemoConfig() if pump else DemoConfig()
    cohort = load_cohort(demo_source("modern") if pump else DataSource("demo", demo_patients=cfg.patients))
    bundle = load_bundle(Path(args.bundle))
    if bundle.meta.get("data", {}).get("fingerprint") != cohort.fingerprint:
        print(f"{args.bundle} was not trained on the {args.demo} demo cohort: its test part is not the demo's", file=sys.stderr)
        return 2
    start = time.perf_counter()
    measure = fidelity.measure_pump if pump else fidelity.measure
    found = measure(bundle, cohort.events, cohort.features, cfg, args.max_moments)
    seconds = time.perf_counter() - start
    summary = found.summary()
    print(f"Bundle {args.bundle} (monotone by construction: {bundle.monotone}); {seconds:.0f} s; "
          f"{found.left_out_after_hypo} moments left out (a hypoglycemia's cut applies)")
    print(summary.to_string(float_format=lambda v: f"{v:.3f}"))
    per_patient = found.per_patient()
    print("\nWorst patients (glucose sweep):")
    print(per_patient[per_patient["sweep"] == "glucose"].sort_values("mae_u").tail(5).to_string(index=False))

    command = (".venv/bin/python bench/fidelity.py " + " ".join(sys.argv[1:])).strip()
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    figures = {"bundle": Path(args.bundle).name, "created": bundle.meta.get("created"), "monotone": bundle.monotone,
               "measured": stamp, "command": command,
               "left_out_after_hypo": found.left_out_after_hypo,
               "sweeps": {s: {"moments": int(r.moments), "points": int(r.points), "mae_u": round(float(r.mae_u), 3),
                              "within_1u": round(float(r.within_1u), 4)} for s, r in summary.iterrows()}}
    if not pump:  # the What-if page's figures are the AIM94-format demo's
        Path(args.json).write_text(json.dumps(figures, indent=1) + "\n")
    table = "\n".join(["| sweep | moments | points | MAE (U) | within 1 U |", "|---|---|---|---|---|"]
                      + [f"| {s} | {int(r.moments)} | {int(r.points)} | {r.mae_u:.3f} | {r.within_1u:.1%} |" for s, r in summary.iterrows()])
    with Path(args.out).open("a") as f:
        f.write(f"\n## {stamp}: counterfactual fidelity on the {'pump + CGM ' if pump else ''}demo cohort ({figures['bundle']})\n\n"
                f"Command: `{command}` ({seconds:.0f} s). What-if sweeps against each synthetic patient's own rule "
                f"at the test part's pre-meal moments (insulin_core/whatif/fidelity.py); {found.left_out_after_hypo} moments "
                f"after a hypoglycemia left out (the rule's cut applies there).\n\n{table}\n")
    print(f"\n{'' if pump else f'Wrote {args.json}; '}appended to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
