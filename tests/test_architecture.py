"""The one-way rule of docs/architecture.md, read from the source: nothing in insulin_core imports
Streamlit or the app above it (ui/, pages/, app.py), the imports among its modules, those inside
functions included, form no cycle (safety.py once imported whatif inside a function, whatif.py
imported safety), and no module imports one of a later stage (STAGES: the subpackages in pipeline
order, with the few top-level modules placed among them).

A test of our own over `ast` rather than import-linter: import-linter is not installed here, and
its contracts read only module-level imports unless told otherwise; this needs no new dependency."""
from __future__ import annotations

import graphlib
from pathlib import Path

import pytest

from .imports import imports_of, package_of

CORE = Path(__file__).resolve().parent.parent / "insulin_core"
ABOVE_THE_CORE = ("streamlit", "ui", "pages", "app")
# The stages, lowest first, each with what sits in it: a subpackage, or a top-level module (by the
# first name under the package; "" is the package's own __init__). A module imports its own stage
# and the ones before it, never a later one. The top-level modules: errors, paths and configs are
# read by every stage; labels and glossary name what data, prep, models and evaluation define (reasons,
# features, baselines, splits, metrics) for the what-if and the CLI.
STAGES = (
    ("basics", ("", "errors", "paths", "configs")),
    ("data", ("data",)),
    ("prep", ("prep",)),
    ("models", ("models",)),
    ("evaluation", ("evaluation",)),
    ("words", ("labels", "glossary")),
    ("bundles", ("bundles",)),
    ("whatif", ("whatif",)),
    ("jobs", ("jobs",)),
    ("cli", ("cli", "__main__")),
)


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


def stage_of(module: str, stages=STAGES) -> tuple[int, str]:
    """(rank, stage name) of a module of the package (its first name under the package); (-1, "")
    when no stage holds it."""
    top = module.split(".")[1] if "." in module else ""
    return next(((rank, name) for rank, (name, members) in enumerate(stages) if top in members), (-1, ""))


def stage_violations(modules: dict[str, list], stages=STAGES) -> list[str]:
    """Every import of a later stage's module, and every module no stage holds, in words."""
    found = [f"{name} is in no stage: put it in a stage's folder or name it in STAGES"
             for name in modules if stage_of(name, stages)[0] < 0]
    for name, imports in modules.items():
        rank, stage = stage_of(name, stages)
        for imp in imports:
            submodules = {f"{imp.module}.{n}" for n in imp.names} & modules.keys()
            for target in sorted(submodules or ({imp.module} & modules.keys())):
                target_rank, target_stage = stage_of(target, stages)
                if rank >= 0 and target_rank > rank:
                    found.append(f"{name} line {imp.line} imports {target}: stage {stage} imports the later stage "
                                 f"{target_stage}")
    return found


def violations(core: Path, stages=None) -> list[str]:
    """What breaks the one-way rule in the package folder `core`, in words; [] when nothing does.
    With `stages` (STAGES), also every import of a later stage."""
    modules = core_imports(core)
    found = [f"{name} line {imp.line} imports {imp.module}" for name, imports in modules.items() for imp in imports
             if imp.module.split(".")[0] in ABOVE_THE_CORE]
    if stages is not None:
        found += stage_violations(modules, stages)
    try:
        graphlib.TopologicalSorter(import_graph(modules)).prepare()
    except graphlib.CycleError as cycle:
        found.append("import cycle: " + " -> ".join(cycle.args[1]))
    return found


def test_the_core_imports_one_way_and_never_streamlit():
    assert violations(CORE, STAGES) == []


def test_every_stage_is_a_folder_or_a_module_of_the_core():
    members = {m for _, ms in STAGES for m in ms} - {""}
    present = {p.stem if p.is_file() else p.name for p in CORE.iterdir()
               if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()}
    assert members == present


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


@pytest.mark.parametrize("reach", ["from ..whatif.engine import x", "from ..whatif import engine",
                                   "import core.whatif.engine", "from core.whatif.engine import x"])
def test_the_stage_check_catches_a_lower_stage_importing_a_higher_one(tmp_path, reach):
    """data (rank 1) may not import whatif (rank 7), not even inside a function; whatif importing data
    is the right way round."""
    core = _plant(tmp_path / "core", {"__init__.py": "", "data/__init__.py": "", "data/low.py": "x = 1\n",
                                      "whatif/__init__.py": "", "whatif/engine.py": "from ..data.low import x\n"})
    assert violations(core, STAGES) == []
    _plant(core, {"whatif/engine.py": "x = 2\n", "data/low.py": f"x = 1\n\n\ndef later():\n    {reach}\n"})
    assert violations(core, STAGES) == ["core.data.low line 5 imports core.whatif.engine: stage data imports the "
                                        "later stage whatif"]


def test_the_stage_check_names_a_module_in_no_stage(tmp_path):
    core = _plant(tmp_path / "core", {"__init__.py": "", "data/__init__.py": "", "loose.py": "from .data import y\n"})
    assert violations(core, STAGES) == ["core.loose is in no stage: put it in a stage's folder or name it in STAGES"]
