"""The radio backend registry: backends picked by a short moniker (as bumble names its transports).

``emulated`` works everywhere; ``auto``, ``bluez[:hciN]`` and ``bumble:<transport>`` need
real Bluetooth.  A backend is a factory registered under the moniker's first word with
:func:`register_radio` (as scorers are with ``register_scorer``); the built-in ones below
register themselves the same way.  Backend modules are imported only when asked for, so the
emulated radio works where dbus, BlueZ or bumble are absent.  What a backend owes is one test
suite every backend passes: ``tests/ble/test_radio_contract.py`` (docs/proximity.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bluezone.errors import ConfigError
from bluezone.proximity.backends.real import REAL_PREFIXES
from bluezone.proximity.radio import Radio

EMULATED = "emulated"

#: ``factory(spec, **options) -> Radio``: the whole spec (``bumble:usb:0``) and the options the
#: caller has (``clock``, ``adapter``, ``scan_mode``; the emulated radio also ``air``, ``label``,
#: ``position``, ``seed``).  It imports its backend's dependencies itself, lazily; bad specs or
#: options raise ConfigError; no I/O until ``open()``.
RadioFactory = Callable[..., Radio]
_RADIOS: dict[str, RadioFactory] = {}
#: filled once the built-in backends below have registered: their names cannot be taken over
_BUILT_IN: tuple[str, ...] = ()


def register_radio(name: str, factory: RadioFactory) -> None:
    """Make a radio backend available by its moniker (``bluezone run --backend NAME[:ARG]``)."""
    if name in _BUILT_IN:
        raise ConfigError(f"{name!r} is a built-in radio backend")
    if not name or not name.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"a radio backend's name is letters, digits, - and _, got {name!r}")
    _RADIOS[name] = factory


def radio_names() -> list[str]:
    """Every backend moniker ``open_radio`` knows, built-in ones first."""
    return [*_BUILT_IN, *sorted(set(_RADIOS) - set(_BUILT_IN))]


def open_radio(spec: str, **kwargs: Any) -> Radio:
    """The radio named by ``spec``; bad specs raise ConfigError.

    ``emulated``: keywords ``air`` (an :class:`~bluezone.proximity.backends.emulated.Air`;
    default: a new air of its own on ``clock``), ``clock``, ``label``, ``position``, ``seed``.
    Real backends take ``adapter``, ``clock``, ``scan_mode`` (see ``backends/real.py``).
    """
    try:
        factory = _RADIOS[spec.split(":", 1)[0]]
    except KeyError:
        raise unknown_radio(spec) from None
    return factory(spec, **kwargs)


def unknown_radio(spec: str, built_in: str = "emulated, auto, bluez[:hciN] or bumble:<transport>") -> ConfigError:
    """The error for a moniker no backend is registered under: the built-in choices the caller can
    use (a venue beacon cannot send through bumble), then the registered ones."""
    others = "".join(f", {name}" for name in radio_names() if name not in _BUILT_IN)
    return ConfigError(f"unknown radio backend {spec!r}: use {built_in}{others}")


def _open_emulated(
    spec: str,
    *,
    air: Any = None,
    clock: Any = None,
    label: str = "self",
    position: Any = (0.0, 0.0),
    seed: int = 0,
    **unused: Any,
) -> Radio:
    from bluezone.proximity.backends.emulated import Air

    rest = spec.partition(":")[2]
    if rest and not rest.isdigit():
        raise ConfigError(f"emulated takes an optional number of neighbours (emulated:3), got {spec!r}")
    unknown = {k for k, v in unused.items() if v is not None} - {"adapter", "scan_mode"}
    if unknown:
        raise ConfigError(f"the emulated radio takes no {', '.join(sorted(unknown))}")
    if air is None:
        if clock is None:
            from bluezone.clock import SystemClock

            clock = SystemClock()
        air = Air(clock, seed)
    return air.radio(label, position)


def _open_real(spec: str, **kwargs: Any) -> Radio:
    from bluezone.proximity.backends.real import open_real_radio

    return open_real_radio(spec, **kwargs)


register_radio(EMULATED, _open_emulated)
for _name in REAL_PREFIXES:
    register_radio(_name, _open_real)
_BUILT_IN = (EMULATED, *REAL_PREFIXES)
