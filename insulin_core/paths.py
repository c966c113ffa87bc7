"""Where the project keeps its models and data by default (no heavy imports: every command reads it)."""
from __future__ import annotations

from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
DEFAULT_MODELS_DIR = PROJECT_DIR / "models"
DEFAULT_DATA_DIR = PROJECT_DIR / "data"
