"""Readers of the pump, CGM and diary formats: one module per format, one contract (base.py)."""
