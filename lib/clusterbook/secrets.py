"""Secret values that never show up in output: a masked type and a global mask registry.

Every `Secret` registers its value here when created. `mask()` replaces each registered
value with `********`; the library applies it to captured command output, diffs, result
tables, exception messages and (through a log record factory installed on import) every
log record of every logger.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from clusterbook import runrecord
from clusterbook.errors import SecretError

MASK = "********"
#: values shorter than this are not masked, because masking them would garble all output
MIN_MASKED_LENGTH = 3

_lock = threading.Lock()
_values: set[str] = set()
#: registered values, longest first, so a value that contains another is masked whole
_ordered: list[str] = []
log = logging.getLogger(__name__)


def register(value: str) -> None:
    """Add a value to the mask registry (values shorter than 3 characters are not masked)."""
    global _ordered
    if not isinstance(value, str) or len(value) < MIN_MASKED_LENGTH:
        return
    candidates = {value, value.strip()}
    with _lock:
        changed = False
        for candidate in candidates:
            if len(candidate) >= MIN_MASKED_LENGTH and candidate not in _values:
                _values.add(candidate)
                changed = True
        if changed:
            _ordered = sorted(_values, key=len, reverse=True)


def mask(text: str | bytes | None) -> str | bytes | None:
    """Replace every registered secret value in `text` with `********`."""
    if not text or not _ordered:
        return text
    if isinstance(text, bytes):
        masked = text
        for value in _ordered:
            masked = masked.replace(value.encode(), MASK.encode())
        return masked
    masked_text = str(text)
    for value in _ordered:
        if value in masked_text:
            masked_text = masked_text.replace(value, MASK)
    return masked_text


def registered_values() -> list[str]:
    """Return the registered secret values, longest first, for leak scans of this process."""
    with _lock:
        return list(_ordered)


def clear_registry() -> None:
    """Forget every registered value (for tests)."""
    global _ordered
    with _lock:
        _values.clear()
        _ordered = []


class Secret:
    """A secret string: `repr`, `str` and formatting show `Secret('********')`.

    Call `reveal()` only to pass the value on (into a template, a request, a command's
    standard input); the library masks it wherever captured output shows it.
    """

    __slots__ = ("_value", "source")

    def __init__(self, value: str, *, source: str = "value") -> None:
        if not isinstance(value, str):
            raise SecretError(f"a Secret needs a string value, got {type(value).__name__}")
        self._value = value
        #: where the value came from (`env:NAME`, `file:/path`), safe to show
        self.source = source
        register(value)

    def reveal(self) -> str:
        """Return the real value."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{MASK}')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self):
        raise TypeError("a Secret cannot be pickled, because that would store its value")

    @classmethod
    def from_env(cls, name: str) -> Secret:
        """Read a secret from an environment variable; raise `SecretError` when unset or empty."""
        value = os.environ.get(name)
        if not value:
            raise SecretError(
                f"environment variable {name} is not set",
                hint=f"export {name}=... before starting Jupyter or the batch run",
            )
        # The book build re-reads this source to search the built pages for the value.
        runrecord.secret_source(f"env:{name}")
        return cls(value, source=f"env:{name}")

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> Secret:
        """Read a secret from a file (trailing newline removed)."""
        file = Path(path).expanduser()
        work_tree = _git_work_tree(file)
        if work_tree is not None:
            raise SecretError(
                f"secret file {file} is inside the git work tree {work_tree}",
                hint="keep secrets outside the repository (e.g. ~/.config/clusterbook/), "
                "so they cannot be committed",
            )
        try:
            value = file.read_text(encoding="utf-8").rstrip("\r\n")
        except FileNotFoundError:
            raise SecretError(
                f"secret file {file} not found", hint="create it, readable only by you (0600)"
            ) from None
        except OSError as exc:
            raise SecretError(f"cannot read secret file {file}: {exc.strerror}") from None
        if not value:
            raise SecretError(f"secret file {file} is empty")
        runrecord.secret_source(f"file:{file}")
        return cls(value, source=f"file:{file}")

    @classmethod
    def resolve(cls, reference: str | Secret) -> Secret:
        """Read a secret from `env:NAME` or `file:/path`; a `Secret` is returned as it is."""
        if isinstance(reference, Secret):
            return reference
        kind, _, rest = str(reference).partition(":")
        if kind == "env" and rest:
            return cls.from_env(rest)
        if kind == "file" and rest:
            return cls.from_file(rest)
        raise SecretError(
            "invalid secret reference (its value is not shown): expected env:NAME or file:/path",
        )


def _git_work_tree(path: Path) -> Path | None:
    """Return the git work tree that contains `path`, if any."""
    for folder in path.resolve().parents:
        if (folder / ".git").exists():
            return folder
    return None


def reveal(value: object) -> object:
    """Return the real value of a `Secret`, or `value` itself for anything else."""
    return value.reveal() if isinstance(value, Secret) else value


# Mask every log record at creation, so handlers of all loggers (and pytest's caplog) only
# ever see masked text.
_previous_factory = logging.getLogRecordFactory()


def _masking_record_factory(*args, **kwargs) -> logging.LogRecord:
    record = _previous_factory(*args, **kwargs)
    if _ordered:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it for logging to report
            return record
        masked = mask(message)
        if masked != message:
            record.msg = masked
            record.args = ()
    return record


if getattr(_previous_factory, "__name__", "") != "_masking_record_factory":
    logging.setLogRecordFactory(_masking_record_factory)
