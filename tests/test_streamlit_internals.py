"""The Streamlit internals the project relies on (ui/streamlit_internals.py) are still where they
were: an upgrade that moves them fails here, by name, instead of breaking the app silently. And
that module is the only one that imports them: anywhere else, a `streamlit.` import other than the
public API (`import streamlit as st`) and `streamlit.testing` is flagged."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import streamlit

from .imports import imports_of, package_of

ROOT = Path(__file__).resolve().parent.parent
INTERNALS = "ui/streamlit_internals.py"
PUBLIC_MODULES = ("streamlit.testing",)  # AppTest; everything else public is an attribute of `st`


def test_the_pages_manager_still_has_the_legacy_pages_flag():
    from ui.streamlit_internals import PagesManager

    assert isinstance(PagesManager.uses_pages_directory, (bool, type(None))), (
        f"Streamlit {streamlit.__version__}: PagesManager.uses_pages_directory changed; "
        "ui/streamlit_internals.leave_legacy_pages_mode needs a new way to leave the legacy pages/ mode")


def test_the_arrow_conversions_and_websocket_messages_are_still_there():
    import pandas as pd

    from ui.streamlit_internals import BackMsg, ForwardMsg, arrow_bytes, arrow_frame

    frame = pd.DataFrame({"units": [1.5, 2.0], "series": ["model", "actual"]})
    pd.testing.assert_frame_equal(arrow_frame(arrow_bytes(frame)), frame)
    assert BackMsg().WhichOneof("type") is None and ForwardMsg().WhichOneof("type") is None


def test_the_component_scan_is_still_a_function_of_the_manifest_scanner():
    from ui.streamlit_internals import manifest_scanner

    assert callable(getattr(manifest_scanner, "scan_component_manifests", None)), (
        f"Streamlit {streamlit.__version__}: components/v2/manifest_scanner.scan_component_manifests moved; "
        "tests/conftest.components_scanned_once needs its new place")


def private_streamlit_modules(module: str, names: tuple[str, ...]) -> list[str]:
    """The private Streamlit modules one import statement reaches (`from streamlit import x`
    takes a module when streamlit/x is one: dataframe_util, runtime, ...)."""
    reached = [module] if module.startswith("streamlit.") else []
    if module == "streamlit":
        reached += [f"streamlit.{n}" for n in names if importlib.util.find_spec(f"streamlit.{n}") is not None]
    return [m for m in reached if not m.startswith(tuple(f"{p}." for p in PUBLIC_MODULES) + PUBLIC_MODULES)]


def private_imports(root: Path) -> list[str]:
    """Private Streamlit imports in the project at `root` outside ui/streamlit_internals.py."""
    files = [root / "app.py", *(p for folder in ("ui", "pages", "insulin_core", "tests", "bench")
                                 for p in sorted((root / folder).rglob("*.py")))]
    found = []
    for path in files:
        where = path.relative_to(root).as_posix()
        if not path.exists() or where == INTERNALS:
            continue
        found += [f"{where} line {imp.line}: {m}" for imp in imports_of(path, package_of(path, root))
                  for m in private_streamlit_modules(imp.module, imp.names)]
    return found


def test_private_streamlit_names_are_imported_from_one_module_only():
    assert private_imports(ROOT) == []


@pytest.mark.parametrize("line", ["from streamlit import dataframe_util", "import streamlit.runtime.scriptrunner",
                                  "from streamlit.proto.ForwardMsg_pb2 import ForwardMsg",
                                  "from streamlit.elements import vega_charts"])
def test_the_guard_catches_a_planted_private_import(tmp_path, line):
    (tmp_path / "ui").mkdir()
    (tmp_path / "app.py").write_text("import streamlit as st\nfrom streamlit import cache_data\n"
                                     "from streamlit.testing.v1 import AppTest\n")
    (tmp_path / INTERNALS).write_text(f"{line}\n")  # the one module allowed to
    assert private_imports(tmp_path) == []
    (tmp_path / "ui" / "charts.py").write_text(f"import altair\n\n\ndef spec():\n    {line}\n")
    assert len(found := private_imports(tmp_path)) == 1 and found[0].startswith("ui/charts.py line 5: streamlit.")
