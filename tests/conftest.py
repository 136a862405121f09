"""Fixtures shared by the test folders that need the embedded lab."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from clusterbook.inventory import Inventory

LAB_INVENTORY = Path(__file__).resolve().parents[1] / "inventory" / "lab.yml"


def _answers(address: str) -> bool:
    try:
        with socket.create_connection((address, 22), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def lab_inventory() -> Inventory:
    """Return the lab inventory, or skip when a lab node does not accept connections on port 22."""
    inventory = Inventory.load(LAB_INVENTORY)
    down = [h.name for h in inventory.hosts.values() if not _answers(h.address)]
    if down:
        pytest.skip(
            f"lab nodes do not answer on port 22 ({', '.join(down)}); run: clusterbook lab up"
        )
    return inventory
