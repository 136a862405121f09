"""SSH connections on paramiko: a process-wide pool, strict host keys, sudo and SFTP.

One connection per `user@address:port` lives in a module-level pool, so notebook cells
reuse it: a command on a warm connection costs one channel open, not a handshake. The
socket is opened here with `TCP_NODELAY`, because Nagle's algorithm plus delayed ACKs
otherwise adds about 40 ms to every short command. Host keys come from the known_hosts
files the inventory names (`-o UserKnownHostsFile=...`), else ~/.ssh/config, else
~/.ssh/known_hosts. An unknown key is rejected unless the inventory selects trust on first
use. A changed key is always rejected.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import os
import select
import shlex
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import paramiko

from clusterbook import known_hosts as host_keys
from clusterbook.errors import CommandTimeout, HostKeyRejected, HostUnreachable
from clusterbook.inventory import Host
from clusterbook.secrets import mask, reveal

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0
#: default command timeout in seconds; None waits forever
COMMAND_TIMEOUT: float | None = 600.0
#: run commands without stdin or streaming over one long-running shell per connection;
#: set CLUSTERBOOK_PERSISTENT_SHELL=0 to open a channel per command instead
PERSISTENT_SHELL = os.environ.get("CLUSTERBOOK_PERSISTENT_SHELL", "1") != "0"
_print_lock = threading.Lock()


@dataclass
class CommandResult:
    """Output of one command on one host."""

    host: str
    command: str
    exit_code: int
    stdout: str
    stderr: str
    duration: float

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def _close_quietly(client: paramiko.SSHClient, sock: socket.socket) -> None:
    """Stop a failed connection's transport thread before closing its socket.

    Closing only the socket leaves paramiko's thread reading from it, and that thread
    then logs "Socket exception: Bad file descriptor" below the real error.
    """
    client.close()
    sock.close()


class _HostLog(logging.LoggerAdapter):
    """Prefix every message with the connection it is about."""

    def process(self, msg, kwargs):
        return f"[{self.extra['target']}] {msg}", kwargs


class _TrustOnFirstUse(paramiko.MissingHostKeyPolicy):
    """Accept an unknown key and append it to the known_hosts file.

    paramiko rejects a key that differs from a recorded one before it calls this policy.
    """

    def __init__(self, known_hosts: str | None, log_: logging.LoggerAdapter) -> None:
        self.known_hosts = known_hosts
        self.log = log_

    def missing_host_key(self, client, hostname, key) -> None:
        client.get_host_keys().add(hostname, key.get_name(), key)
        fingerprint = host_keys.fingerprint(key)
        if self.known_hosts:
            path = Path(self.known_hosts)
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="ascii") as handle:
                handle.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
            self.log.warning(
                "trusting unknown host key %s %s on first use; recorded in %s",
                key.get_name(),
                fingerprint,
                path,
            )
        else:
            self.log.warning(
                "trusting unknown host key %s %s on first use (not recorded)",
                key.get_name(),
                fingerprint,
            )


@dataclass(frozen=True)
class Target:
    """Resolved connection settings of one host (inventory first, then ~/.ssh/config)."""

    name: str
    hostname: str
    port: int
    user: str
    key_files: tuple[str, ...]
    known_hosts: tuple[str, ...]
    policy: str
    proxy_jump: str | None
    proxy_command: str | None
    become: bool
    become_user: str
    connect_timeout: float

    @property
    def key(self) -> str:
        return f"{self.user}@{self.hostname}:{self.port}"


def _ssh_config() -> paramiko.SSHConfig:
    path = Path(os.environ.get("CLUSTERBOOK_SSH_CONFIG", "~/.ssh/config")).expanduser()
    if path.is_file():
        return paramiko.SSHConfig.from_path(str(path))
    return paramiko.SSHConfig()


def resolve_target(host: Host) -> Target:
    """Combine the inventory's settings with ~/.ssh/config (the inventory wins)."""
    config = _ssh_config().lookup(host.address)
    options = host.ssh_options
    hostname = config.get("hostname", host.address) if host.address == host.name else host.address
    port = host.port or int(config.get("port", 22))
    user = host.user or config.get("user") or getpass.getuser()
    if host.private_key_file:
        key_files: tuple[str, ...] = (host.private_key_file,)
    else:
        key_files = tuple(str(Path(p).expanduser()) for p in config.get("identityfile", []))
    known_hosts = tuple(host.known_hosts_files)
    if not known_hosts and config.get("userknownhostsfile"):
        known_hosts = tuple(
            str(Path(p).expanduser()) for p in str(config["userknownhostsfile"]).split()
        )
    if not known_hosts:
        known_hosts = (str(Path("~/.ssh/known_hosts").expanduser()),)
    policy = host.host_key_policy
    if policy == "reject" and "clusterbook_host_key_policy" not in host.vars:
        strict = str(config.get("stricthostkeychecking", "")).lower()
        if "stricthostkeychecking" not in options and strict in ("accept-new", "no"):
            policy = "trust_on_first_use"
    proxy_jump = options.get("proxyjump") or config.get("proxyjump")
    proxy_command = options.get("proxycommand")
    if proxy_command:
        proxy_command = (
            proxy_command.replace("%h", hostname).replace("%p", str(port)).replace("%r", user)
        )
    else:
        proxy_command = config.get("proxycommand")  # paramiko expands %h/%p/%r itself
    timeout = float(
        options.get("connecttimeout") or config.get("connecttimeout") or CONNECT_TIMEOUT
    )
    return Target(
        name=host.name,
        hostname=hostname,
        port=port,
        user=user,
        key_files=key_files,
        known_hosts=known_hosts,
        policy=policy,
        proxy_jump=proxy_jump if proxy_jump and proxy_jump.lower() != "none" else None,
        proxy_command=proxy_command if proxy_command and proxy_command.lower() != "none" else None,
        become=host.become,
        become_user=host.become_user,
        connect_timeout=timeout,
    )


def _jump_host(spec: str, via: Target) -> Host:
    """Build a `Host` for the last hop of a ProxyJump spec `[user@]host[:port][,...]`.

    Earlier hops become that host's own ProxyJump, as in OpenSSH. The jump host is checked
    against the target's known_hosts file and host key policy. Without an IdentityFile for
    it in ~/.ssh/config it uses the target's key.
    """
    *earlier, last = [hop.strip() for hop in spec.split(",") if hop.strip()]
    user, _, rest = last.rpartition("@")
    address, _, port = rest.partition(":")
    args = [f"-o UserKnownHostsFile={shlex.quote(k)}" for k in via.known_hosts[:1]]
    if earlier:
        args.append(f"-J {shlex.quote(','.join(earlier))}")
    variables: dict[str, Any] = {"ansible_ssh_common_args": " ".join(args)}
    if user:
        variables["ansible_user"] = user
    if port:
        variables["ansible_port"] = int(port)
    if via.key_files and not _ssh_config().lookup(address).get("identityfile"):
        variables["ansible_ssh_private_key_file"] = via.key_files[0]
    if via.policy == "trust_on_first_use":
        variables["clusterbook_host_key_policy"] = "trust_on_first_use"
    return Host(name=address, vars=variables)


class Connection:
    """One SSH connection to one host, shared by threads; reconnects when it died."""

    def __init__(self, host: Host, target: Target) -> None:
        self.host = host
        self.target = target
        self.log = _HostLog(log, {"target": f"{host.name} {target.key}"})
        self._client: paramiko.SSHClient | None = None
        self._lock = threading.Lock()
        self._sftp: paramiko.SFTPClient | None = None
        self._sessions: dict[bool, _ShellSession] = {}

    def __repr__(self) -> str:
        state = "open" if self.is_active() else "closed"
        return f"<Connection {self.host.name} {self.target.key} {state}>"

    def is_active(self) -> bool:
        client = self._client
        transport = client.get_transport() if client else None
        return bool(transport and transport.is_active())

    # Opening

    def _open_socket(self) -> Any:
        target = self.target
        if target.proxy_command and not target.proxy_jump:
            try:
                return paramiko.ProxyCommand(target.proxy_command)
            except (paramiko.SSHException, OSError) as exc:
                raise HostUnreachable(
                    f"ProxyCommand {target.proxy_command!r} failed to start: {exc}",
                    host=self.host.name,
                ) from None
        if target.proxy_jump:
            jump = get_connection(_jump_host(target.proxy_jump, target))
            transport = jump.transport()
            try:
                return transport.open_channel(
                    "direct-tcpip",
                    (target.hostname, target.port),
                    ("127.0.0.1", 0),
                    timeout=target.connect_timeout,
                )
            except (paramiko.SSHException, OSError) as exc:
                raise HostUnreachable(
                    f"cannot reach {target.hostname}:{target.port} through jump host "
                    f"{target.proxy_jump}: {exc}",
                    host=self.host.name,
                ) from None
        try:
            sock = socket.create_connection(
                (target.hostname, target.port), timeout=target.connect_timeout
            )
        except TimeoutError:
            raise HostUnreachable(
                f"connection to {target.hostname}:{target.port} timed out after "
                f"{target.connect_timeout:g} s",
                host=self.host.name,
                hint="check that the host is up and the address in the inventory is right",
            ) from None
        except OSError as exc:
            raise HostUnreachable(
                f"cannot connect to {target.hostname}:{target.port}: {exc.strerror or exc}",
                host=self.host.name,
                hint="check that the host is up and sshd is running",
            ) from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Notice a peer that vanished without closing (powered off) within about 30 s.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for option, value in (("TCP_KEEPIDLE", 15), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3)):
            if hasattr(socket, option):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)
        return sock

    def _connect(self) -> paramiko.SSHClient:
        target = self.target
        client = paramiko.SSHClient()
        for path in target.known_hosts:
            if os.path.isfile(path):
                host_keys.load(client, path, host=self.host.name)
        # load_host_keys makes paramiko rewrite the file on save; we only append ourselves.
        client._host_keys_filename = None
        if target.policy == "trust_on_first_use":
            client.set_missing_host_key_policy(_TrustOnFirstUse(target.known_hosts[0], self.log))
        else:
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
        sock = self._open_socket()
        started = time.monotonic()
        try:
            client.connect(
                hostname=target.hostname,
                port=target.port,
                username=target.user,
                key_filename=list(target.key_files) or None,
                look_for_keys=not target.key_files,
                allow_agent=not target.key_files,
                sock=sock,
                timeout=target.connect_timeout,
                banner_timeout=target.connect_timeout,
                auth_timeout=target.connect_timeout,
            )
        except paramiko.BadHostKeyException as exc:
            _close_quietly(client, sock)
            raise host_keys.mismatch_error(
                exc,
                host=self.host.name,
                hostname=target.hostname,
                port=target.port,
                paths=target.known_hosts,
            ) from None
        except paramiko.AuthenticationException as exc:
            _close_quietly(client, sock)
            raise HostUnreachable(
                f"authentication as {target.user} failed: {exc}",
                host=self.host.name,
                hint=f"check ansible_user and the key ({', '.join(target.key_files) or 'agent'})",
            ) from None
        except paramiko.SSHException as exc:
            _close_quietly(client, sock)
            if "not found in known_hosts" in str(exc):
                raise HostKeyRejected(
                    f"host key of {target.hostname} is unknown (not in "
                    f"{', '.join(target.known_hosts)})",
                    host=self.host.name,
                    hint="add it with ssh-keyscan after checking its fingerprint, or set the "
                    "host var clusterbook_host_key_policy: trust_on_first_use",
                ) from None
            raise HostUnreachable(f"SSH handshake failed: {exc}", host=self.host.name) from None
        except (OSError, EOFError) as exc:
            sock.close()
            raise HostUnreachable(f"SSH connection failed: {exc}", host=self.host.name) from None
        transport = client.get_transport()
        assert transport is not None
        transport.set_keepalive(30)
        self.log.debug("connected in %.0f ms", (time.monotonic() - started) * 1000)
        return client

    def transport(self) -> paramiko.Transport:
        """Return the live transport, connecting or reconnecting first when needed."""
        with self._lock:
            if not self.is_active():
                if self._client is not None:
                    self.log.info("connection lost; reconnecting")
                    self._close_client()
                self._client = self._connect()
            transport = self._client.get_transport()
            assert transport is not None
            return transport

    def _close_client(self) -> None:
        for session in self._sessions.values():
            session.channel = None
        self._sessions = {}
        if self._sftp is not None:
            with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
                self._sftp.close()
            self._sftp = None
        if self._client is not None:
            self._client.close()
            self._client = None

    def close(self) -> None:
        with self._lock:
            self._close_client()

    # Commands

    def wrap(self, command: str, become: bool | None = None, user: str | None = None) -> str:
        """The command line actually sent: through sudo when become applies.

        Without `ansible_become_password` sudo runs with `-n`, so a sudo that needs a
        password fails at once instead of hanging. With it, `-S` reads the password from
        the first line of standard input.
        """
        use_become = self.target.become if become is None else become
        become_user = user or self.target.become_user
        if not use_become or (self.target.user == become_user):
            return command
        prompt = "-S -p ''" if self.host.become_password else "-n"
        return f"sudo {prompt} -H -u {shlex.quote(become_user)} -- sh -c {shlex.quote(command)}"

    def _open_channel(self) -> paramiko.Channel:
        for attempt in (1, 2):
            transport = self.transport()
            try:
                return transport.open_session(timeout=self.target.connect_timeout)
            except (paramiko.SSHException, EOFError, OSError) as exc:
                # The command has not been sent yet, so retrying on a new connection is safe.
                self.log.info("opening a channel failed (%s), attempt %d", exc, attempt)
                with self._lock:
                    self._close_client()
                if attempt == 2:
                    raise HostUnreachable(
                        f"SSH connection to {self.target.key} failed: {exc}", host=self.host.name
                    ) from None
        raise AssertionError("unreachable")

    def run(
        self,
        command: str,
        *,
        become: bool | None = None,
        user: str | None = None,
        timeout: float | None = COMMAND_TIMEOUT,
        stdin: str | bytes | None = None,
        stream: bool | IO[str] = False,
    ) -> CommandResult:
        """Run a shell command and wait for it; output is captured (and masked).

        `stream=True` also prints each line as it arrives, prefixed by the host name.
        `stdin` is sent to the command's standard input, then closed. A command that
        runs longer than `timeout` seconds is abandoned (its channel closed) and raises
        `CommandTimeout`.
        """
        wire_command = self.wrap(command, become, user)
        self.log.debug("run: %s", command)
        started = time.monotonic()
        use_become = self.target.become if become is None else become
        if PERSISTENT_SHELL and stdin is None and not stream and user is None:
            result = self._run_in_session(command, use_become, timeout, started)
            if result is not None:
                return result
        channel = self._open_channel()
        out_chunks: list[bytes] = []
        err_chunks: list[bytes] = []
        printer = _LinePrinter(self.host.name, stream) if stream else None
        try:
            channel.exec_command(wire_command)
            if wire_command != command and self.host.become_password:
                password = str(reveal(self.host.become_password))
                channel.sendall(f"{password}\n".encode())
            if stdin is not None:
                data = stdin.encode() if isinstance(stdin, str) else stdin
                channel.sendall(data)
            channel.shutdown_write()
            deadline = None if timeout is None else started + timeout
            while True:
                drained = False
                while channel.recv_ready():
                    chunk = channel.recv(65536)
                    out_chunks.append(chunk)
                    if printer:
                        printer.feed(chunk, "out")
                    drained = True
                while channel.recv_stderr_ready():
                    chunk = channel.recv_stderr(65536)
                    err_chunks.append(chunk)
                    if printer:
                        printer.feed(chunk, "err")
                    drained = True
                if channel.eof_received and not drained:
                    break
                if channel.closed and not drained:
                    break
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise CommandTimeout(
                        f"command timed out after {timeout:g} s: {command}",
                        host=self.host.name,
                        hint="pass a larger timeout= or check why the command hangs",
                    )
                if not drained:
                    select.select([channel], [], [], min(remaining or 1.0, 1.0))
            remaining = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            if not channel.status_event.wait(remaining):
                raise CommandTimeout(
                    f"command timed out after {timeout:g} s waiting for its exit status: {command}",
                    host=self.host.name,
                )
            exit_code = channel.exit_status
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise HostUnreachable(
                f"connection lost while running {command!r}: {exc}", host=self.host.name
            ) from None
        finally:
            channel.close()
            if printer:
                printer.flush()
        duration = time.monotonic() - started
        result = CommandResult(
            host=self.host.name,
            command=mask(command),
            exit_code=exit_code,
            stdout=mask(b"".join(out_chunks).decode("utf-8", "replace")),
            stderr=mask(b"".join(err_chunks).decode("utf-8", "replace")),
            duration=duration,
        )
        self.log.debug("exit %d after %.1f ms", exit_code, duration * 1000)
        return result

    def _run_in_session(
        self, command: str, become: bool, timeout: float | None, started: float
    ) -> CommandResult | None:
        """Run over the persistent shell; None when it is busy (the caller opens a channel)."""
        become = become and self.target.user != self.target.become_user
        with self._lock:
            session = self._sessions.get(become)
            if session is None:
                session = self._sessions[become] = _ShellSession(self, become)
        if not session.lock.acquire(blocking=False):
            return None
        try:
            try:
                exit_code, out, err = session.run(command, timeout)
            except (_SessionEnded, paramiko.SSHException, EOFError, OSError) as exc:
                # A connection reset before any output (the node restarted since the last
                # command) means the command never reached a live shell: retry it once.
                if self.is_active() or getattr(exc, "received", True):
                    raise
                self.log.info("connection was reset (%s); reconnecting and retrying", exc)
                session.close()
                exit_code, out, err = session.run(command, timeout)
        except TimeoutError:
            raise CommandTimeout(
                f"command timed out after {timeout:g} s: {command}",
                host=self.host.name,
                hint="pass a larger timeout= or check why the command hangs",
            ) from None
        except _SessionEnded as exc:
            raise HostUnreachable(
                f"{exc} while running {command!r}",
                host=self.host.name,
                hint="for become, check that sudo works without a password (sudo -n true)",
            ) from None
        except (paramiko.SSHException, EOFError, OSError) as exc:
            session.close()
            raise HostUnreachable(
                f"connection lost while running {command!r}: {exc}", host=self.host.name
            ) from None
        finally:
            session.lock.release()
        duration = time.monotonic() - started
        self.log.debug("exit %d after %.1f ms (shell session)", exit_code, duration * 1000)
        return CommandResult(
            host=self.host.name,
            command=mask(command),
            exit_code=exit_code,
            stdout=mask(out.decode("utf-8", "replace")),
            stderr=mask(err.decode("utf-8", "replace")),
            duration=duration,
        )

    # Files

    def sftp(self) -> paramiko.SFTPClient:
        self.transport()
        with self._lock:
            if self._sftp is None:
                assert self._client is not None
                self._sftp = self._client.open_sftp()
            return self._sftp

    def put(
        self,
        data: bytes | str | os.PathLike,
        remote: str,
        *,
        mode: int = 0o644,
        become: bool | None = None,
    ) -> None:
        """Upload bytes (or a local file) to `remote`; with become, move it into place as root."""
        if isinstance(data, os.PathLike):
            payload = Path(data).read_bytes()
        else:
            payload = data.encode() if isinstance(data, str) else data
        use_become = self.target.become if become is None else become
        sftp = self.sftp()
        if not use_become or self.target.user == self.target.become_user:
            with sftp.open(remote, "wb") as handle:
                handle.write(payload)
            sftp.chmod(remote, mode)
            return
        staging = f"/tmp/.clusterbook-put-{os.getpid()}-{threading.get_ident()}"
        with sftp.open(staging, "wb") as handle:
            handle.write(payload)
        result = self.run(
            f"install -m {mode:o} {shlex.quote(staging)} {shlex.quote(remote)}; "
            f"rc=$?; rm -f {shlex.quote(staging)}; exit $rc",
            become=True,
        )
        if result.exit_code != 0:
            raise HostUnreachable(
                f"cannot write {remote}: {result.stderr.strip()}", host=self.host.name
            )

    def get(self, remote: str, *, become: bool | None = None) -> bytes:
        """Download a file's content; with become, read it through `sudo cat`."""
        use_become = self.target.become if become is None else become
        if use_become and self.target.user != self.target.become_user:
            result = self.run(f"base64 -w0 < {shlex.quote(remote)}", become=True)
            if result.exit_code != 0:
                raise HostUnreachable(
                    f"cannot read {remote}: {result.stderr.strip()}", host=self.host.name
                )
            import base64

            return base64.b64decode(result.stdout)
        with self.sftp().open(remote, "rb") as handle:
            return handle.read()


class _ShellSession:
    """A long-running shell on one channel that runs commands one after another.

    Opening a channel and starting a command costs sshd a fork and the client several
    packet round trips. Writing one line to a shell that already runs costs neither, and
    the root shell behind `sudo` starts once instead of once per command. Each command
    runs as `( eval '<command>' ) </dev/null` in a subshell, so variables, `cd` and `exit`
    do not leak into later commands, and its end is found by a random marker line followed
    by the exit code on stdout and the same marker on stderr.
    """

    def __init__(self, connection: Connection, become: bool) -> None:
        self.connection = connection
        self.become = become
        self.lock = threading.Lock()
        self.channel: paramiko.Channel | None = None

    def _start(self) -> paramiko.Channel:
        channel = self.connection._open_channel()
        if self.become:
            target = self.connection.target
            prompt = "-S -p ''" if self.connection.host.become_password else "-n"
            command = f"sudo {prompt} -H -u {shlex.quote(target.become_user)} -- sh"
        else:
            # The login shell, as for a command of its own, unless it is not POSIX-like.
            command = (
                'case "${SHELL##*/}" in bash|zsh|sh|dash|ksh|mksh) exec "$SHELL" ;; '
                "*) exec /bin/sh ;; esac"
            )
        channel.exec_command(command)
        if self.become and self.connection.host.become_password:
            channel.sendall(f"{reveal(self.connection.host.become_password)}\n".encode())
        return channel

    def close(self) -> None:
        if self.channel is not None:
            self.channel.close()
            self.channel = None

    def run(self, command: str, timeout: float | None) -> tuple[int, bytes, bytes]:
        """Run one command. The caller must have acquired `self.lock`."""
        if self.channel is None or self.channel.closed or self.channel.exit_status_ready():
            self.close()
            self.channel = self._start()
        channel = self.channel
        marker = f"__clusterbook_{uuid.uuid4().hex}__"
        script = (
            f"( eval {shlex.quote(command)}\n) </dev/null; "
            f"printf '\\n%s %d\\n' {marker} \"$?\"; printf '\\n%s\\n' {marker} >&2\n"
        )
        out_end = f"\n{marker} ".encode()
        err_end = f"\n{marker}\n".encode()
        out = bytearray()
        err = bytearray()
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            channel.sendall(script.encode())
        except (paramiko.SSHException, EOFError, OSError) as exc:
            exc.received = False  # type: ignore[attr-defined]
            raise
        while True:
            while channel.recv_ready():
                out += channel.recv(65536)
            while channel.recv_stderr_ready():
                err += channel.recv_stderr(65536)
            out_done = out_end in out and out.endswith(b"\n")
            if out_done and err.endswith(err_end):
                break
            if channel.eof_received or channel.closed:
                if channel.recv_ready() or channel.recv_stderr_ready():
                    continue
                self.close()
                status = channel.exit_status if channel.exit_status_ready() else -1
                ended = _SessionEnded(
                    f"shell session ended (exit status {status}): {bytes(err[-500:])!r}"
                )
                ended.received = bool(out or err)
                raise ended
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                self.close()
                raise TimeoutError
            select.select([channel], [], [], min(remaining or 1.0, 1.0))
        index = out.rfind(out_end)
        exit_code = int(out[index + len(out_end) :].strip() or b"-1")
        return exit_code, bytes(out[:index]), bytes(err[: -len(err_end)])


class _SessionEnded(Exception):
    """The shell of a `_ShellSession` exited or its channel closed."""

    #: whether any output of the command arrived before the end
    received: bool = True


class _LinePrinter:
    """Print complete lines as they arrive, prefixed by the host name."""

    def __init__(self, host: str, stream: bool | IO[str]) -> None:
        self.host = host
        self.out = stream if not isinstance(stream, bool) else None
        self.partial = {"out": b"", "err": b""}

    def feed(self, chunk: bytes, kind: str) -> None:
        data = self.partial[kind] + chunk
        *lines, self.partial[kind] = data.split(b"\n")
        for line in lines:
            self._print(line, kind)

    def flush(self) -> None:
        for kind, rest in self.partial.items():
            if rest:
                self._print(rest, kind)
        self.partial = {"out": b"", "err": b""}

    def _print(self, line: bytes, kind: str) -> None:
        text = mask(line.decode("utf-8", "replace").rstrip("\r"))
        marker = "!" if kind == "err" else "|"
        with _print_lock:
            print(f"{self.host} {marker} {text}", file=self.out or sys.stdout, flush=True)


# The pool

_pool: dict[str, Connection] = {}
_pool_lock = threading.Lock()


def get_connection(host: Host, *, slot: int = 0) -> Connection:
    """Return the pooled connection for a host, created (not yet opened) on first use.

    `slot` > 0 requests an extra, separate connection to the same host (benchmarks use
    it to simulate more hosts than the lab has).
    """
    target = resolve_target(host)
    key = target.key if slot == 0 else f"{target.key}#{slot}"
    with _pool_lock:
        connection = _pool.get(key)
        if connection is None or connection.target != target:
            connection = Connection(host, target)
            _pool[key] = connection
        return connection


def close_all() -> None:
    """Close every pooled connection (the next command reconnects)."""
    with _pool_lock:
        connections = list(_pool.values())
        _pool.clear()
    for connection in connections:
        connection.close()


def pool_size() -> int:
    return len(_pool)


def run(host: Host, command: str, **kwargs: Any) -> CommandResult:
    """Run a command on one host over its pooled connection."""
    return get_connection(host).run(command, **kwargs)


__all__ = [
    "CommandResult",
    "Connection",
    "Target",
    "close_all",
    "get_connection",
    "resolve_target",
    "run",
]
