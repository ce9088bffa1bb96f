"""A radio whose open never ends, for the tests of a stop or a duration while a radio opens (``bluezone run``'s and
the venue beacon's): bumble's power-on on a transport no controller answers, a bluetoothd that does not reply."""

from __future__ import annotations

import asyncio


class SilentRadio:
    """Wraps ``radio``: its ``open`` never ends (``opening`` is set once it began); each close is counted."""

    def __init__(self, radio: object) -> None:
        self._radio = radio
        self.opening = asyncio.Event()
        self.closed = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self._radio, name)

    async def open(self) -> None:
        self.opening.set()
        await asyncio.Event().wait()

    async def close(self) -> None:
        self.closed += 1

    async def __aenter__(self) -> SilentRadio:  # (as Radio's)
        await self.open()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()
