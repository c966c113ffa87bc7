"""Evaluation: the metric table and the pipeline (prepare, train, evaluate beside the baselines)."""
