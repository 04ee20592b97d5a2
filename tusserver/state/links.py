"""State behind signed download links: the only module that knows these Redis keys.

Keys (under the configurable prefix):
- `linksecret:<upload id>`: the upload's current link secret. Every link signature covers it, so
  replacing it revokes every link at once. It expires with the longest-lived link made from it,
  so an upload that is deleted leaves nothing behind for long.

(Upload grants need no state of their own here: the grant's use counter lives with the accounts
in `state/accounts.py`, and each upload records the grant that made it.)
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


class LinkState:
    """Per-upload link secrets."""

    def __init__(self, client: redis.Redis, prefix: str = "tusserver:"):
        self.client = client
        self.prefix = prefix
        self._link_secret = client.register_script(_LINK_SECRET)

    def _secret_key(self, upload_id: str) -> str:
        return f"{self.prefix}linksecret:{upload_id}"

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
