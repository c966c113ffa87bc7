"""Where the data comes from: an explicit folder, else `AIM94_DIR`, else the demo cohort."""
from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .aim94 import LoadResult, load_texts
from .aim94_folder import load_folder, read_folder
from .codes import DEMO_LABEL

ENV_VAR = "AIM94_DIR"
# The dashboard's folder box reads only below these (the CLI's --data-dir is not limited: its user
# owns the machine). A server must not let any visitor read, or probe for, any folder it can see.
DATA_ROOT_ENV = "INSULIN_DASH_DATA_ROOT"
DEFAULT_DATA_ROOT = Path(__file__).resolve().parent.parent / "data"


@dataclass(frozen=True)
class DataSource:
    kind: str  # "folder" | "env" | "demo" | "upload"
    path: str = ""  # the folder, for "folder" and "env"; a digest of the files, for "upload"
    demo_patients: int = 20
    demo_seed: int = 0

    @property
    def label(self) -> str:
        if self.kind == "demo":
            return f"{DEMO_LABEL}: {self.demo_patients} patients, seed {self.demo_seed}"
        if self.kind == "upload":
            return f"uploaded AIM94 files ({self.path})"
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


def allowed_roots(env: Mapping[str, str] | None = None) -> list[Path]:
    """Where the dashboard may read folders: the data root, and $AIM94_DIR when set."""
    env = os.environ if env is None else env
    roots = [env.get(DATA_ROOT_ENV) or DEFAULT_DATA_ROOT] + ([env[ENV_VAR]] if env.get(ENV_VAR) else [])
    return [Path(os.path.realpath(root)) for root in roots]


def check_allowed_folder(folder: str | os.PathLike, env: Mapping[str, str] | None = None) -> Path:
    """`folder` resolved (links and `..` followed) if it lies under an allowed root. Otherwise one
    PermissionError, the same whether or not the folder exists, so it reveals nothing of the server."""
    path = Path(os.path.realpath(folder))
    roots = allowed_roots(env)
    if any(path.is_relative_to(root) for root in roots):
        return path
    raise PermissionError(f"This dashboard reads folders only under its data folder (${DATA_ROOT_ENV}, by default "
                          f"data/ in the project) or ${ENV_VAR}.")


def upload_source(texts: Mapping[str, bytes]) -> DataSource:
    """The source of uploaded files: named by a digest of their names and bytes, so the caches
    keyed by source never mix two different uploads."""
    digest = hashlib.sha256()
    for name in sorted(texts):
        digest.update(hashlib.sha256(name.encode()).digest() + hashlib.sha256(texts[name]).digest())
    return DataSource("upload", digest.hexdigest()[:12])


def load_source(source: DataSource) -> LoadResult:
    if source.kind == "upload":
        raise ValueError("uploaded files live only in the browser session that uploaded them")
    if source.kind == "demo":
        return load_texts(source_texts(source), source=source.label)
    return load_folder(Path(source.path), source=source.label)  # file by file, skipped entries reported
