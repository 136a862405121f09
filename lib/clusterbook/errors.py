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
        # Registered secret values never reach a message, a traceback or a log.
        from clusterbook.secrets import mask

        message = mask(message)
        hint = mask(hint)
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class LabError(ClusterbookError):
    """The embedded lab could not be built, started, stopped or inspected."""


class InventoryError(ClusterbookError):
    """An inventory file is malformed, or a pattern names a group or host it does not have."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        key: str | None = None,
        hint: str | None = None,
    ) -> None:
        location = file or ""
        if file and line:
            location = f"{file}, line {line}"
        super().__init__(f"{location}: {message}" if location else message, hint=hint)
        self.file = file
        self.line = line
        self.key = key


class HostError(ClusterbookError):
    """Something failed on one host; `host` names it."""

    def __init__(self, message: str, *, host: str, hint: str | None = None) -> None:
        super().__init__(f"{host}: {message}", hint=hint)
        self.host = host
        #: the message without the host name in front, for tables that show the host already
        self.detail = self.message[len(host) + 2 :]


class HostUnreachable(HostError):
    """The SSH connection to a host could not be opened or was lost."""


class HostKeyRejected(HostUnreachable):
    """The host's SSH key is unknown or differs from the one in known_hosts."""


class CommandTimeout(HostError):
    """A command on a host did not finish within its timeout."""


class OperationFailed(HostError):
    """An operation could not inspect or change a host."""


class HostsFailed(ClusterbookError):
    """One or more hosts failed in a fan-out step; `results` keeps every host's result."""

    def __init__(self, message: str, *, results: object, failed: dict[str, str]) -> None:
        super().__init__(message)
        self.results = results
        #: host name -> error message, for every failed host
        self.failed = failed


class VerificationFailed(ClusterbookError):
    """A verification found a host whose state differs from the expected one."""

    def __init__(
        self,
        message: str,
        *,
        host: str | None = None,
        command: str | None = None,
        expected: object = None,
        actual: object = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.host = host
        self.command = command
        self.expected = expected
        self.actual = actual


class ParameterError(ClusterbookError):
    """A chapter parameter has an invalid value; `name` is the parameter."""

    def __init__(self, message: str, *, name: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.name = name


class SecretError(ClusterbookError):
    """A secret could not be read from its environment variable or file."""


class RequirementError(ClusterbookError):
    """A requirement or capability name is unknown, or a target lacks what a step needs."""


class KubernetesError(ClusterbookError):
    """The Kubernetes API rejected a request, or a wait timed out."""
