"""The Redis key layout, built in one place (docs/architecture.md, "Redis schema").

Every key of one upload carries the upload id as a hash tag (`{<id>}`), so all of them live in
one Redis Cluster slot and each per-upload script touches one slot. Indexes that span uploads
(listings, expiry) are separate keys, updated by separate commands; the expiry index is split
into `EXPIRY_SHARDS` keys with tags of their own, so that on a cluster it spreads over the nodes
instead of making one slot hot with every PATCH.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

EXPIRY_SHARDS = 16


@dataclass(frozen=True)
class Keys:
    """Key names under one prefix (several servers can share a Redis with different prefixes)."""

    prefix: str = "tusserver:"

    def upload(self, upload_id: str) -> str:
        return f"{self.prefix}upload:{{{upload_id}}}"

    def parts(self, upload_id: str) -> str:
        return f"{self.prefix}upload:{{{upload_id}}}:parts"

    def refs(self, upload_id: str) -> str:
        """The final uploads that use a partial upload."""
        return f"{self.prefix}upload:{{{upload_id}}}:refs"

    def gone(self, upload_id: str) -> str:
        """The tombstone of a terminated or expired upload."""
        return f"{self.prefix}upload:{{{upload_id}}}:gone"

    def lock(self, upload_id: str) -> str:
        return f"{self.prefix}lock:{{{upload_id}}}"

    def release(self, upload_id: str) -> str:
        """A newcomer's request that the lock holder let go."""
        return f"{self.prefix}lock:{{{upload_id}}}:release"

    def owner(self, owner: str) -> str:
        """The base of one owner's catalog keys (`...:uploads`, `...:tag:<tag>`, ...): one slot."""
        return f"{self.prefix}owner:{{o:{owner}}}"

    @property
    def all_uploads(self) -> str:
        """The base of the fleet-wide catalog keys admins search: one (hot) Cluster slot."""
        return f"{self.prefix}{{all}}"

    def expiry(self, upload_id: str) -> str:
        """The upload's shard of the expiry index: crc32 of the id, the same on every server."""
        return self.expiry_shard(zlib.crc32(upload_id.encode()) % EXPIRY_SHARDS)

    def expiry_shard(self, number: int) -> str:
        return f"{self.prefix}expiry:{{x{number}}}"

    @property
    def expiry_shards(self) -> list[str]:
        """Every shard of the expiry index (the reaper reads them all)."""
        return [self.expiry_shard(number) for number in range(EXPIRY_SHARDS)]

    @property
    def legacy_expiry(self) -> str:
        """The unsharded expiry index of earlier versions (the reaper drains it)."""
        return f"{self.prefix}expiry"

    @property
    def legacy_uploads(self) -> str:
        """The listing index of versions before the catalog; while it exists, the catalog has
        not been built from those versions' uploads (see `RedisState.upgrade_indexes`)."""
        return f"{self.prefix}uploads"

    @property
    def catalog_layout(self) -> str:
        """Which layout of the catalog's indexes the stored ones follow (`Catalog.LAYOUT`); an
        older or missing mark on a store with uploads makes `upgrade_indexes` rebuild them."""
        return f"{self.prefix}{{all}}:layout"

    @property
    def reaper(self) -> str:
        """The lease that lets one reaper at a time run across all servers."""
        return f"{self.prefix}reaper"

    def owner_events(self, owner: str) -> str:
        """The bounded stream of one owner's file events (live updates, `events/`); tagged by
        owner so it shares a Cluster slot with the owner's other indexes."""
        return f"{self.prefix}owner:{{o:{owner}}}:events"

    @property
    def all_events(self) -> str:
        """The bounded stream of every owner's file events, what admins follow (one hot slot)."""
        return f"{self.prefix}{{all}}:events"

    @property
    def events_channel(self) -> str:
        """The pub/sub channel that tells every server of a fleet about each new event."""
        return f"{self.prefix}events"
