"""State behind signed links and upload grants: the only module that knows these Redis keys.

Keys (under the configurable prefix):
- `linksecret:<upload id>`: the upload's current link secret. Every link signature covers it, so
  replacing it revokes every link at once. It expires with the longest-lived link made from it,
  so an upload that is deleted leaves nothing behind for long.
- `grant:<grant id>:uploads`: a set of the upload ids created with a grant (capped at the grant's
  `uploads`), expiring with the grant. It is both the counter and the "only its own uploads" list.
"""

from __future__ import annotations

from collections.abc import Callable

import redis

from .redis import translate_errors

# Keep the secret if there is one; else set it. Then stretch its life to cover the new link
# (never shorten it: older links with a later expiry must keep working).
_LINK_SECRET = """
local current = redis.call('GET', KEYS[1])
if not current then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
  return ARGV[1]
end
if redis.call('TTL', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return current
"""

# Add the upload to the grant's set unless the set is full. Returns 1 if added.
_CLAIM_GRANT_UPLOAD = """
if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""


class LinkState:
    """Per-upload link secrets and per-grant upload lists."""

    def __init__(self, client: redis.Redis, prefix: str = "tusserver:"):
        self.client = client
        self.prefix = prefix
        self._link_secret = client.register_script(_LINK_SECRET)
        self._claim = client.register_script(_CLAIM_GRANT_UPLOAD)

    def _secret_key(self, upload_id: str) -> str:
        return f"{self.prefix}linksecret:{upload_id}"

    def _grant_key(self, grant_id: str) -> str:
        return f"{self.prefix}grant:{grant_id}:uploads"

    # -- links -----------------------------------------------------------------------------
    def link_secret_for(self, upload_id: str, lifetime: int, make: Callable[[], str]) -> str:
        """The upload's link secret (made with `make()` if none), kept for at least `lifetime` s."""
        with translate_errors():
            return str(
                self._link_secret(
                    keys=[self._secret_key(upload_id)], args=[make(), max(int(lifetime), 1)]
                )
            )

    def link_secret(self, upload_id: str) -> str | None:
        """The upload's current link secret; None when it has none (no live link)."""
        with translate_errors():
            value = self.client.get(self._secret_key(upload_id))
        return None if value is None else str(value)

    def revoke_links(self, upload_id: str) -> None:
        """Forget the secret: every link made so far stops verifying, new ones get a new one."""
        with translate_errors():
            self.client.delete(self._secret_key(upload_id))

    # -- grants ----------------------------------------------------------------------------
    def claim_grant_upload(self, grant_id: str, upload_id: str, limit: int, ttl: int) -> bool:
        """Count a new upload against a grant; False when the grant has made `limit` already."""
        with translate_errors():
            added = self._claim(
                keys=[self._grant_key(grant_id)], args=[upload_id, limit, max(int(ttl), 1)]
            )
        return bool(added)

    def release_grant_upload(self, grant_id: str, upload_id: str) -> None:
        """Give a slot back (the upload could not be created after all)."""
        with translate_errors():
            self.client.srem(self._grant_key(grant_id), upload_id)

    def is_grant_upload(self, grant_id: str, upload_id: str) -> bool:
        """Was this upload created with this grant?"""
        with translate_errors():
            return bool(self.client.sismember(self._grant_key(grant_id), upload_id))
