"""Radio backends, picked by a short moniker (as bumble names its transports): ``emulated``,
``auto``, ``bluez[:hciN]``, ``bumble:<transport>``, and any registered with ``register_radio``
(``registry.py``).  Each backend is a module here, imported only when asked for."""

from bluezone.proximity.backends.registry import EMULATED, RadioFactory, open_radio, radio_names, register_radio

__all__ = ["EMULATED", "RadioFactory", "open_radio", "radio_names", "register_radio"]
