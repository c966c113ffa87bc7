"""Snapshot of every prediction path, to show that a refactor changes no answer.

    .venv/bin/python bench/prediction_snapshot.py save OUT.pkl [--data DIR] [--code DIR] [--models DIR]
    .venv/bin/python bench/prediction_snapshot.py compare BEFORE.pkl AFTER.pkl

`save` loads the core from --code (default: this checkout; a git worktree of an older commit
compares code), reads the cohort from --data (a folder of AIM94 files; default the demo cohort),
trains a small bundle into --models once (then reuses it, so both sides use the same weights) and
stores: the predictions table (model and every baseline), its test metrics and per-patient table,
97 what-if answers (edits of the moment, time of day, sweeps, explanations, the next moment) and
the monotonicity share. It also trains two tiny models afresh, through `run_experiment` and through
a background run's worker body (`runs.work`, in this process), and stores their weights (SHA-256 of
every tensor) and metadata without clock times. `compare` prints whether each part is identical;
the predictions as CSV bytes, on the columns both sides have.
"""
from __future__ import annotations

import argparse
import hashlib
import pickle
import sys
from pathlib import Path


def _core(name: str, *paths: str):
    """`name` from the first core module that has it: each path in the stage layout (`whatif.engine`),
    then the same module in the flat layout before it (`whatif`, `safety`), so an older checkout
    (--code) still saves."""
    import importlib

    flat = {"whatif.engine": "whatif", "jobs.machinery": "jobs", "bundles.schema": "bundle_schema"}
    for path in (*paths, *(flat.get(p, p.rsplit(".", 1)[-1]) for p in paths)):
        try:
            module = importlib.import_module(f"insulin_core.{path}")
        except ModuleNotFoundError:
            continue
        if hasattr(module, name):
            return getattr(module, name)
    raise ImportError(f"no core module of {paths} has {name}")


def _pipeline():
    return tuple(_core(name, "evaluation.pipeline") for name in ("ExperimentConfig", "bundle_meta", "run_experiment"))


def save(args) -> None:
    sys.path.insert(0, str(Path(args.code).resolve()))
    import torch

    load_cohort = _core("load_cohort", "prep.dataset")
    load_bundle, save_bundle = _core("load_bundle", "bundles.registry"), _core("save_bundle", "bundles.registry")
    Scenario = _core("Scenario", "whatif.scenarios")
    metrics_of, per_patient_of, predictions_table = (_core(name, "bundles.serving") for name in
                                                     ("metrics_of", "per_patient_of", "predictions_table"))
    DataSource = _core("DataSource", "data.source")
    WhatIf = _core("WhatIf", "whatif.engine")
    nonmonotone_share = _core("nonmonotone_share", "whatif.safety", "whatif.engine")

    torch.set_num_threads(1)
    cohort = load_cohort(DataSource("folder", args.data) if args.data else DataSource("demo"))
    models = Path(args.models)
    if not (models / "snap").exists():
        TrainConfig = _core("TrainConfig", "configs")
        ExperimentConfig, bundle_meta, run_experiment = _pipeline()

        exp, cfg = ExperimentConfig(), TrainConfig(epochs=8, threads=1)
        r = run_experiment(cohort.features, exp, dict(lstm_hidden=16, gru_hidden=8, dense=(32,), members=2, now_bins=8),
                           cfg, baselines=[])
        save_bundle(r.training.model, bundle_meta(r, exp, cfg, cohort.source.label, cohort.fingerprint), "snap", models)
    bundle = load_bundle(models / "snap")
    table = predictions_table(bundle, cohort)
    out = {"table": table, "metrics": metrics_of(table, "test"), "per_patient": per_patient_of(table, "test")}
    engine = WhatIf(bundle, cohort.events, cohort.features)
    answers = []
    points = table[table.part == "test"].groupby("patient_id").tail(2)[["patient_id", "timestamp"]].head(12)
    for pid, ts in points.itertuples(index=False):
        for edits in ({}, {"glucose_now": 250.0}, {"meal_now": "more"}, {"glucose_now": 90.0, "exercise_now": "more"},
                      {"time_of_day": "06:30"}):
            p = engine.predict(Scenario(int(pid), ts, **edits))
            answers.append((pid, str(ts), str(edits), p.dose, p.low, p.high, p.p_dose, p.amount, p.unedited_dose,
                            [f.message for f in p.flags]))
        answers.append(("sweep", pid, str(ts), engine.sweep_glucose(Scenario(int(pid), ts), points=30).table().to_numpy().tolist()))
        answers.append(("meal", pid, str(ts), engine.sweep_meal(Scenario(int(pid), ts)).table().to_numpy().tolist()))
        ex = engine.explain(Scenario(int(pid), ts, glucose_now=200.0))
        answers.append(("explain", pid, str(ts), ex.expected_dose, ex.reference_dose, ex.groups.to_numpy().tolist(), ex.sentence))
    p = engine.predict(Scenario(3, "next", glucose_now=180.0))
    answers.append(("next", p.dose, p.low, p.high, p.p_dose, p.amount))
    out["whatif"] = answers
    out["nonmono"] = nonmonotone_share(bundle, cohort.events, cohort.features, max_per_patient=1)["per_patient"]
    out["training"] = fresh_training(cohort)
    Path(args.out).write_bytes(pickle.dumps(out))
    print(f"saved {len(answers)} what-if answers and {len(table)} predictions to {args.out}")


TINY = dict(lstm_hidden=8, gru_hidden=4, dense=(16,), members=2, now_bins=4)
CLOCK_KEYS = ("seconds", "elapsed_s", "created", "updated", "versions")  # differ run to run by design


def _timeless(value):
    """`value` without clock times, so two trainings of the same weights compare equal."""
    if isinstance(value, dict):
        return {k: _timeless(v) for k, v in value.items() if k not in CLOCK_KEYS}
    if isinstance(value, list):
        return [_timeless(v) for v in value]
    return value


def _weights(model) -> dict:
    return {k: hashlib.sha256(v.detach().cpu().numpy().tobytes()).hexdigest() for k, v in model.state_dict().items()}


def fresh_training(cohort) -> dict:
    """Train through run_experiment and through a run's worker body: weights and metadata."""
    import json
    import tempfile

    TrainConfig = _core("TrainConfig", "configs")
    ExperimentConfig, bundle_meta, run_experiment = _pipeline()
    load_bundle = _core("load_bundle", "bundles.registry")
    RunSpec, work = _core("RunSpec", "jobs.runs"), _core("work", "jobs.runs")

    exp, cfg = ExperimentConfig(), TrainConfig(epochs=3, threads=1)
    r = run_experiment(cohort.features, exp, TINY, cfg, baselines=["last_same_daypart"])
    meta = bundle_meta(r, exp, cfg, cohort.source.label, cohort.fingerprint)
    out = {"experiment_weights": _weights(r.training.model), "experiment_meta": _timeless(meta)}
    with tempfile.TemporaryDirectory() as tmp:
        run_dir, models = Path(tmp) / "run", Path(tmp) / "models"
        run_dir.mkdir()
        (run_dir / "run.json").write_text(json.dumps({"id": "snaprun"}))
        work(str(run_dir), str(models), cohort.features,
             RunSpec(exp, TINY, cfg, ("last_same_daypart",), cohort.source.label, cohort.fingerprint))
        status = json.loads((run_dir / "status.json").read_text())
        bundle = load_bundle(models / status["bundle"])
        out["run_weights"], out["run_meta"] = _weights(bundle.model), _timeless(bundle.meta)
        out["run_status"] = _timeless(status)
    return out


def compare(args) -> None:
    # pickles written by `save` above, on this machine: nothing foreign is read here
    before, after = (pickle.loads(Path(f).read_bytes()) for f in (args.before, args.after))
    shared = list(before["table"].columns)
    csv = [t[shared].to_csv(index=False).encode() for t in (before["table"], after["table"])]
    print(f"predictions CSV: {hashlib.sha256(csv[0]).hexdigest()[:16]} vs {hashlib.sha256(csv[1]).hexdigest()[:16]}: "
          f"{'identical' if csv[0] == csv[1] else 'DIFFERENT'} (columns added: "
          f"{[c for c in after['table'].columns if c not in shared]})")
    for part in ("metrics", "per_patient", "nonmono"):
        print(f"{part}: {'identical' if before[part].equals(after[part]) else 'DIFFERENT'}")
    print(f"what-if answers: {'identical' if repr(before['whatif']) == repr(after['whatif']) else 'DIFFERENT'} "
          f"({len(before['whatif'])})")
    for part, value in before.get("training", {}).items():
        print(f"training {part}: {'identical' if repr(value) == repr(after['training'][part]) else 'DIFFERENT'}")


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("save")
    s.add_argument("out")
    s.add_argument("--data")
    s.add_argument("--code", default=str(Path(__file__).resolve().parent.parent))
    s.add_argument("--models", default="/tmp/snapshot-models")
    c = sub.add_parser("compare")
    c.add_argument("before")
    c.add_argument("after")
    args = parser.parse_args()
    save(args) if args.command == "save" else compare(args)


if __name__ == "__main__":
    main()
