"""Radio backends, picked by a short moniker (as bumble names its transports).

``emulated`` works everywhere; ``auto``, ``bluez[:hciN]`` and ``bumble:<transport>`` need
real Bluetooth.  Backend modules are imported only when asked for, so the emulated radio
works where dbus, BlueZ or bumble are absent.  To add a backend, add a branch here.
"""

from __future__ import annotations

from typing import Any

from bluezone.errors import ConfigError
from bluezone.proximity.radio import Radio

EMULATED = "emulated"


def open_radio(spec: str, **kwargs: Any) -> Radio:
    """The radio named by ``spec``; bad specs raise ConfigError.

    ``emulated``: keywords ``air`` (an :class:`~bluezone.proximity.backends.emulated.Air`;
    default: a new air of its own on ``clock``), ``clock``, ``label``, ``position``, ``seed``.
    Real backends take ``adapter``, ``clock``, ``scan_mode`` (see ``backends/real.py``).
    """
    kind = spec.split(":", 1)[0]
    if kind == EMULATED:
        return _open_emulated(spec, **kwargs)
    from bluezone.proximity.backends.real import is_real_spec, open_real_radio

    if is_real_spec(spec):
        return open_real_radio(spec, **kwargs)
    raise ConfigError(f"unknown radio backend {spec!r}: use emulated, auto, bluez[:hciN] or bumble:<transport>")


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
