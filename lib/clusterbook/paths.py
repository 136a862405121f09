"""Locations inside the clusterbook repository."""

from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    """Return the repository root: $CLUSTERBOOK_ROOT, or the folder above lib/."""
    override = os.environ.get("CLUSTERBOOK_ROOT")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2]


def resolve(path: str | os.PathLike[str]) -> Path:
    """Resolve a relative path against the working directory when it exists there,
    else against the repository root (nbmake runs notebooks from notebooks/)."""
    candidate = Path(path)
    if candidate.is_absolute() or candidate.exists():
        return candidate
    return repo_root() / candidate
