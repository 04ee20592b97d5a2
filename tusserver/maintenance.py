"""Maintenance that an operator runs by hand: rebuilding lost Redis state from the data store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .models import Part, UploadInfo, expiry
from .settings import Settings
from .state.base import StateStore
from .storage.base import DataStore


@dataclass(frozen=True)
class Rebuilt:
    """What `rebuild_index` did with one upload found in the data store."""

    info: UploadInfo
    action: str  # "restored", "kept" (the state store knew it) or "gone" (a tombstone)
    parts_found: int

    def describe(self) -> str:
        total = "?" if self.info.length is None else str(self.info.length)
        kind = f" {self.info.concat}" if self.info.concat else ""
        return (
            f"{self.action} {self.info.id}{kind}: {self.info.offset} of {total} bytes, "
            f"{len(self.info.parts)} part(s) used of {self.parts_found} found"
        )


def rebuild_index(
    settings: Settings,
    state: StateStore,
    store: DataStore,
    contiguous: Callable[[tuple[Part, ...]], tuple[Part, ...]],
    clock: Callable[[], float],
) -> Iterator[Rebuilt]:
    """Restore the state of every upload the store knows and the state store does not.

    The offset is the sum of the parts that run contiguously from byte 0: orphans of failed or
    uncommitted writes never count. An incomplete upload gets a fresh expiry, so its client has
    the usual time to resume. An upload with a tombstone (terminated or expired, its bytes not
    yet removed) is never brought back.
    """
    scan = getattr(store, "scan", None)
    if scan is None:
        raise ValueError(f"the {store.name} store keeps no index to rebuild from")
    now = clock()
    for info, found in scan():
        if state.reindex(info.id):  # state and indexes are separate writes: mend an entry
            yield Rebuilt(info, "kept", len(found))
            continue
        if state.is_gone(info.id):
            yield Rebuilt(info, "gone", len(found))
            continue
        restored = _restored_info(settings, info, contiguous(found), now)
        state.restore(restored)
        yield Rebuilt(restored, "restored", len(found))


def _restored_info(
    settings: Settings, info: UploadInfo, parts: tuple[Part, ...], now: float
) -> UploadInfo:
    if info.is_final:
        return info.evolve(parts=())
    offset = sum(part.size for part in parts)
    if info.length is not None and offset > info.length:
        offset = info.length
    complete = info.length is not None and offset >= info.length
    restored = info.evolve(
        offset=offset, parts=parts, completed=(info.completed or now) if complete else None
    )
    return restored.evolve(expires=expiry(restored, now, settings.expire_after))
