"""Exceptions the pages catch by name, in a module that imports nothing heavy: the dashboard's
first page must not pay for importing torch (registry, bundle_schema) just to name BundleError."""
from __future__ import annotations


class BundleError(Exception):
    """A bundle that cannot be used, with a message naming what is wrong."""
