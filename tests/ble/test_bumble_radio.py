"""The bumble radio on two in-process controllers sharing a LocalLink, in virtual time."""

from __future__ import annotations

import asyncio

import pytest
from bumble import hci
from bumble.controller import Controller
from bumble.core import AdvertisingData
from bumble.device import AdvertisingType, Device
from bumble.link import LocalLink
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from bluezone.cli import cli
from bluezone.clock import Clock, SystemClock, VirtualClock
from bluezone.proximity.backends.bumble_radio import BumbleRadio, gaen_advertising_data
from bluezone.proximity.radio import Advert

T0 = 1_700_000_000.0


def node(link: LocalLink, name: str, public: str, clock: Clock, legacy: bool = False) -> BumbleRadio:
    controller = Controller(name, link=link, public_address=public)
    if legacy:  # a Bluetooth 4.x controller: one random address shared with scanning
        controller.le_features &= ~hci.LeFeatureMask.LE_EXTENDED_ADVERTISING
    device = Device.with_hci(name, hci.Address(public), controller, controller)
    return BumbleRadio.on_device(device, clock=clock, name=f"bumble:{name}")


def other_device(link: LocalLink) -> Device:
    """A plain bumble device on the link (not bluezone): sends whatever a test hands it."""
    controller = Controller("J", link=link, public_address="F0:00:00:00:00:0C")
    return Device.with_hci("J", hci.Address("F0:00:00:00:00:0C"), controller, controller)


def test_advertising_data_is_the_gaen_layout() -> None:
    data = gaen_advertising_data(bytes(range(20)))
    assert data == bytes.fromhex("02011a" "03036ffd" "17166ffd") + bytes(range(20))
    assert len(data) <= 31


def test_legacy_controller_gets_the_new_address_with_scanning_paused() -> None:
    """Bluetooth 4.x controllers share one random address between scanning and advertising
    and refuse to change it while either runs.  bumble's emulated controller sends only
    connectable legacy PDUs over its link, so this checks the controller's state instead of
    reception: new address set, non-connectable advertising on, scanning resumed."""
    clock = VirtualClock(T0)

    async def main() -> None:
        link = LocalLink()
        a = node(link, "A", "F0:00:00:00:00:0A", clock, legacy=True)
        async with a:
            assert a.device is not None and not a.device.supports_le_extended_advertising
            controller = a.device.host.hci_sink
            assert isinstance(controller, Controller)
            await a.start_scanning(lambda ad: None)
            seen = set()
            for i in range(3):
                await a.advertise(bytes([i]) * 20, -10)
                assert a.address is not None
                assert controller.random_address == hci.Address(a.address)
                advertiser = controller.le_legacy_advertiser
                assert advertiser.enabled and advertiser.advertising_type == 3  # ADV_NONCONN_IND
                assert advertiser.advertising_data.endswith(bytes([i]) * 20)
                assert a.device.is_scanning
                seen.add(a.address)
            assert len(seen) == 3

    clock.run(main())


def test_tx_power_is_a_signed_byte_and_a_malformed_one_is_no_value() -> None:
    """bumble decodes the TX Power Level unsigned (-8 dBm as 248), and a field of the wrong length
    made its parser raise inside our callback (a traceback per packet, the rest of the event lost)."""
    import struct

    clock = VirtualClock(T0)
    uuid = struct.pack("<H", 0xFD6F)

    def with_tx(tx: bytes) -> bytes:
        return bytes(AdvertisingData([
            (AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS, uuid),
            (AdvertisingData.SERVICE_DATA_16_BIT_UUID, uuid + b"R" * 20),
            (AdvertisingData.TX_POWER_LEVEL, tx),
        ]))

    async def main() -> None:
        link = LocalLink()
        b = node(link, "B", "F0:00:00:00:00:0B", clock)
        other = other_device(link)
        got: list[Advert] = []
        async with b:
            await other.power_on()
            await b.start_scanning(got.append)
            for tx, expected in ((b"\xf8", -8), (b"\x07", 7), (b"\xf8\x00", None), (b"", None)):
                await other.stop_advertising()
                await other.start_advertising(AdvertisingType.UNDIRECTED, advertising_data=with_tx(tx))
                await asyncio.sleep(0.5)  # packets of the previous data still on their way
                got.clear()
                await asyncio.sleep(1.0)
                assert got and {ad.tx_power for ad in got} == {expected}, tx

    clock.run(main())


def test_the_per_address_records_bumble_keeps_are_cleared_at_each_rotation() -> None:
    clock = VirtualClock(T0)

    async def main() -> None:
        link = LocalLink()
        a, b = node(link, "A", "F0:00:00:00:00:0A", clock), node(link, "B", "F0:00:00:00:00:0B", clock)
        async with a, b:
            await b.start_scanning(lambda ad: None)
            for i in range(3):
                await a.advertise(bytes([i]) * 20, -10)  # a new address each time
                await asyncio.sleep(1.0)
            assert b.device is not None and len(b.device.advertisement_accumulators) >= 3  # A's three addresses
            await b.advertise(b"\x00" * 20, -10)
            assert len(b.device.advertisement_accumulators) <= 1  # at most A's current one, heard since

    clock.run(main())


def test_bumble_transport_spec_opens_a_controller_over_tcp() -> None:
    """``bumble:tcp-client:HOST:PORT`` through bumble's own transport opener, as a user's
    ``bumble:usb:0`` would be: a controller served on loopback, a peer on its link."""
    import socket

    from bumble.transport.tcp_server import open_tcp_server_transport_with_socket

    clock = SystemClock()  # real sockets: bumble's command timeouts must run in real time

    async def main() -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        served = await open_tcp_server_transport_with_socket(sock)
        link = LocalLink()
        Controller("served", host_source=served.source, host_sink=served.sink, link=link,
                   public_address="F0:00:00:00:00:0D")
        peer = node(link, "P", "F0:00:00:00:00:0E", clock)
        radio = BumbleRadio(f"tcp-client:127.0.0.1:{port}", clock=clock)
        assert radio.name == f"bumble:tcp-client:127.0.0.1:{port}"
        got: list[Advert] = []
        heard_by_peer: list[Advert] = []
        try:
            async with radio, peer:
                await radio.start_scanning(got.append)
                await peer.start_scanning(heard_by_peer.append)
                await peer.advertise(b"\x11" * 20, -10)
                await radio.advertise(b"\x22" * 20, -10)
                async with asyncio.timeout(10):
                    while not (got and heard_by_peer):
                        await asyncio.sleep(0.05)
            assert {ad.service_data for ad in got} == {b"\x11" * 20}
            assert {ad.service_data for ad in heard_by_peer} == {b"\x22" * 20}
            assert radio.device is None  # closed and released
        finally:
            await served.close()
            sock.close()  # bumble's close leaves the listening socket it was given open

    asyncio.run(main())


def test_missing_bumble_transport_is_unavailable() -> None:
    from bluezone.errors import RadioUnavailableError

    async def main() -> None:
        with pytest.raises(RadioUnavailableError) as exc:
            await BumbleRadio("tcp-client:127.0.0.1:1").open()
        assert exc.value.reason == "no-adapter" and "tcp-client" in str(exc.value)

    asyncio.run(main())


@pytest.mark.parametrize(("spec", "why"), [
    ("foo:0", "unknown transport scheme"),
    ("usbb", "unknown transport scheme"),
    ("tcp-client:127.0.0.1:", "invalid literal for int()"),  # attack27: these three were exit 1, a missing radio
    ("tcp-client:127.0.0.1:99999", "port must be 0-65535"),
    ("tcp-client:a..b:9", "idna"),
    ("usb:", "nothing after usb: names what to open"),  # attack28: 'cannot open bumble transport usb:: ;', exit 1
    ("serial:", "nothing after serial: names what to open"),  # bumble called it an unknown scheme
])
def test_a_mistyped_transport_is_a_usage_error(spec: str, why: str, tmp_path) -> None:
    """`--backend bumble:usbb` said 'cannot open bumble transport ...', exit 1, as if a dongle were missing:
    a typo in the command is a usage error (ConfigError, exit 2) naming bumble's transports, and leaves no store."""
    from bluezone.errors import ConfigError

    async def main() -> None:
        with pytest.raises(ConfigError) as exc:
            await BumbleRadio(spec).open()
        assert f"bumble transport {spec!r}: " in str(exc.value) and why in str(exc.value) and "usb:0" in str(exc.value)

    asyncio.run(main())
    result = CliRunner().invoke(cli, ["run", "--backend", f"bumble:{spec}", "--db", str(tmp_path / "n.db"), "--duration", "1"], obj={})
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert not (tmp_path / "n.db").exists()


@pytest.mark.parametrize("spec", ["usb:", "serial:"])
def test_a_transport_missing_its_argument_is_refused_as_the_radio_is_made(spec: str) -> None:
    """Before the store opens or a run's --duration counts: 'run --duration 0.5 --backend bumble:usb:' ended at
    its duration with 'stopped: 0 sightings stored', exit 0, while bumble still loaded (the typo unsaid)."""
    from bluezone.errors import ConfigError

    with pytest.raises(ConfigError, match="names what to open"):
        BumbleRadio(spec)
    BumbleRadio("hci-socket:")  # (an argument bumble makes optional)


def test_pyusb_without_libusb_is_a_missing_radio_not_a_typo(monkeypatch: pytest.MonkeyPatch) -> None:
    """attack28: `--backend bumble:pyusb:0` where pyusb finds no libusb said 'bumble transport 'pyusb:0': No backend
    available (bumble's transports: ...)', exit 2, as a typo: pyusb's NoBackendError is a ValueError."""
    usb_core = pytest.importorskip("usb.core")
    import bumble.transport

    from bluezone.errors import RadioUnavailableError

    async def no_backend(spec: str) -> object:
        raise usb_core.NoBackendError("No backend available")

    monkeypatch.setattr(bumble.transport, "open_transport", no_backend)

    async def main() -> None:
        with pytest.raises(RadioUnavailableError, match="No backend available.*libusb") as exc:
            await BumbleRadio("pyusb:0").open()
        assert "bumble's transports" not in str(exc.value)

    asyncio.run(main())


def test_a_transport_failing_without_words_is_named_by_its_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """An exception with no message (bumble's bare ``assert``) made 'cannot open bumble transport usb:0: ;'."""
    import bumble.transport

    from bluezone.errors import RadioUnavailableError

    async def silent(spec: str) -> object:
        raise AssertionError

    monkeypatch.setattr(bumble.transport, "open_transport", silent)

    async def main() -> None:
        with pytest.raises(RadioUnavailableError, match=r"^cannot open bumble transport usb:0: bumble gave no reason "
                                                        r"\(AssertionError\)"):
            await BumbleRadio("usb:0").open()

    asyncio.run(main())


def test_a_controller_that_stops_answering_is_a_radio_error() -> None:
    """Unplugged dongle: the command times out and the run ends with one clear RadioError."""
    from bluezone.errors import RadioError

    clock = VirtualClock(T0)

    async def main() -> None:
        link = LocalLink()
        a = node(link, "A", "F0:00:00:00:00:0A", clock)
        async with a:
            assert a.device is not None
            a.device.host.hci_sink = _Dead()  # commands go nowhere from now on
            a.device.command_timeout = 1.0
            with pytest.raises(RadioError, match="advertising failed"):
                await a.advertise(bytes(20), -10)

    clock.run(main())


class _Dead:
    def on_packet(self, packet: bytes) -> None:
        pass


@given(st.binary(min_size=20, max_size=20))
def test_advertising_data_round_trips_through_bumbles_parser(payload: bytes) -> None:
    parsed = AdvertisingData.from_bytes(gaen_advertising_data(payload))
    (raw,) = parsed.get_all(AdvertisingData.SERVICE_DATA_16_BIT_UUID, raw=True)
    assert raw == b"\x6f\xfd" + payload
    assert parsed.get(AdvertisingData.FLAGS) == 0x1A


def test_a_controller_that_never_answers_its_power_on_is_no_usable_radio() -> None:
    """attack27: a transport with nothing answering behind it (a silent TCP peer, /dev/zero) held `bluezone run`
    in bumble's power-on for ever: now a RadioUnavailableError after ``power_on_seconds``, the transport closed."""
    import socket

    from bluezone.errors import RadioUnavailableError

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        radio = BumbleRadio(f"tcp-client:127.0.0.1:{port}", power_on_seconds=0.2)

        async def main() -> None:
            async with asyncio.timeout(30):
                await radio.open()

        with pytest.raises(RadioUnavailableError, match="did not answer its power-on within 0.2 s"):
            asyncio.run(main())
    assert radio.device is None and radio._transport is None


@pytest.mark.parametrize("path", ["/dev/null", "/dev/zero", "regular"])
def test_a_file_nothing_can_answer_through_is_refused_at_once(path: str, tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    """`--backend bumble:file:/dev/null` logged asyncio's traceback (its reader could not be waited on: 'Exception
    in callback _UnixReadPipeTransport._add_reader ... PermissionError') and then waited 10 s for a power-on nothing
    could answer: now a usage error at once, one line, no store.  (A regular file was refused by asyncio itself, in
    its words: 'Pipe transport is for pipes/sockets only.')"""
    from bluezone.errors import ConfigError

    if path == "regular":
        path = str(tmp_path / "hci.bin")
        (tmp_path / "hci.bin").write_bytes(b"")
    said = f"bumble transport 'file:{path}': {path} cannot be waited on for a controller's answer (Operation not permitted)"
    radio = BumbleRadio(f"file:{path}", power_on_seconds=60)

    async def main() -> None:
        async with asyncio.timeout(30):  # (without the check: the 60 s power-on)
            await radio.open()

    with pytest.raises(ConfigError) as exc:
        asyncio.run(main())
    assert str(exc.value).startswith(said) and str(exc.value).endswith("serial:/dev/ttyUSB0, ...)")
    assert radio.device is None and radio._transport is None
    assert not [r for r in caplog.records if r.exc_info or "Exception in callback" in r.getMessage()]
    result = CliRunner().invoke(cli, ["run", "--backend", f"bumble:file:{path}", "--db", str(tmp_path / "n.db")], obj={})
    assert result.exit_code == 2 and result.output.splitlines() == [f"Error: {exc.value}"], result.output
    assert not (tmp_path / "n.db").exists()


def test_a_pty_with_a_controller_behind_it_opens_as_a_file(tmp_path) -> None:
    """What ``file:`` is for: a controller at the other end of a pty (bumble's own pty transport serves one here)."""
    from bumble.transport.pty import open_pty_transport

    async def main() -> None:
        served = await open_pty_transport(str(tmp_path / "hci"))  # (a link to the pty's other end)
        Controller("served", host_source=served.source, host_sink=served.sink, link=LocalLink(),
                   public_address="F0:00:00:00:00:0D")
        radio = BumbleRadio(f"file:{tmp_path / 'hci'}", clock=SystemClock())
        try:
            async with asyncio.timeout(20), radio:
                assert radio.device is not None and radio.device.powered_on
        finally:
            await served.close()

    asyncio.run(main())
