"""Shared fixtures: small AIM94 files written by the tests, and the real data when present."""
from __future__ import annotations

import os
from pathlib import Path

# One OpenMP/BLAS thread everywhere, set before torch or scikit-learn load: OpenMP reads it once, and
# it is the default of every thread started later (AppTest's script threads, servers, workers).
# torch.set_num_threads(1) below reaches only the thread that calls it: a script thread fitting
# the gradient boosting baselines used one thread per core, and beside other work those threads
# spin-waited on each other (issue 18: two AppTest tests took 53 s and 46 s beside two busy
# processes, 22 s and 15 s with this).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import pytest  # noqa: E402

# The What-if tests' trained model (test_whatif, test_intervals, test_safety, test_explain): imported
# here, not in each module, so that it is one session fixture, trained once.
from tests.whatif_fixtures import setup  # noqa: E402, F401 (fixture)


def aim94_text(*rows: str) -> str:
    """Rows given as 'MM-DD-YYYY H:MM code value' with single spaces -> AIM94 tab-separated text."""
    return "".join("\t".join(row.split(" ")) + "\n" for row in rows)


@pytest.fixture
def write_aim94(tmp_path: Path):
    """Write {file name: text} into a fresh folder and return the folder."""
    def write(files: dict[str, str]) -> Path:
        folder = tmp_path / "aim94"
        folder.mkdir(exist_ok=True)
        for name, text in files.items():
            (folder / name).write_text(text)
        return folder
    return write


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The real AIM94 folder from $AIM94_DIR; the test is skipped, visibly, when it is unset."""
    value = os.environ.get("AIM94_DIR")
    if not value:
        pytest.skip("AIM94_DIR is not set: real-data test skipped")
    path = Path(value)
    if not path.is_dir():
        pytest.fail(f"AIM94_DIR={value} is not a folder")
    return path


@pytest.fixture(scope="session")
def real_cohort(real_data_dir):
    from insulin_core.prep.dataset import load_cohort
    from insulin_core.data.source import DataSource

    return load_cohort(DataSource("folder", str(real_data_dir)))


@pytest.fixture(scope="session", autouse=True)
def one_thread_per_library():
    """Tests share 2 cores with each other and with anything else running: OpenMP pools of torch
    and scikit-learn that wait on each other make small fits 10-100x slower, so use one thread."""
    import torch
    from threadpoolctl import threadpool_limits

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session", autouse=True)
def components_scanned_once():
    """Every new AppTest scans the metadata of every installed package for Streamlit components
    (0.15-0.2 s each, a few seconds over test_app.py); nothing installs a package mid-session, so
    the first scan's answer stands for the rest."""
    import functools

    from ui.streamlit_internals import manifest_scanner

    scan = manifest_scanner.scan_component_manifests
    manifest_scanner.scan_component_manifests = functools.cache(scan)
    yield
    manifest_scanner.scan_component_manifests = scan


@pytest.fixture(autouse=True)
def seeded_torch():
    """Every test starts from the same torch random state, whichever worker runs it and whatever
    ran before it there: a test that builds an untrained network gets the same weights every run
    (an unseeded one failed CI once in about 30 runs on a dead ReLU layer, issue 18)."""
    import torch

    torch.manual_seed(0)


# The modules that take longest (seconds of setup + calls, two workers, 2026-12-04 20:00 UTC: browser
# 77 + 37 (the background-training test, since moved into it), registry races 69, app 68, real What-if
# 56, fast clicks 53, tune 36, runs 33, What-if 23, baselines 22, torchrun 17, parser properties 15,
# Train page runs 10), collected first so that `make test`'s two workers (xdist, one module at a time)
# start with them and finish together; the rest follow in file order.
LONGEST_FIRST = ("test_browser", "test_registry_concurrency", "test_app", "test_whatif_real", "test_browser_clicks",
                 "test_tune", "test_runs", "test_whatif", "test_baselines", "test_distributed",
                 "test_aim94_properties", "test_app_train")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(Path(str(item.fspath)).stem, len(rank)))
