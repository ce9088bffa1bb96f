"""The radio seam: one small interface that every backend (emulated, BlueZ, bumble) implements.

A backend broadcasts one GAEN payload at a time (replaced at each RPI rotation) and reports
every advertisement it hears as an :class:`Advert`, raw and unvalidated: the daemon decides
what is a valid sighting, so malformed adverts from nearby devices are counted in one place.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol

from bluezone.crypto.payload import SERVICE_UUID
from bluezone.errors import RadioError


@dataclass(frozen=True, slots=True)
class Advert:
    """One received advertisement, as the backend heard it.

    ``service_data`` is whatever came under ``service_uuid``: 0xFD6F service data, or for a
    Bluezone v3 advert (``service_uuid`` 0x4E56) the manufacturer data of company 0x22B5 (a
    backend may pass others so they are counted as drops); ``rssi`` in dBm;
    ``time`` in Unix seconds from the daemon's clock; ``tx_power`` is the TX Power Level AD
    field if the advert had one; ``address`` the sender's Bluetooth address if known.
    """

    time: float
    service_data: bytes
    rssi: int
    service_uuid: str = SERVICE_UUID
    tx_power: int | None = None
    address: str | None = None


AdvertCallback = Callable[[Advert], None]


class AdvertListener(Protocol):
    """Something else that listens on the daemon's radio: adverts under ``service_uuid`` go to
    it instead of the sighting store (a venue-beacon listener, ``bluezone.venues.nearby``), and
    ``tick`` is called every few seconds of the daemon's clock so it can notice silence."""

    service_uuid: str

    def on_advert(self, advert: Advert) -> None: ...

    def tick(self, now: float) -> None: ...


class Radio(ABC):
    """Advertise one payload at a time and report what is heard.

    Used as an async context manager: ``async with radio: await radio.start_scanning(cb)``.
    ``on_advert`` is called on the event loop thread and must not block.
    """

    #: short moniker, e.g. ``emulated``, ``bluez:hci0``, ``bumble:usb:0``
    name: str = "radio"
    #: whether the backend changes the Bluetooth address with each new payload
    rotates_address: bool = False

    @property
    def adapter_address(self) -> str | None:
        """This adapter's own Bluetooth address, once open (BlueZ's Adapter1.Address, the controller's public one):
        what names the adapter a calibration was made on, which ``hci0`` or ``auto`` do not (a dongle swapped, the
        config copied to another node); None where unknown."""
        return None

    async def __aenter__(self) -> Radio:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> None:
        """Acquire the hardware (or join the emulated air). Raises RadioUnavailableError."""

    @abstractmethod
    async def advertise(self, service_data: bytes, tx_power: int) -> None:
        """Start broadcasting ``service_data`` under 0xFD6F, replacing any previous payload.

        Called again at every RPI rotation; backends that can, change the address too.
        """

    async def advertise_as(self, service_uuid: str, service_data: bytes, tx_power: int) -> None:
        """Broadcast ``service_data`` under another 16-bit service UUID instead of 0xFD6F (a venue
        beacon sends 0x4256 frames this way); backends that cannot raise RadioError."""
        raise RadioError(f"{self.name} cannot send service data under {service_uuid}")

    async def advertise_bluezone3(self, bzid: bytes, tx_power: int) -> None:
        """Also broadcast a Bluezone v3 ID (0x4E56, manufacturer data of 0x22B5), replacing the last.

        A second advert beside the GAEN one, opt-in (``bluezone run --also-bluezone-v3``);
        backends that cannot send two adverts raise RadioError.
        """
        raise RadioError(f"{self.name} cannot send Bluezone v3 adverts (only the emulated radio can, so far)")

    @abstractmethod
    async def start_scanning(self, on_advert: AdvertCallback) -> None:
        """Begin reporting received adverts to ``on_advert`` until ``close()``."""

    async def close(self) -> None:
        """Stop advertising and scanning and release the radio."""

    def health(self) -> dict[str, int | str | bool]:
        """Counters and state a backend wants in ``bluezone status`` (restarts, errors...)."""
        return {}
