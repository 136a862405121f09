"""The base root filesystem every node overlays: Debian 12 from debootstrap.

It is built once through the lab's apt proxy (so a rebuild needs no download)
and cached under the base folder, keyed by a hash of the suite, the package
list and the build recipe. A build happens in a temporary folder that is
renamed into place only when complete, so an interrupted build leaves nothing
half-made behind.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from clusterbook.errors import LabError
from clusterbook.lab.config import LabConfig
from clusterbook.lab.system import run, unmount_tree

log = logging.getLogger(__name__)

SUITE = "bookworm"
#: the lab's node user; it has passwordless sudo, like the reference cluster's admin user
NODE_USER = "admin"
PACKAGES = (
    "openssh-server",
    "systemd",
    "systemd-sysv",
    "dbus",
    "iproute2",
    "python3",
    "python3-pip",
    "python3-venv",
    "sudo",
    "procps",
    "iputils-ping",
    "ca-certificates",
    "curl",
    "less",
)
#: bump when the steps in `_configure` change, so cached bases are rebuilt
RECIPE_VERSION = "3"

#: units that cannot work inside a container and would mark a node "degraded"
MASKED_UNITS = (
    "nvmf-autoconnect.service",
    "openipmi.service",
    "systemd-remount-fs.service",
    "sys-kernel-config.mount",
)


def base_key(config: LabConfig) -> str:
    """Return the cache key of the base, a hash of its recipe. The proxy settings are
    not part of it: each node gets them in its own overlay (`write_proxy_settings`)."""
    recipe = "\n".join([SUITE, RECIPE_VERSION, *PACKAGES, *MASKED_UNITS])
    return hashlib.sha256(recipe.encode()).hexdigest()[:16]


def base_rootfs(config: LabConfig) -> Path:
    return config.base_dir / base_key(config) / "rootfs"


def base_is_built(config: LabConfig) -> bool:
    return (config.base_dir / base_key(config) / "complete").exists()


def build_base(config: LabConfig, progress: Callable[[str], None]) -> Path:
    """Build the base root filesystem unless it is cached; return its path."""
    final = config.base_dir / base_key(config)
    if (final / "complete").exists():
        return final / "rootfs"

    config.base_dir.mkdir(parents=True, exist_ok=True)
    for stale in config.base_dir.iterdir():
        # Bases of older recipes are never used again.
        if (
            stale.is_dir()
            and stale.name != base_key(config)
            and not stale.name.endswith(".building")
        ):
            unmount_tree(stale)
            _remove_tree(stale)
    staging = config.base_dir / f"{base_key(config)}.building"
    _remove_tree(staging)
    rootfs = staging / "rootfs"
    rootfs.mkdir(parents=True)
    started = time.monotonic()
    try:
        _debootstrap(config, rootfs, staging / "debootstrap.log", progress)
        progress("configuring the base (apt upgrade, users, sshd)")
        _configure(config, rootfs)
    except BaseException:
        unmount_tree(staging)
        raise
    unmount_tree(staging)
    _remove_tree(final)
    staging.rename(final)
    (final / "complete").write_text(f"built in {time.monotonic() - started:.1f} s\n")
    progress(f"base ready in {time.monotonic() - started:.0f} s")
    return final / "rootfs"


def remove_bases(config: LabConfig) -> None:
    """Remove the cached bases when they live inside the state folder; a base
    folder configured elsewhere may be shared with other labs and stays."""
    if not config.base_dir.resolve().is_relative_to(config.state_dir.resolve()):
        return
    if config.base_dir.exists():
        unmount_tree(config.base_dir)
        _remove_tree(config.base_dir)


def _debootstrap(
    config: LabConfig, rootfs: Path, log_path: Path, progress: Callable[[str], None]
) -> None:
    mirror = f"{config.apt_proxy_url}/deb.debian.org/debian"
    args = [
        "debootstrap",
        "--variant=minbase",
        "--include=" + ",".join(PACKAGES),
        SUITE,
        str(rootfs),
        mirror,
    ]
    progress(f"building the Debian 12 base with debootstrap (about a minute, log: {log_path})")
    with open(log_path, "w") as log_file:
        process = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
        assert process.stdout is not None
        fetched = 0
        for line in process.stdout:
            log_file.write(line)
            if line.startswith("I: Retrieving "):
                fetched += 1
            elif line.startswith("I: ") and not line.startswith("I: Validating "):
                progress(f"debootstrap: {line[3:].strip()} ({fetched} packages fetched)")
        code = process.wait()
    if code != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
        raise LabError(
            f"debootstrap failed with exit code {code}\n{tail}",
            hint=f"full log: {log_path}; check that {config.apt_proxy_url} reaches the mirror",
        )


def _configure(config: LabConfig, rootfs: Path) -> None:
    etc = rootfs / "etc"
    (etc / "apt" / "sources.list").write_text("")
    (etc / "apt" / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\n"
        "URIs: http://deb.debian.org/debian\n"
        f"Suites: {SUITE} {SUITE}-updates\n"
        "Components: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        "\n"
        "Types: deb\n"
        "URIs: http://deb.debian.org/debian-security\n"
        f"Suites: {SUITE}-security\n"
        "Components: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    )
    write_proxy_settings(config, rootfs)
    (etc / "resolv.conf").unlink(missing_ok=True)
    (etc / "resolv.conf").write_text("# Lab nodes have no DNS; /etc/hosts names the nodes.\n")

    policy = rootfs / "usr" / "sbin" / "policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    run(["mount", "-t", "proc", "proc", str(rootfs / "proc")])
    try:
        env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "DEBIAN_FRONTEND": "noninteractive",
            "LC_ALL": "C",
        }
        chroot = ["chroot", str(rootfs)]
        run([*chroot, "apt-get", "update", "-qq"], env=env)
        run([*chroot, "apt-get", "-y", "-qq", "upgrade"], env=env)
        run([*chroot, "useradd", "--create-home", "--shell", "/bin/bash", NODE_USER], env=env)
        run([*chroot, "apt-get", "clean"], env=env)
    finally:
        run(["umount", str(rootfs / "proc")], check=False)
    policy.unlink()

    sudoers = etc / "sudoers.d" / "clusterbook-lab"
    sudoers.write_text(f"{NODE_USER} ALL=(ALL:ALL) NOPASSWD: ALL\n")
    sudoers.chmod(0o440)
    (etc / "ssh" / "sshd_config.d" / "clusterbook-lab.conf").write_text(
        "# Each lab node gets its own ed25519 host key at first boot of its overlay.\n"
        "HostKey /etc/ssh/ssh_host_ed25519_key\n"
        "PermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\n"
        "UseDNS no\n"
    )
    for key in (etc / "ssh").glob("ssh_host_*"):
        key.unlink()
    (etc / "machine-id").write_text("")
    systemd_dir = etc / "systemd" / "system"
    for unit in MASKED_UNITS:
        target = systemd_dir / unit
        target.unlink(missing_ok=True)
        target.symlink_to("/dev/null")
    # The console getty would compete with nspawn's read-only console.
    for getty in systemd_dir.glob("getty.target.wants/*"):
        getty.unlink()


def write_proxy_settings(config: LabConfig, rootfs: Path) -> None:
    """Point apt and pip inside `rootfs` at the lab's proxies."""
    etc = rootfs / "etc"
    (etc / "apt" / "apt.conf.d" / "01clusterbook-lab-proxy").write_text(
        f'Acquire::http::Proxy "{config.apt_proxy_url}";\n'
        # HTTPS repositories would need a CONNECT tunnel, which the proxy refuses;
        # fail at once instead of waiting for a timeout.
        'Acquire::https::Proxy "DIRECT";\n'
        'Acquire::Retries "2";\n'
    )
    (etc / "pip.conf").write_text(
        "[global]\n"
        f"index-url = {config.pypi_index_url}\n"
        f"trusted-host = {config.gateway}\n"
        "disable-pip-version-check = true\n"
    )


def _remove_tree(path: Path) -> None:
    if path.exists() or path.is_symlink():
        shutil.rmtree(path, onerror=_retry_writable)


def _retry_writable(func, path, _exc_info) -> None:  # type: ignore[no-untyped-def]
    try:
        os.chmod(path, 0o700)
        func(path)
    except OSError:
        pass
