"""The files of a local directory as ssm_rules stages them (code bundles, local inputs):
tool and cache directories and compiled Python left out, in a stable order. One walk, so
what the plan counts is what the job gets."""

from __future__ import annotations

import os
from pathlib import Path

SKIP_DIRS = {
    "__pycache__",
    ".git",
    ".snakemake",
    ".ssm_rules",
    ".venv",
    ".mypy_cache",
    ".pytest_cache",
}


def tree(root: Path, prefix: str = "") -> list[tuple[str, Path]]:
    """``(prefix + path relative to root, path)`` for each file staged from ``root``."""
    found = []
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        for name in files:
            if name.endswith((".pyc", ".pyo")):
                continue
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            found.append((f"{prefix}{rel}", path))
    return found
