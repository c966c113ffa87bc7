"""Preparation: events to the timeline and features, the cohort, windows, splits, scalers."""
