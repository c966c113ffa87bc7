"""Readers of the pump, CGM and diary formats: one module per format, one contract (contract.py) on one event model (base.py)."""
