"""Shared fixtures: small AIM94 files written by the tests, and the real data when present."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

# The What-if tests' trained model (test_whatif, test_intervals, test_safety, test_explain): imported
# here, not in each module, so that it is one session fixture, trained once.
from tests.whatif_fixtures import setup  # noqa: F401 (fixture)


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
    from insulin_core.dataset import load_cohort
    from insulin_core.source import DataSource

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
