"""The one-way rule of docs/architecture.md, read from the source: nothing in insulin_core imports
Streamlit or the app above it (ui/, pages/, app.py), and the imports among its modules, those inside
functions included, form no cycle (safety.py once imported whatif inside a function, whatif.py
imported safety).

A test of our own over `ast` rather than import-linter: import-linter is not installed here, and
its contracts read only module-level imports unless told otherwise; this needs no new dependency."""
from __future__ import annotations

import graphlib
from pathlib import Path

import pytest

from .imports import imports_of, package_of

CORE = Path(__file__).resolve().parent.parent / "insulin_core"
ABOVE_THE_CORE = ("streamlit", "ui", "pages", "app")


def core_imports(core: Path) -> dict[str, list]:
    """Module name -> its imports, for every module of the package folder `core`."""
    modules = {}
    for path in sorted(core.rglob("*.py")):
        package = package_of(path, core.parent)
        name = package if path.name == "__init__.py" else f"{package}.{path.stem}"
        modules[name] = imports_of(path, package)
    return modules


def import_graph(modules: dict[str, list]) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (`from . import x` names module x)."""
    graph = {}
    for name, imports in modules.items():
        targets = set()
        for imp in imports:
            submodules = {f"{imp.module}.{n}" for n in imp.names} & modules.keys()
            targets |= submodules or ({imp.module} & modules.keys())
        graph[name] = targets - {name}
    return graph


def violations(core: Path) -> list[str]:
    """What breaks the one-way rule in the package folder `core`, in words; [] when nothing does."""
    modules = core_imports(core)
    found = [f"{name} line {imp.line} imports {imp.module}" for name, imports in modules.items() for imp in imports
             if imp.module.split(".")[0] in ABOVE_THE_CORE]
    try:
        graphlib.TopologicalSorter(import_graph(modules)).prepare()
    except graphlib.CycleError as cycle:
        found.append("import cycle: " + " -> ".join(cycle.args[1]))
    return found


def test_the_core_imports_one_way_and_never_streamlit():
    assert violations(CORE) == []


def _plant(core: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (core / name).parent.mkdir(parents=True, exist_ok=True)
        (core / name).write_text(text)
    return core


@pytest.mark.parametrize("back_up", ["from .high import x", "from . import high", "import core.high",
                                     "from core.high import x", "from ..high import x"])
def test_the_checker_catches_a_cycle_through_a_function_level_import(tmp_path, back_up):
    core = _plant(tmp_path / "core", {"__init__.py": "", "high.py": "from .low import x\n", "low.py": "x = 1\n"})
    assert violations(core) == []
    if back_up.startswith("from .."):  # two levels up from a subpackage
        _plant(core, {"sub/__init__.py": "", "sub/deep.py": f"def later():\n    {back_up}\n"})
        _plant(core, {"high.py": "from .sub.deep import later\n"})
        cycle = {"core.high", "core.sub.deep"}
    else:
        _plant(core, {"low.py": f"x = 1\n\n\ndef later():\n    {back_up}\n"})
        cycle = {"core.high", "core.low"}
    found = violations(core)
    assert len(found) == 1 and found[0].startswith("import cycle: ")
    assert set(found[0].removeprefix("import cycle: ").split(" -> ")) == cycle


def test_the_checker_catches_streamlit_and_the_app_in_the_core(tmp_path):
    core = _plant(tmp_path / "core", {"__init__.py": "", "low.py": "import numpy as np\n"})
    assert violations(core) == []
    _plant(core, {"low.py": "import numpy as np\nimport streamlit as st\n\n\ndef f():\n    from ui.charts import x\n",
                  "sub/__init__.py": "from streamlit.runtime import y\n"})
    assert sorted(violations(core)) == ["core.low line 2 imports streamlit", "core.low line 6 imports ui.charts",
                                        "core.sub line 1 imports streamlit.runtime"]
