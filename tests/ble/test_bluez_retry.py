"""InProgress / NotReady from BlueZ are retried with backoff; other errors are not."""

from __future__ import annotations

import pytest

from bluezone.clock import VirtualClock
from bluezone.errors import BluezCallError
from bluezone.proximity.backends.bluez import BluezRadio


class Flaky:
    def __init__(self, errors: list[str]) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> None:
        self.calls += 1
        if self.errors:
            raise BluezCallError(self.errors.pop(0), "try later")


@pytest.mark.parametrize("name", ["org.bluez.Error.InProgress", "org.bluez.Error.NotReady", "org.bluez.Error.Busy"])
def test_transient_errors_are_retried(name: str) -> None:
    clock = VirtualClock(0)
    radio = BluezRadio("hci0", clock=clock)
    step = Flaky([name, name])
    clock.run(radio._retrying(step))
    assert step.calls == 3 and radio.counts["retries"] == 2
    assert clock.now() == pytest.approx(0.25 + 0.5)  # the backoff, in virtual time


def test_persistent_transient_error_gives_up() -> None:
    clock = VirtualClock(0)
    radio = BluezRadio("hci0", clock=clock)
    step = Flaky(["org.bluez.Error.InProgress"] * 10)
    with pytest.raises(BluezCallError):
        clock.run(radio._retrying(step, attempts=4))
    assert step.calls == 4


def test_other_errors_are_not_retried() -> None:
    clock = VirtualClock(0)
    radio = BluezRadio("hci0", clock=clock)
    step = Flaky(["org.bluez.Error.InvalidArguments"])
    with pytest.raises(BluezCallError):
        clock.run(radio._retrying(step))
    assert step.calls == 1 and radio.counts["retries"] == 0
