"""The BlueZoo tests skip without their tools on a laptop, but fail under CI=true."""

from __future__ import annotations

import pytest

from . import conftest


def test_missing_tools_skip_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conftest, "_missing", lambda: "dbus-daemon not installed")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="dbus-daemon"):
        conftest.require_bluezoo()


def test_missing_tools_fail_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conftest, "_missing", lambda: "dbus-daemon not installed")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="cannot run"):
        conftest.require_bluezoo()


def test_tools_present_here_or_reason_given() -> None:
    reason = conftest._missing()
    assert reason is None or "install" in reason
