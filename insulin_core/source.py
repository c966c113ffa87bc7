"""Where the data comes from: an explicit folder, else `AIM94_DIR`, else the demo cohort."""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .aim94 import LoadResult, load_folder, load_texts, read_folder
from .codes import DEMO_LABEL

ENV_VAR = "AIM94_DIR"


@dataclass(frozen=True)
class DataSource:
    kind: str  # "folder" | "env" | "demo"
    path: str = ""  # the folder, for "folder" and "env"
    demo_patients: int = 20
    demo_seed: int = 0

    @property
    def label(self) -> str:
        if self.kind == "demo":
            return f"{DEMO_LABEL}: {self.demo_patients} patients, seed {self.demo_seed}"
        origin = "folder" if self.kind == "folder" else f"${ENV_VAR}"
        return f"AIM94 files from {origin} {self.path}"

    @property
    def is_synthetic(self) -> bool:
        return self.kind == "demo"


def resolve_source(folder: str | os.PathLike | None = None, env: Mapping[str, str] | None = None) -> DataSource:
    """Pick the data source in the documented order."""
    env = os.environ if env is None else env
    if folder:
        return DataSource("folder", str(Path(folder)))
    if env.get(ENV_VAR):
        return DataSource("env", str(Path(env[ENV_VAR])))
    return DataSource("demo")


def source_texts(source: DataSource) -> dict[str, bytes | str]:
    """The raw AIM94 texts of a source: file bytes for a folder, generated text for the demo."""
    if source.kind == "demo":
        from .demo import DemoConfig, generate_cohort

        return generate_cohort(DemoConfig(patients=source.demo_patients, seed=source.demo_seed))
    return read_folder(Path(source.path))


def load_source(source: DataSource) -> LoadResult:
    if source.kind == "demo":
        return load_texts(source_texts(source), source=source.label)
    return load_folder(Path(source.path), source=source.label)  # file by file, skipped entries reported
