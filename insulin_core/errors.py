"""Exceptions the pages catch by name, and the model-name rule, in a module that imports nothing
heavy: the dashboard's first page and the training-run list must not pay for importing torch
(bundles.registry, bundles.schema) just to name BundleError or check a name."""
from __future__ import annotations

import re

NAME_REGEX = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
NAME_PATTERN = re.compile(NAME_REGEX)  # used with fullmatch: `$` would let "name\n" through


class BundleError(Exception):
    """A bundle that cannot be used, with a message naming what is wrong."""


class DataFormatError(ValueError):
    """Files no reader recognises, or files of two formats mixed (insulin_core/data/readers/detect.py),
    with a message naming what was looked for or which files are of which format."""


def check_name(name: str) -> str:
    """A model name as the registry stores it; BundleError naming the rule otherwise."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise BundleError(
            f"Invalid model name {name!r}: use 1-64 letters, digits, '-', '_' or '.', starting with a letter or digit."
        )
    return name
