"""Secret values stay masked in repr, results, tables, diffs, exceptions and logs."""

from __future__ import annotations

import logging

import pytest
from clusterbook.errors import ClusterbookError, OperationFailed, SecretError
from clusterbook.ops.base import make_diff
from clusterbook.results import HostResult, HostValues, Results
from clusterbook.secrets import MASK, Secret, mask

VALUE = "s3cr3t-unit-test-value"


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> Secret:
    monkeypatch.setenv("CLUSTERBOOK_TEST_SECRET", VALUE)
    return Secret.from_env("CLUSTERBOOK_TEST_SECRET")


def test_secret_repr_and_str(secret: Secret):
    assert repr(secret) == "Secret('********')"
    assert str(secret) == "Secret('********')"
    assert f"{secret}" == "Secret('********')"
    assert VALUE not in repr([secret, {"x": secret}])


def test_secret_reveal(secret: Secret):
    assert secret.reveal() == VALUE
    assert secret.source == "env:CLUSTERBOOK_TEST_SECRET"


def test_secret_not_picklable(secret: Secret):
    import pickle

    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(secret)


def test_from_env_missing_names_variable(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("CLUSTERBOOK_NOT_SET", raising=False)
    with pytest.raises(SecretError, match="CLUSTERBOOK_NOT_SET is not set"):
        Secret.from_env("CLUSTERBOOK_NOT_SET")


def test_from_file_and_resolve(tmp_path):
    path = tmp_path / "token"
    path.write_text("file-secret-value\n")
    assert Secret.from_file(path).reveal() == "file-secret-value"
    assert Secret.resolve(f"file:{path}").reveal() == "file-secret-value"
    with pytest.raises(SecretError, match="not found"):
        Secret.from_file(tmp_path / "missing")
    with pytest.raises(SecretError, match="expected env:NAME or file:/path"):
        Secret.resolve("plain-value-not-a-reference")


def test_resolve_error_hides_value():
    with pytest.raises(SecretError) as info:
        Secret.resolve("hunter2-looks-like-a-password")
    assert "hunter2" not in str(info.value)


def test_mask_text_and_bytes(secret: Secret):
    assert mask(f"token={VALUE}!") == f"token={MASK}!"
    assert mask(f"x {VALUE}".encode()) == f"x {MASK}".encode()


def test_result_fields_masked(secret: Secret):
    result = HostResult("h1", stdout=f"out {VALUE}\n", stderr=VALUE, message=VALUE)
    result.diff = f"+password {VALUE}\n"
    assert VALUE not in result.stdout
    assert VALUE not in result.stderr
    assert VALUE not in result.message
    assert VALUE not in result.diff
    results = Results([result], title=f"echo {VALUE}")
    assert VALUE not in str(results)
    assert VALUE not in results._repr_html_()
    assert VALUE not in repr(results)


def test_host_values_masked(secret: Secret):
    values = HostValues({"h1": (200, f"body {VALUE}")})
    assert VALUE not in str(values)
    assert VALUE not in values._repr_html_()


def test_exception_message_masked(secret: Secret):
    error = OperationFailed(f"command echo {VALUE} failed", host="h1", hint=f"hint {VALUE}")
    assert VALUE not in str(error)
    assert VALUE not in error.detail
    base = ClusterbookError(f"x {VALUE}")
    assert VALUE not in str(base)


def test_log_records_masked(secret: Secret, caplog: pytest.LogCaptureFixture):
    logger = logging.getLogger("clusterbook.test")
    with caplog.at_level(logging.DEBUG):
        logger.info("running echo %s", VALUE)
        logger.warning(f"inline {VALUE}")
        logging.getLogger("other.library").error("value=%s", VALUE)
    assert caplog.records
    assert VALUE not in caplog.text
    assert MASK in caplog.text


def test_diff_masked(secret: Secret):
    diff = make_diff("/etc/x", b"password old\n", f"password {VALUE}\n".encode())
    assert VALUE not in diff
    assert f"+password {MASK}" in diff


def test_short_values_not_registered():
    Secret("ab")
    assert mask("a b ab cab") == "a b ab cab"


def test_secret_file_inside_repository_rejected(tmp_path):
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    secret_file = tmp_path / "repo" / "vault" / "token"
    secret_file.parent.mkdir()
    secret_file.write_text("committed-by-mistake\n")
    with pytest.raises(SecretError, match="inside the git work tree"):
        Secret.from_file(secret_file)


def test_registered_values_lists_longest_first() -> None:
    from clusterbook import secrets

    secrets.clear_registry()
    secrets.register("short-canary")
    secrets.register("a-much-longer-canary")
    assert secrets.registered_values() == ["a-much-longer-canary", "short-canary"]
    secrets.clear_registry()
    assert secrets.registered_values() == []
