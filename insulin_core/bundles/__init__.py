"""Bundles: saved models (schema, registry, the shared models folder) and serving them on a cohort."""
