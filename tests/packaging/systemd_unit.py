"""Reading a systemd unit file as systemd does, for the tests of packaging/'s units."""

from __future__ import annotations


def unit_settings(text: str) -> dict[str, list[str]]:
    """Key -> values (systemd allows a key more than once), continuation lines joined, comments out."""
    settings: dict[str, list[str]] = {}
    for line in text.replace("\\\n", " ").splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        settings.setdefault(key.strip(), []).append(value.strip())
    return settings
