"""The Streamlit internals the app relies on (ui/streamlit_internals.py) are still where they were:
an upgrade that moves them fails here, by name, instead of breaking the app silently."""
from __future__ import annotations

import streamlit


def test_the_pages_manager_still_has_the_legacy_pages_flag():
    from streamlit.runtime.pages_manager import PagesManager

    assert isinstance(PagesManager.uses_pages_directory, (bool, type(None))), (
        f"Streamlit {streamlit.__version__}: PagesManager.uses_pages_directory changed; "
        "ui/streamlit_internals.leave_legacy_pages_mode needs a new way to leave the legacy pages/ mode")


def test_the_app_imports_the_internals_from_one_module_only():
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    users = [p.relative_to(root).as_posix() for folder in ("ui", "pages") for p in (root / folder).glob("*.py")
             if "streamlit.runtime" in p.read_text() and p.name != "streamlit_internals.py"]
    users += ["app.py"] if "streamlit.runtime" in (root / "app.py").read_text() else []
    assert users == [], users
