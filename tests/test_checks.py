"""Up-front checks of chapter parameters: each bad value names the parameter and the fix."""

from __future__ import annotations

import pytest
from clusterbook import checks
from clusterbook.errors import ParameterError


def test_secret_reference_unset_variable():
    with pytest.raises(ParameterError) as caught:
        checks.secret_reference("stats_password", "env:NOPE_UNSET", environ={})
    assert caught.value.name == "stats_password"
    assert "stats_password" in str(caught.value)
    assert "NOPE_UNSET is not set" in str(caught.value)


def test_secret_reference_empty_variable():
    environ = {"CLUSTERBOOK_SECRET_STATS_PASSWORD": ""}
    with pytest.raises(ParameterError) as caught:
        checks.secret_reference(
            "stats_password", "env:CLUSTERBOOK_SECRET_STATS_PASSWORD", environ=environ
        )
    assert "CLUSTERBOOK_SECRET_STATS_PASSWORD is empty" in str(caught.value)


@pytest.mark.parametrize("value", ["", "env:", "file:", "hunter2-plain", None])
def test_secret_reference_invalid_shape(value):
    with pytest.raises(ParameterError) as caught:
        checks.secret_reference("stats_password", value, environ={})
    message = str(caught.value)
    assert "stats_password is not a secret reference" in message
    # A plain value passed by mistake may be the password itself.
    assert "hunter2" not in message


def test_secret_reference_set_variable_and_file():
    environ = {"PW": "s3cret-value"}
    assert checks.secret_reference("pw", "env:PW", environ=environ) == "env:PW"
    # A file reference is only checked for its shape; Secret.from_file reads it.
    assert checks.secret_reference("pw", "file:/run/pw", environ={}) == "file:/run/pw"


@pytest.mark.parametrize("user", ["ad min", "a:b", "", "#x", 'q"', 5])
def test_string_rejects_unsafe_user_names(user):
    with pytest.raises(ParameterError) as caught:
        checks.string("stats_user", user, what="letters, digits and . _ @ -")
    assert "stats_user" in str(caught.value)


def test_string_accepts_plain_user_name():
    assert checks.string("stats_user", "ops.admin@lab") == "ops.admin@lab"


@pytest.mark.parametrize("value", [0, 65536, "8404", True, 1.5])
def test_port_rejects(value):
    with pytest.raises(ParameterError, match="api_port"):
        checks.port("api_port", value)


def test_port_accepts():
    assert checks.port("api_port", 6443) == 6443


def test_integer_range_message():
    with pytest.raises(ParameterError) as caught:
        checks.integer("over_voltage", 9, minimum=-16, maximum=8)
    assert "over_voltage is 9, outside the allowed range -16..8" in str(caught.value)


def test_choice():
    assert checks.choice("expect_backends", None, [None, "UP", "DOWN"]) is None
    with pytest.raises(ParameterError, match="expect_backends is 'up'"):
        checks.choice("expect_backends", "up", [None, "UP", "DOWN"])


@pytest.mark.parametrize("value", [0, -1, "60", None, True])
def test_positive_number_rejects(value):
    with pytest.raises(ParameterError, match="wait_seconds"):
        checks.positive_number("wait_seconds", value)


def test_package_names():
    assert checks.package_names("pkgs", ["curl", "libc6-dev", "g++"]) == [
        "curl",
        "libc6-dev",
        "g++",
    ]
    with pytest.raises(ParameterError, match="must be a list"):
        checks.package_names("pkgs", "curl nano")
    with pytest.raises(ParameterError, match="invalid items"):
        checks.package_names("pkgs", ["curl", "Nano", "rm -rf"])
    with pytest.raises(ParameterError, match="empty list"):
        checks.package_names("pkgs", [])


def test_user_names():
    assert checks.user_names("users", ["admin", "root"]) == ["admin", "root"]
    with pytest.raises(ParameterError):
        checks.user_names("users", ["admin root"])


def test_networks():
    assert checks.networks("ignore", ["10.0.2.0/24", "10.0.2.5", "::1"]) == [
        "10.0.2.0/24",
        "10.0.2.5",
        "::1",
    ]
    with pytest.raises(ParameterError, match="'10.0.2.0/33'"):
        checks.networks("ignore", ["10.0.2.0/33"])


def test_network_rejects_host_bits():
    with pytest.raises(ParameterError, match="pod_cidr"):
        checks.network("pod_cidr", "192.168.0.1/16")
    assert str(checks.network("pod_cidr", "192.168.0.0/16")) == "192.168.0.0/16"


def test_timezone():
    assert checks.timezone("timezone", "America/New_York") == "America/New_York"
    with pytest.raises(ParameterError, match="timezone"):
        checks.timezone("timezone", "../etc/passwd")
