"""Diffs of files rendered with a secret hide the old value too, not only the new one."""

from __future__ import annotations

from clusterbook.ops.base import make_diff
from clusterbook.ops.files import _SECRET_TOKEN, secret_line_redactor

SHAPE = f"global\n    daemon\nfrontend stats\n    stats auth admin:{_SECRET_TOKEN}\n"


def test_redactor_hides_secret_part_of_line():
    redact = secret_line_redactor(SHAPE)
    assert redact("    stats auth admin:old-value\n") == "    stats auth ********\n"
    assert redact("    daemon\n") == "    daemon\n"


def test_no_secret_no_redactor():
    assert secret_line_redactor("global\n    daemon\n") is None


def test_old_secret_not_in_diff():
    redact = secret_line_redactor(SHAPE)
    old = b"global\n    stats auth admin:old-value-1234\n"
    new = b"global\n    maxconn 10\n    stats auth admin:new-value-5678\n"
    diff = make_diff("/etc/haproxy/haproxy.cfg", old, new, redact)
    assert "old-value-1234" not in diff
    assert "new-value-5678" not in diff
    assert "+    maxconn 10" in diff


def test_secret_only_change_is_named():
    redact = secret_line_redactor(SHAPE)
    old = b"    stats auth admin:old-value\n"
    new = b"    stats auth admin:new-value\n"
    diff = make_diff("/etc/haproxy/haproxy.cfg", old, new, redact)
    assert "old-value" not in diff
    assert "new-value" not in diff
    assert "only lines holding a secret changed" in diff
