"""Readers of the pump, CGM and diary formats: one module per format, the one contract (contract.py)
and the one event model (base.py)."""
