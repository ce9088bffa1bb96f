"""Radio backends, picked by a short moniker (as bumble names its transports).

``emulated`` works everywhere; ``auto``, ``bluez[:hciN]`` and ``bumble:<transport>`` need
real Bluetooth.  Backend modules are imported only when asked for, so the emulated radio
works where dbus, BlueZ or bumble are absent.  A new backend registers a factory for its
moniker with ``register_radio`` (as scorers do with ``register_scorer``) and must pass the radio
contract suite, ``tests/ble/test_radio_contract.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bluezone.errors import ConfigError
from bluezone.proximity.radio import Radio

EMULATED = "emulated"
#: ``factory(spec, **keywords)`` -> Radio; it gets the whole spec (``name:rest``) and the
#: keywords of ``open_radio``, and imports its backend's dependencies itself, lazily.
RadioFactory = Callable[..., Radio]


def _real(spec: str, **kwargs: Any) -> Radio:
    from bluezone.proximity.backends.real import open_real_radio

    return open_real_radio(spec, **kwargs)


_BUILT_IN = ("emulated", "auto", "bluez", "bumble")
_RADIOS: dict[str, RadioFactory] = {}


def register_radio(name: str, factory: RadioFactory) -> None:
    """Make a radio backend available by its moniker (``bluezone run --backend NAME[:ARG]``)."""
    if name in _BUILT_IN:
        raise ConfigError(f"{name!r} is a built-in radio backend")
    if not name or not name.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"a radio backend's name is letters, digits, - and _, got {name!r}")
    _RADIOS[name] = factory


def radio_names() -> list[str]:
    """Every backend moniker ``open_radio`` knows, built-in ones first."""
    return [*_BUILT_IN, *sorted(_RADIOS)]


def open_radio(spec: str, **kwargs: Any) -> Radio:
    """The radio named by ``spec``; bad specs raise ConfigError.

    ``emulated``: keywords ``air`` (an :class:`~bluezone.proximity.backends.emulated.Air`;
    default: a new air of its own on ``clock``), ``clock``, ``label``, ``position``, ``seed``.
    Real backends take ``adapter``, ``clock``, ``scan_mode`` (see ``backends/real.py``).
    """
    kind = spec.split(":", 1)[0]
    if kind == EMULATED:
        return _open_emulated(spec, **kwargs)
    if kind in _BUILT_IN:
        return _real(spec, **kwargs)
    if kind in _RADIOS:
        return _RADIOS[kind](spec, **kwargs)
    others = "".join(f", {name}" for name in sorted(_RADIOS))
    raise ConfigError(f"unknown radio backend {spec!r}: use emulated, auto, bluez[:hciN] or bumble:<transport>{others}")


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
