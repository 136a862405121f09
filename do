#!/usr/bin/env bash
# Set up, build and test clusterbook on a Debian 12 machine. Run as root:
#
#   ./do install   host packages, .venv with the pinned requirements, the python3 kernel
#   ./do book      install, start the lab, run chapters 001-010, build the HTML book
#   ./do test      install, start the lab, lint, unit and lab tests, notebook tests;
#                  the lab is removed at the end (its Debian base is kept as a cache)
#
# Environment: PYTHON (default python3) creates the venv; CLUSTERBOOK_KEEP_LAB=1 keeps
# the lab running after `./do test`; BOOK_CHAPTERS (default 001-010) picks what
# `./do book` runs.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
BIN="$VENV/bin"
PYTHON="${PYTHON:-python3}"

# Host packages the lab and the tests need: the lab's base image and nodes
# (debootstrap, systemd-nspawn), its package proxy, bridge and firewall, SSH to
# the nodes, and Python to create the virtual environment.
HOST_PACKAGES=(
  debootstrap systemd-container apt-cacher-ng iproute2 nftables openssh-client
  ca-certificates python3 python3-venv python3-pip
)

say() { printf '\n==> %s\n' "$*"; }
fail() { printf 'do: error: %s\n' "$*" >&2; exit 1; }

require_root() {
  [[ $(id -u) -eq 0 ]] || fail "run as root (sudo ./do $1): the lab creates network namespaces and mounts"
}

install_host_packages() {
  local missing=() package
  for package in "${HOST_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$package")
    fi
  done
  if [[ ${#missing[@]} -eq 0 ]]; then
    echo "host packages: all installed"
    return
  fi
  say "installing host packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # The apt-cacher-ng package would start a system-wide proxy on port 3142; the lab
  # starts its own on the lab bridge. A temporary policy-rc.d keeps package scripts
  # from starting services; an existing one is left as it is.
  local policy=/usr/sbin/policy-rc.d added_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    added_policy=1
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
  if [[ $added_policy -eq 1 ]]; then
    rm -f "$policy"
  fi
}

create_venv() {
  "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || fail "$PYTHON is older than Python 3.11; set PYTHON=/path/to/python3.11"
  if [[ ! -x $BIN/python ]]; then
    say "creating $VENV"
    "$PYTHON" -m venv "$VENV"
  fi
  # Reinstall only when the pins or the package metadata changed since the last install.
  local stamp="$VENV/.clusterbook-requirements.sha256" wanted
  wanted="$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)"
  if [[ -f $stamp && $(cat "$stamp") == "$wanted" ]]; then
    echo "python requirements: up to date"
  else
    say "installing python requirements"
    "$BIN/python" -m pip install --quiet -r requirements.txt
    echo "$wanted" >"$stamp"
  fi
  # A kernelspec whose argv names this venv's python, so papermill, nbmake and
  # Jupyter run chapters with the pinned packages whatever PATH says.
  "$BIN/python" -m ipykernel install --sys-prefix --name python3 \
    --display-name "Python 3 (clusterbook)" >/dev/null
}

cmd_install() {
  require_root install
  install_host_packages
  create_venv
}

lab_up() {
  say "starting the lab"
  "$BIN/clusterbook" lab up
}

cmd_book() {
  cmd_install
  lab_up
  local chapters="${BOOK_CHAPTERS:-001-010}"
  say "running chapters $chapters against the lab"
  "$BIN/clusterbook" run "$chapters"
  say "building the book"
  "$BIN/clusterbook" book build
  echo
  echo "The book is at $ROOT/_build/html/index.html"
  echo "The lab is still running; '$BIN/clusterbook lab down' removes it."
}

# Run pytest and fail when it collected no test (pytest exit status 5).
run_pytest() {
  local status=0
  "$BIN/pytest" "$@" || status=$?
  if [[ $status -eq 5 ]]; then
    fail "pytest $* collected no tests"
  fi
  return "$status"
}

lab_down_on_exit() {
  local status=$?
  if [[ ${CLUSTERBOOK_KEEP_LAB:-0} == 1 ]]; then
    echo "CLUSTERBOOK_KEEP_LAB=1: leaving the lab running"
  else
    say "removing the lab (the Debian base stays cached)"
    "$BIN/clusterbook" lab down --keep-base || status=1
  fi
  exit "$status"
}

cmd_test() {
  cmd_install
  trap lab_down_on_exit EXIT
  # Tests start from fresh nodes: remove what an earlier run left (nodes with
  # changed disks, or namespaces and mounts whose processes were ended).
  say "removing any earlier lab (the Debian base stays cached)"
  "$BIN/clusterbook" lab down --keep-base
  lab_up

  say "lint"
  "$BIN/ruff" check .
  "$BIN/ruff" format --check .

  say "notebooks are stored without outputs"
  local notebooks=(notebooks/*.ipynb)
  [[ -e ${notebooks[0]} ]] || fail "no notebooks in notebooks/"
  "$BIN/nbstripout" --verify "${notebooks[@]}" \
    || fail "notebooks with outputs or execution counts; run: $BIN/nbstripout notebooks/*.ipynb"

  say "unit and lab tests"
  run_pytest tests/

  say "notebook tests (nbmake, against the lab)"
  run_pytest --nbmake notebooks/
}

usage() {
  sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'
}

case "${1:-}" in
  install) cmd_install ;;
  book) cmd_book ;;
  test) cmd_test ;;
  -h | --help | help) usage ;;
  *)
    usage >&2
    exit 2
    ;;
esac
