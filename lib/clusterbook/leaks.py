"""Find known secret values in notebooks and built files, and scrub them from notebooks.

The runner and the book build both know where secrets came from (environment
variables and files) but must never store the values. This module re-reads those
sources, then searches text for each value in the forms it takes after JSON and
HTML escaping, and reports only the source of a match, never the value.
"""

from __future__ import annotations

import html
import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: the text that replaces a secret value
MASK = "********"
#: values shorter than this are not searched for, because they match ordinary text
# NOTE: a secret shorter than this is not detected in the output; a warning names its source.
MIN_SECRET_LENGTH = 4


@dataclass(frozen=True)
class KnownSecret:
    """A secret value and where it came from (`env:NAME`, `file:/path`, `parameter:NAME`)."""

    source: str
    value: str

    def __repr__(self) -> str:
        return f"KnownSecret(source={self.source!r}, value={MASK!r})"


@dataclass(frozen=True)
class Leak:
    """A place where a known secret value was found."""

    path: Path
    source: str

    def __str__(self) -> str:
        return f"{self.path} contains the value of {self.source}"


def read_source(source: str) -> str | None:
    """Return the value behind `env:NAME` or `file:/path`, or None when it is unavailable."""
    kind, _, target = source.partition(":")
    if kind == "env":
        return os.environ.get(target)
    if kind == "file":
        try:
            return Path(target).read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError):
            return None
    return None


def from_sources(sources: Iterable[str]) -> list[KnownSecret]:
    """Return the secrets behind each available source; unavailable sources are skipped."""
    found = []
    for source in dict.fromkeys(sources):
        value = read_source(source)
        if value:
            found.append(KnownSecret(source, value))
    return found


def _variants(value: str) -> set[str]:
    escaped_json = json.dumps(value)[1:-1]
    forms = {value, escaped_json, html.escape(value), html.escape(escaped_json)}
    forms.update(html.escape(form, quote=False) for form in list(forms))
    return forms


def searchable(secrets: Iterable[KnownSecret]) -> list[KnownSecret]:
    """Return the secrets long enough to search for, warning (by source) about the rest."""
    usable = []
    for secret in secrets:
        if len(secret.value) < MIN_SECRET_LENGTH:
            log.warning(
                "the secret from %s is shorter than %d characters and is not searched for",
                secret.source,
                MIN_SECRET_LENGTH,
            )
            continue
        usable.append(secret)
    return usable


def find_in_text(text: str, secrets: Sequence[KnownSecret]) -> list[str]:
    """Return the sources of the secrets whose value occurs in `text`."""
    return [
        secret.source
        for secret in searchable(secrets)
        if any(form in text for form in _variants(secret.value))
    ]


def scan_files(paths: Iterable[Path], secrets: Sequence[KnownSecret]) -> list[Leak]:
    """Return every file among `paths` (folders are walked) that contains a secret value."""
    secrets = searchable(secrets)
    if not secrets:
        return []
    patterns = [
        (secret.source, [form.encode("utf-8") for form in _variants(secret.value)])
        for secret in secrets
    ]
    leaks = []
    for path in _walk(paths):
        data = path.read_bytes()
        for source, forms in patterns:
            if any(form in data for form in forms):
                leaks.append(Leak(path, source))
    return leaks


def _walk(paths: Iterable[Path]) -> Iterable[Path]:
    for path in paths:
        if path.is_dir():
            yield from (item for item in sorted(path.rglob("*")) if item.is_file())
        elif path.is_file():
            yield path


def scrub(data: Any, secrets: Sequence[KnownSecret]) -> tuple[Any, int]:
    """Return `data` (JSON-like) with every secret value in its strings replaced by the
    mask, and the number of strings changed."""
    secrets = searchable(secrets)
    if isinstance(data, str):
        cleaned = data
        for secret in secrets:
            cleaned = cleaned.replace(secret.value, MASK)
        return cleaned, int(cleaned != data)
    if isinstance(data, list):
        total = 0
        for index, item in enumerate(data):
            data[index], count = scrub(item, secrets)
            total += count
        return data, total
    if isinstance(data, dict):
        total = 0
        for key in list(data):
            data[key], count = scrub(data[key], secrets)
            total += count
        return data, total
    return data, 0
