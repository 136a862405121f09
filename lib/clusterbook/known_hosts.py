"""Read OpenSSH known_hosts files for `clusterbook.ssh`, with errors that name file and line.

paramiko's own loader stops at the first line whose key data is not valid base64 with an
`InvalidHostKey` that names neither the file nor the line, and its host-key mismatch error
carries only the keys. These helpers add the file, the line number and the SHA256
fingerprints that `ssh` and `ssh-keygen -l` print, so a reader can find the line to fix.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path

import paramiko
from paramiko.hostkeys import HostKeyEntry, InvalidHostKey

from clusterbook.errors import HostKeyRejected


def fingerprint(key: paramiko.PKey) -> str:
    """Return the key's fingerprint as OpenSSH prints it: `SHA256:` + unpadded base64."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def lookup_name(hostname: str, port: int) -> str:
    """Return the name known_hosts records for a host: `name`, or `[name]:port` off port 22."""
    return hostname if port == 22 else f"[{hostname}]:{port}"


@dataclass(frozen=True)
class KnownHostLine:
    """One known_hosts entry that names a host: its location and the key it contains."""

    path: str
    line: int
    key_type: str
    key: paramiko.PKey | None

    @property
    def location(self) -> str:
        return f"{self.path}, line {self.line}"


def _matches(pattern: str, name: str) -> bool:
    """Tell whether one host field of a known_hosts line (plain or hashed) names `name`."""
    if pattern.startswith("|1|"):
        try:
            _, _, salt, hashed = pattern.split("|")
            digest = hmac.new(base64.b64decode(salt), name.encode(), hashlib.sha1).digest()
        except ValueError:
            return False
        return hmac.compare_digest(base64.b64encode(digest).decode(), hashed)
    return pattern == name


def load(client: paramiko.SSHClient, path: str, *, host: str) -> None:
    """Load `path` into the client's host keys; raise `HostKeyRejected` naming a bad line.

    `host` is the inventory name the error is reported for.
    """
    try:
        client.load_host_keys(path)
    except InvalidHostKey as exc:
        number = _line_number(path, exc.line)
        where = f"{path}, line {number}" if number else path
        removal = f"sed -i '{number}d' {path}" if number else f"edit {path}"
        raise HostKeyRejected(
            f"known_hosts file {where} has invalid key data "
            f"(the base64 text of the key does not decode: {exc.exc})",
            host=host,
            hint=f"delete the broken line ({removal}), then record the host's key again "
            "after checking its fingerprint (ssh-keyscan HOST | ssh-keygen -lf -)",
        ) from None
    except (OSError, UnicodeDecodeError, paramiko.SSHException) as exc:
        raise HostKeyRejected(f"cannot read known_hosts file {path}: {exc}", host=host) from None


def _line_number(path: str, stripped_line: str) -> int | None:
    """Return the 1-based number of the first line of `path` equal to `stripped_line`."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, 1):
                if line.strip() == stripped_line:
                    return number
    except OSError:
        return None
    return None


def find(paths: tuple[str, ...] | list[str], name: str) -> list[KnownHostLine]:
    """Return every entry for `name` (as `lookup_name` spells it) in the given files.

    Lines paramiko cannot parse are skipped here, because `load` reports them.
    """
    found = []
    for path in paths:
        file = Path(path)
        if not file.is_file():
            continue
        try:
            lines = file.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        for number, line in enumerate(lines, 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            fields = text.split()
            if fields[0].startswith("@") or len(fields) < 3:
                continue  # @cert-authority / @revoked markers and short lines
            if not any(_matches(pattern, name) for pattern in fields[0].split(",")):
                continue
            try:
                entry = HostKeyEntry.from_line(text, number)
            except (InvalidHostKey, paramiko.SSHException, ValueError):
                entry = None
            key = entry.key if entry is not None else None
            found.append(KnownHostLine(str(path), number, fields[1], key))
    return found


def mismatch_error(
    exc: paramiko.BadHostKeyException,
    *,
    host: str,
    hostname: str,
    port: int,
    paths: tuple[str, ...] | list[str],
) -> HostKeyRejected:
    """Build the error for a host key that differs from the recorded one.

    It shows both SHA256 fingerprints and the file and line of the recorded key.
    """
    name = lookup_name(hostname, port)
    entries = find(paths, name)
    expected_blob = exc.expected_key.asbytes()
    recorded = [e for e in entries if e.key is not None and e.key.asbytes() == expected_blob]
    where = recorded[0].location if recorded else ", ".join(paths)
    offered = f"{exc.key.get_name()} {fingerprint(exc.key)}"
    expected = f"{exc.expected_key.get_name()} {fingerprint(exc.expected_key)}"
    removal = f"ssh-keygen -R {name}" + (f" -f {recorded[0].path}" if recorded else "")
    return HostKeyRejected(
        f"host key for {name} changed: the host offered {offered}, but {where} records {expected}",
        host=host,
        hint="if the host was reinstalled on purpose, remove the old key "
        f"({removal}) and record the new one after checking its fingerprint; "
        "otherwise someone may be intercepting the connection",
    )
