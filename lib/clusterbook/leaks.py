"""Find known secret values in notebooks and built files, and scrub them from notebooks.

The runner and the book build both know where secrets came from (environment
variables and files) but must never store the values. This module re-reads those
sources, then searches text for each value in the forms it takes after JSON and
HTML escaping, and reports only the source of a match, never the value.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import os
import secrets
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


def fingerprint(value: str) -> dict[str, Any]:
    """Return a salted SHA-256 fingerprint of a secret value, safe to store in run.json.

    It stores the value's length in characters, a random salt and
    sha256(salt + value). The book build uses it to find the value in text after the
    value's source can no longer be read (`find_fingerprint`).
    """
    salt = secrets.token_hex(16)
    digest = hashlib.sha256((salt + value).encode("utf-8")).hexdigest()
    return {"length": len(value), "salt": salt, "sha256": digest}


def matches_fingerprint(value: str, stored: dict[str, Any]) -> bool:
    """Return True when `value` is the value behind the fingerprint `stored`."""
    if len(value) != stored.get("length"):
        return False
    digest = hashlib.sha256((stored["salt"] + value).encode("utf-8")).hexdigest()
    return digest == stored.get("sha256")


def find_fingerprint(text: str, stored: dict[str, Any]) -> bool:
    """Return True when some substring of `text` has the fingerprint `stored`.

    Every substring of the stored length is hashed, so this costs one SHA-256 per
    character of `text`. Callers unescape JSON and HTML text first, because the
    fingerprint only matches the raw value.
    """
    length = stored.get("length")
    if not isinstance(length, int) or length < MIN_SECRET_LENGTH or length > len(text):
        return False
    salt = stored["salt"].encode("utf-8")
    expected = stored["sha256"]
    for start in range(len(text) - length + 1):
        window = text[start : start + length]
        if hashlib.sha256(salt + window.encode("utf-8")).hexdigest() == expected:
            return True
    return False


def _unescaped_texts(data: bytes) -> list[str]:
    """Return the forms of a file's text in which a raw secret value would appear."""
    text = data.decode("utf-8", errors="replace")
    forms = [text, html.unescape(text)]
    try:
        parsed = json.loads(text)
    except ValueError:
        return forms
    strings: list[str] = []
    _collect_strings(parsed, strings)
    forms.append("\n".join(strings))
    return forms


def _collect_strings(data: Any, strings: list[str]) -> None:
    if isinstance(data, str):
        strings.append(data)
    elif isinstance(data, list):
        for item in data:
            _collect_strings(item, strings)
    elif isinstance(data, dict):
        for key, item in data.items():
            strings.append(str(key))
            _collect_strings(item, strings)


def scan_files_by_fingerprint(
    paths: Iterable[Path], fingerprints: Sequence[tuple[str, dict[str, Any]]]
) -> list[Leak]:
    """Return every file among `paths` that contains a value given only by fingerprint.

    `fingerprints` pairs a source with a stored fingerprint. Only text files are
    searched (`.ipynb`, `.json`, `.html`, `.txt`, `.md`, `.js`, `.yml`), and none
    under a `_static` folder.
    """
    if not fingerprints:
        return []
    found = []
    for path in _walk(paths):
        # _static/ holds the theme's JavaScript and CSS, never chapter text.
        if path.suffix not in _TEXT_SUFFIXES or "_static" in path.parts:
            continue
        texts = _unescaped_texts(path.read_bytes())
        for source, stored in fingerprints:
            if any(find_fingerprint(text, stored) for text in texts):
                found.append(Leak(path, source))
    return found


_TEXT_SUFFIXES = {".ipynb", ".json", ".html", ".txt", ".md", ".js", ".yml"}


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
