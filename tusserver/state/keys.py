"""The Redis key layout, built in one place (docs/architecture.md, "Redis schema").

Every key of one upload carries the upload id as a hash tag (`{<id>}`), so all of them live in
one Redis Cluster slot and each per-upload script touches one slot. Indexes that span uploads
(listings, expiry) are separate keys.
"""

from __future__ import annotations

from dataclasses import dataclass


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

    @property
    def expiry(self) -> str:
        return f"{self.prefix}expiry"

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
