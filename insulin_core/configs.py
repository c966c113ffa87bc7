"""Shared rules of the config dataclasses (kept free of torch so light commands can use them)."""
from __future__ import annotations

from dataclasses import fields


def check_keys(config_class, d: dict) -> None:
    """A config read from JSON must not carry keys the dataclass does not know (typos, other versions)."""
    if not isinstance(d, dict):
        raise ValueError(f"{config_class.__name__} must be a JSON object, got {type(d).__name__}")
    known = {f.name for f in fields(config_class)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"unknown {config_class.__name__} keys {unknown}; known keys: {sorted(known)}")
