"""What a Python file imports, read with `ast` (nothing is imported): the one reader of the
architecture tests (tests/test_architecture.py) and the Streamlit internals guard
(tests/test_streamlit_internals.py). Imports inside functions count as much as those at the top:
a function-level import is how a cycle hides."""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Import:
    line: int
    module: str  # absolute and dotted: relative imports resolved
    names: tuple[str, ...]  # what `from module import ...` takes; () for `import module`


def package_of(path: Path, root: Path) -> str:
    """The dotted package a file under `root` (a folder on sys.path) belongs to."""
    return ".".join(path.relative_to(root).parent.parts)


def imports_of(path: Path, package: str) -> list[Import]:
    """Every import statement of the file; `package` resolves its relative imports."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [Import(node.lineno, alias.name, ()) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            found.append(Import(node.lineno, base, tuple(alias.name for alias in node.names)))
    return found
