"""Identity: who is asking (a `Principal`), resolved once per request before the service runs."""

from .principal import ANONYMOUS, OPEN_ADMIN, Grant, Principal

__all__ = ["ANONYMOUS", "OPEN_ADMIN", "Grant", "Principal"]
