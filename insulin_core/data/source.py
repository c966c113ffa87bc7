"""Where the data comes from: an explicit folder, else `AIM94_DIR`, else a built-in demo cohort.

A folder or an upload may hold any supported export (data/readers/detect.py picks the reader). A
folder with AIM94 `data-NN` files keeps the AIM94 path it always had (aim94_folder.load_folder:
the same events, fingerprint and report); any other is read whole and detected. The built-in
demos: the AIM94-format one (demo.py, generated in memory on each load) and the modern pump + CGM
one (demo_modern.py, written once into the cache folder, `modern_demo_folder`, then read as any
Nightscout export is: 2 s to generate is worth keeping, and the files are there to look at)."""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .aim94 import LoadResult, load_texts
from .aim94_folder import has_aim94_files, load_folder, read_export_folder, read_folder
from ..paths import PROJECT_DIR
from .codes import DEMO_LABEL
from .demo_modern import GENERATOR_VERSION as MODERN_VERSION, MODERN_DEMO_LABEL, ModernDemoConfig

ENV_VAR = "AIM94_DIR"
# The dashboard's folder box reads only below these (the CLI's --data-dir is not limited: its user
# owns the machine). A server must not let any visitor read, or probe for, any folder it can see.
DATA_ROOT_ENV = "INSULIN_DASH_DATA_ROOT"
DEFAULT_DATA_ROOT = Path(__file__).resolve().parent.parent / "data"
# Where generated files are kept between runs (the modern demo's folder); tests point it elsewhere.
CACHE_ENV = "INSULIN_DASH_CACHE_DIR"
DEFAULT_CACHE_DIR = PROJECT_DIR / ".cache"
DEMOS = ("aim94", "modern")  # the built-in cohorts: --demo NAME, DataSource.demo
MODERN_DEMO_PATIENTS = ModernDemoConfig().patients


@dataclass(frozen=True)
class DataSource:
    kind: str  # "folder" | "env" | "demo" | "upload"
    path: str = ""  # the folder, for "folder" and "env"; a digest of the files, for "upload"
    demo_patients: int = 20
    demo_seed: int = 0
    demo: str = "aim94"  # which built-in cohort, for "demo" (DEMOS)
    format: str = ""  # an upload's format, known when it was read ("" for AIM94)

    @property
    def label(self) -> str:
        if self.kind == "demo" and self.demo == "modern":
            return f"{MODERN_DEMO_LABEL}: {self.demo_patients} patients, seed {self.demo_seed}"
        if self.kind == "demo":
            return f"{DEMO_LABEL}: {self.demo_patients} patients, seed {self.demo_seed}"
        if self.kind == "upload":
            return f"uploaded {self.format or 'AIM94'} files ({self.path})"
        origin = "folder" if self.kind == "folder" else f"${ENV_VAR}"
        # An AIM94 folder keeps the label its bundles were saved under; another's format is named
        # once it is read (LoadResult.format, Cohort.data_label).
        what = "AIM94 files" if has_aim94_files_safe(self.path) else "exported files"
        return f"{what} from {origin} {self.path}"

    @property
    def is_synthetic(self) -> bool:
        return self.kind == "demo"


def has_aim94_files_safe(folder: str) -> bool:
    """`has_aim94_files`, False for a folder that cannot be listed (the load says why)."""
    try:
        return has_aim94_files(Path(folder))
    except OSError:
        return True  # the label the AIM94 path always had; loading reports the missing folder


def demo_source(name: str = "aim94", patients: int | None = None, seed: int = 0) -> DataSource:
    """A built-in cohort by name (DEMOS), with its own default size."""
    if name not in DEMOS:
        raise ValueError(f"unknown demo {name!r}: choose one of {', '.join(DEMOS)}")
    default = MODERN_DEMO_PATIENTS if name == "modern" else DataSource.demo_patients
    return DataSource("demo", demo_patients=patients or default, demo_seed=seed, demo=name)


def resolve_source(folder: str | os.PathLike | None = None, env: Mapping[str, str] | None = None,
                   demo: str | None = None) -> DataSource:
    """Pick the data source in the documented order; a demo named explicitly comes first."""
    env = os.environ if env is None else env
    if demo and folder:
        raise ValueError("give a data folder or a demo, not both")
    if demo:
        return demo_source(demo)
    if folder:
        return DataSource("folder", str(Path(folder)))
    if env.get(ENV_VAR):
        return DataSource("env", str(Path(env[ENV_VAR])))
    return DataSource("demo")


def modern_demo_folder(source: DataSource, env: Mapping[str, str] | None = None) -> Path:
    """The modern demo's folder in the cache, written the first time (into a scratch folder moved
    into place, so a reader never sees half a cohort and two first loads do not clash)."""
    env = os.environ if env is None else env
    cfg = ModernDemoConfig(patients=source.demo_patients, seed=source.demo_seed)
    root = Path(env.get(CACHE_ENV) or DEFAULT_CACHE_DIR)
    dest = root / f"modern-demo-v{MODERN_VERSION}-p{cfg.patients}-d{cfg.days}-s{cfg.seed}"
    if not dest.is_dir():
        from .demo_modern import write_modern_cohort

        root.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".writing-", dir=root))
        write_modern_cohort(scratch, cfg)
        try:
            os.rename(scratch, dest)
        except OSError:  # another process put it there first: same config, same bytes
            shutil.rmtree(scratch, ignore_errors=True)
    return dest


def source_texts(source: DataSource) -> dict[str, bytes | str]:
    """The raw AIM94 texts of a source: file bytes for a folder, generated text for the demo."""
    if source.kind == "demo" and source.demo == "modern":
        return read_export_folder(modern_demo_folder(source))[0]
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


def upload_source(texts: Mapping[str, bytes], format: str = "") -> DataSource:
    """The source of uploaded files: named by a digest of their names and bytes, so the caches
    keyed by source never mix two different uploads; `format` as read ("" or "AIM94": AIM94)."""
    digest = hashlib.sha256()
    for name in sorted(texts):
        digest.update(hashlib.sha256(name.encode()).digest() + hashlib.sha256(texts[name]).digest())
    return DataSource("upload", digest.hexdigest()[:12], format="" if format == "AIM94" else format)


def read_upload(texts: Mapping[str, bytes]) -> tuple[DataSource, LoadResult]:
    """Uploaded files of any supported format, read: their source (named by digest and format) and
    what was read. DataFormatError when no format fits or formats are mixed."""
    from .readers.detect import read_files

    format = _detected(texts)
    source = upload_source(texts, format)
    if format == "AIM94":  # the AIM94 path the dashboard always took, byte for byte
        return source, load_texts(texts, source.label)
    return source, read_files(texts, source.label)


def _detected(texts: Mapping[str, bytes]) -> str:
    from .readers.detect import detect

    return detect(texts).reader.name


def load_source(source: DataSource) -> LoadResult:
    if source.kind == "upload":
        raise ValueError("uploaded files live only in the browser session that uploaded them")
    if source.kind == "demo" and source.demo == "aim94":
        return load_texts(source_texts(source), source=source.label)
    folder = modern_demo_folder(source) if source.kind == "demo" else Path(source.path)
    if source.kind != "demo" and (not folder.is_dir() or has_aim94_files(folder)):
        return load_folder(folder, source=source.label)  # file by file, skipped entries reported
    return _load_export_folder(folder, source.label)


def _load_export_folder(folder: Path, label: str) -> LoadResult:
    """A folder of another export: detected and read whole; entries not read join the report's
    skipped files with why (nothing left out silently)."""
    from .readers.detect import read_files

    files, skipped = read_export_folder(folder)
    result = read_files(files, label)
    result.report.skipped_files = sorted([*skipped, *result.report.skipped_files])
    return result
