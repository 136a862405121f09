"""The chapters of the book: discovery, book order, selection and the table of contents.

A chapter is a notebook named `NNN_slug.ipynb` in `notebooks/`. Book order is the
order of the three-digit numbers, because each chapter builds on the state the
earlier ones left on the cluster. The parts of the table of contents are
contiguous number ranges, so the order a reader sees is the order a run executes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from clusterbook.errors import ClusterbookError

CHAPTER_NAME = re.compile(r"^(?P<number>\d{3})_(?P<slug>[a-z0-9_]+)\.ipynb$")

#: (caption, first number, last number) of each part of the book.
# NOTE: the ranges after 015 group chapters that are not written yet; adjust the
# captions when those chapters land, but keep the ranges contiguous.
PARTS: tuple[tuple[str, int, int], ...] = (
    ("Foundations", 1, 5),
    ("Kubernetes", 6, 15),
    ("GitOps", 16, 27),
    ("Storage", 28, 31),
    ("HPC", 32, 32),
    ("Services", 33, 42),
    ("Observability", 43, 45),
    ("Growth", 46, 47),
    ("Security", 48, 49),
    ("Scaling out", 50, 999),
)


class ChapterNotFound(ClusterbookError):
    """A chapter name, number or range on the command line matches no notebook."""


@dataclass(frozen=True, order=True)
class Chapter:
    """One chapter notebook, ordered by its number."""

    number: int
    slug: str
    path: Path

    @property
    def name(self) -> str:
        """The notebook's file name without `.ipynb`, e.g. `006_load_balancer`."""
        return f"{self.number:03d}_{self.slug}"


def discover(notebooks_dir: Path) -> list[Chapter]:
    """Return the chapter notebooks in `notebooks_dir`, in book order."""
    chapters = []
    for path in sorted(notebooks_dir.glob("*.ipynb")):
        match = CHAPTER_NAME.match(path.name)
        if match:
            chapters.append(Chapter(int(match["number"]), match["slug"], path))
    return sorted(chapters)


def _parse_number(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def select(chapters: Sequence[Chapter], specs: Iterable[str]) -> list[Chapter]:
    """Return the chapters named by `specs`, in book order and without duplicates.

    A spec is a number (`6`, `006`), a range (`001-010`, both ends inclusive), a
    notebook name (`006_load_balancer`, with or without `.ipynb`) or a slug
    (`load_balancer`). No specs selects every chapter.
    """
    specs = list(specs)
    if not specs:
        return list(chapters)
    chosen: set[Chapter] = set()
    for spec in specs:
        matches = _match(chapters, spec.strip())
        if not matches:
            known = ", ".join(chapter.name for chapter in chapters) or "none"
            raise ChapterNotFound(
                f"no chapter matches {spec!r}",
                hint=f"give a number, a range such as 001-010, or a name; chapters: {known}",
            )
        chosen.update(matches)
    return sorted(chosen)


def _match(chapters: Sequence[Chapter], spec: str) -> list[Chapter]:
    if "-" in spec:
        first, _, last = spec.partition("-")
        low, high = _parse_number(first), _parse_number(last)
        if low is not None and high is not None:
            return [chapter for chapter in chapters if low <= chapter.number <= high]
    number = _parse_number(spec)
    if number is not None:
        return [chapter for chapter in chapters if chapter.number == number]
    name = spec.removesuffix(".ipynb")
    return [chapter for chapter in chapters if name in (chapter.name, chapter.slug)]


def part_of(chapter: Chapter) -> str:
    """Return the caption of the part that contains `chapter`."""
    for caption, first, last in PARTS:
        if first <= chapter.number <= last:
            return caption
    raise ValueError(f"chapter number {chapter.number} is outside every part")


def toc(chapters: Sequence[Chapter], root: str = "intro", folder: str = "notebooks") -> dict:
    """Return a Jupyter Book 1.x `_toc.yml` structure listing `chapters` in parts.

    Parts without a chapter are left out, because Jupyter Book rejects toc entries
    whose files are missing.
    """
    parts: list[dict] = []
    for caption, first, last in PARTS:
        members = [chapter for chapter in chapters if first <= chapter.number <= last]
        if members:
            parts.append(
                {
                    "caption": caption,
                    "chapters": [{"file": f"{folder}/{chapter.name}"} for chapter in members],
                }
            )
    return {"format": "jb-book", "root": root, "parts": parts}


def toc_yaml(chapters: Sequence[Chapter]) -> str:
    """Return the text of `_toc.yml` for `chapters`."""
    header = (
        "# Table of contents of the book (Jupyter Book 1.x).\n"
        "# Generated from notebooks/ by `clusterbook book toc --write`; the book build\n"
        "# regenerates it from the notebooks it stages, so do not edit it by hand.\n"
    )
    return header + yaml.safe_dump(toc(chapters), sort_keys=False)
