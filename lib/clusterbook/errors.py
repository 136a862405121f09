"""The error hierarchy shared by the library, the lab and the command line.

Every error the `clusterbook` command catches derives from `ClusterbookError`;
the command prints its message (and hint, when there is one) and exits non-zero
without a traceback.
"""

from __future__ import annotations


class ClusterbookError(Exception):
    """Base class of every error clusterbook raises on purpose."""

    #: exit status the command line uses for this error
    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class LabError(ClusterbookError):
    """The embedded lab could not be built, started, stopped or inspected."""
