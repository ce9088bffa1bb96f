"""What a node remembers about key servers: the pinned signing key, the batches already
processed or rejected and the last upload's revision token, kept in its own sighting store."""

from __future__ import annotations

from bluezone.client.pinning import PinnedKey
from bluezone.proximity.store import SightingStore


class ServerState:
    """The key-server memory of one node's store, in the client's own types."""

    def __init__(self, store: SightingStore) -> None:
        self.store = store

    def revision_token(self, server: str, now: float | None = None) -> str | None:
        """The token of the last upload to ``server``; None (and deleted) once 14 days old at ``now``."""
        return self.store.revision_token(server, now)

    def save_revision_token(self, server: str, token: str, now: float) -> None:
        self.store.save_revision_token(server, token, now)

    def pinned(self, server: str) -> PinnedKey | None:
        row = self.store.keyserver_pin(server)
        return PinnedKey(*row) if row else None

    def pin(self, server: str, key: PinnedKey, now: float, *, replacing: PinnedKey | None = None) -> bool:
        """Pin ``key`` if the pin is still ``replacing`` (False: another check pinned meanwhile); a key given
        for ``server`` and not yet confirmed goes (this is it, or replaces it)."""
        return self.store.save_keyserver_pin(
            server, key.public_key, key.key_id, key.key_version, now,
            replacing=None if replacing is None else replacing.public_key,
        )

    def given_unconfirmed(self, server: str) -> PinnedKey | None:
        """The key an earlier check was given for ``server`` (``--server-key``) that no file has confirmed yet."""
        row = self.store.keyserver_given_key(server)
        return PinnedKey(*row) if row else None

    def remember_given(self, server: str, key: PinnedKey, now: float) -> None:
        """Keep ``key``, given and not confirmed, for the next check of ``server`` (and ``status``)."""
        self.store.save_keyserver_given_key(server, key.public_key, key.key_id, key.key_version, now)

    def forget_given(self, server: str) -> None:
        self.store.forget_keyserver_given_key(server)

    def processed(self, server: str) -> set[str]:
        return self.store.keyserver_batches(server)

    def mark_processed(self, server: str, batches: dict[str, int], now: float) -> None:
        self.store.save_keyserver_batches(server, batches, now)

    def rejected(self, server: str, key: PinnedKey, now: float) -> dict[str, str]:
        """Files of ``server`` an earlier check rejected (name -> why) when verifying with ``key``:
        after a deliberate re-pin they are fetched again."""
        return self.store.rejected_batches(server, key.public_key, now)

    def rejecting_keys(self, server: str, now: float) -> set[str]:
        """Public keys (base64) an earlier check was given for ``server`` and that verified none of its files."""
        return self.store.rejecting_keys(server, now)

    def mark_rejected(self, server: str, key: PinnedKey, rejected: dict[str, str], now: float) -> None:
        self.store.save_rejected_batches(server, key.public_key, rejected, now)
