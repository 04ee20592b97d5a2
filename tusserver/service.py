"""The upload rules, one method per operation, with no Flask and no backend types in sight.

`UploadService` decides: whether an offset is right, whether a body fits, when an upload expires,
who may write (the lock), when the offset moves (only after the data store made the bytes
durable, and only while the writer still holds the lock: see `write.py`), and which hooks fire.
Views translate HTTP into calls here; the state store, data store and locker are passed in as
protocols (docs/architecture.md, "Layers").
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import secrets
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Literal

from .auth.events import log_security_event
from .auth.principal import Principal
from .auth.scopes import Operation, permits, require_scope
from .body import BodyReader
from .errors import (
    BackendUnavailable,
    Forbidden,
    InconsistentLength,
    InvalidConcat,
    InvalidHeader,
    LengthRequired,
    OffsetMismatch,
    ReprDigestMismatch,
    TooLarge,
    TusError,
    UploadCompleted,
    UploadGone,
    UploadIncomplete,
    UploadLocked,
    UploadNotFound,
)
from .events import FileEvents, NoEvents
from .hooks import Hooks, NoHooks
from .locks.base import Locker
from .locks.keeper import LockKeeper
from .models import UploadInfo, WriteResult, expiry, new_upload_id
from .protocol import Checksum, is_upload_id
from .protocol_ietf import (
    DIGEST_ALGORITHMS,
    Limits,
    decode_digest_values,
    encode_digest_values,
)
from .settings import Settings
from .state.base import LockScope, Page, StateStore
from .state.catalog import CatalogQuery
from .storage.base import DataStore
from .tags import TAGS_KEY, checked_metadata, tags_of, valid_tags, with_tags
from .write import WriteAttempt

if TYPE_CHECKING:
    from .auth.accounts import Accounts

log = logging.getLogger(__name__)

FILENAME_MAX = 255
RECEIVE_HOOK_MEMORY = 10_000
_BAD_NAME_CATEGORIES = ("Cc", "Zl", "Zp")
"""Unicode categories a file name may not contain: C0/C1 controls and line/paragraph breaks."""


@dataclass(frozen=True)
class NewUpload:
    """What a client asks for when it creates an upload (the owner is the principal's)."""

    length: int | None = None
    defer_length: bool = False
    metadata: dict[str, str] | None = None
    concat: str | None = None
    members: tuple[str, ...] = ()
    body_length: int | None = None
    """The declared size (Content-Length) of a creation-with-upload body, if known."""
    metadata_binary: dict[str, str] | None = None
    digests: dict[str, str] | None = None
    """RFC 9530 name -> base64 digest of the whole upload, or "" to have it computed."""


Checksums = Checksum | Sequence[Checksum] | None
"""One checksum or several (Upload-Checksum and Content-Digest), all verified on one pass."""


ORPHAN_GRACE = 3600.0
"""Seconds stored bytes without state are left alone before the sweep removes them: a creation
stores its first object a moment before it records the state."""


@dataclass(frozen=True)
class CompleteFile:
    """What `create_complete` learns after the content: the upload's metadata (validated)."""

    metadata: dict[str, str]


@dataclass(frozen=True)
class Download:
    """A complete upload ready to be served: its size, validators and a way to read it.

    `open_file` and `read` do the first backend access before returning, so a view calls them
    before it sends any header: a backend that fails answers 503, an upload terminated meanwhile
    404 or 410, never a broken 200.
    """

    info: UploadInfo
    size: int
    etag: str
    last_modified: float
    path: Path | None
    reader: Callable[[int, int], Iterator[bytes]]
    opener: Callable[[], BinaryIO]
    recheck: Callable[[], object]

    def open_file(self) -> BinaryIO:
        """The local file (for sendfile)."""
        try:
            return self.opener()
        except BackendUnavailable:
            self.recheck()  # raises 404/410 when the upload was removed meanwhile
            raise

    def read(self, start: int, end: int) -> Iterator[bytes]:
        """Bytes `[start, end)`, streamed; the first chunk is already fetched."""
        chunks = self.reader(start, end)
        try:
            first = next(chunks, None)
        except BackendUnavailable:
            self.recheck()
            raise
        return _primed(first, chunks)


class UploadService:
    """Creates, appends to, reads and removes uploads."""

    def __init__(
        self,
        settings: Settings,
        state: StateStore,
        store: DataStore,
        locks: Locker,
        keeper: LockKeeper,
        hooks: Hooks | None = None,
        clock: Callable[[], float] = time.time,
        accounts: Accounts | None = None,
        events: FileEvents | NoEvents | None = None,
    ):
        self.settings = settings
        # Live updates: one call per operation, queued and sent off the request path.
        self.events: FileEvents | NoEvents = events or NoEvents()
        self.accounts = accounts
        self.state = state
        self.store = store
        self.locks = locks
        self.keeper = keeper
        self.hooks: Hooks = hooks or NoHooks()
        self.clock = clock
        # When each upload last fired post-receive (throttling); bounded, oldest first out, so
        # uploads abandoned mid-way cannot grow it for the life of the process.
        self._last_receive_hook: OrderedDict[str, float] = OrderedDict()

    # -- reading state ---------------------------------------------------------------------
    def info(self, upload_id: str, principal: Principal, action: Action = "head") -> UploadInfo:
        """The upload's state as `principal` may see it; 404 for unknown ids and for uploads it
        may not touch (exactly alike), 410 for expired or terminated uploads; 403 (for its own
        upload) to a token whose scopes allow neither uploading nor reading."""
        info = self._load(upload_id, principal=principal, action=action)
        if action == "head":
            require_scope(principal, "head")
        return info

    def _require(
        self,
        principal: Principal,
        operation: Operation,
        upload_id: str | None = None,
        action: Action = "head",
    ) -> None:
        """403 unless the principal's scopes allow `operation` (auth/scopes.py).

        With an upload id, ownership is checked first: an upload the caller may not touch is a
        404 whatever its scopes, so a 403 never tells a stranger that an id exists. Allowed
        requests (the common case) cost no extra round trip.
        """
        if permits(principal, operation):
            return
        if upload_id is not None:
            self._load(upload_id, principal=principal, action=action)
        require_scope(principal, operation)

    def _load(
        self,
        upload_id: str,
        with_parts: bool = False,
        principal: Principal | None = None,
        action: Action = "head",
    ) -> UploadInfo:
        """The upload's state; ownership is checked (before anything else is revealed) when a
        principal is given. Internal re-reads after the check pass none."""
        if not is_upload_id(upload_id):
            raise UploadNotFound()
        info = self.state.get(upload_id, with_parts=with_parts)
        return self._live(upload_id, info, principal, action)

    def _live(
        self,
        upload_id: str,
        info: UploadInfo | None,
        principal: Principal | None = None,
        action: Action = "head",
    ) -> UploadInfo:
        """`info` if it exists, `principal` may touch it and it has not expired; else 404/410."""
        if info is None:
            if self.state.is_gone(upload_id):
                raise UploadGone()
            raise UploadNotFound()
        if principal is not None:
            check_access(info, principal, action)
        if info.is_expired(self.clock()):
            raise UploadGone("upload expired")
        if info.is_final and not info.is_complete:
            info = self._settle_final(info)
        return info

    def limits(self, info: UploadInfo | None = None) -> Limits:
        """The limits an upload (or, without one, a new upload) is held to, for Upload-Limit.

        No minimum is enforced (min-size 0); one request may carry the whole upload, so the
        largest append is the largest upload; max-age is what is left of an incomplete upload's
        life (a complete upload does not expire).
        """
        max_size = self.settings.max_size or None
        if info is None:
            max_age: int | None = self.settings.expire_after
        elif info.expires is None or info.is_complete:
            max_age = None
        else:
            max_age = max(0, int(info.expires - self.clock()))
        return Limits(max_size=max_size, min_size=0, max_append_size=max_size, max_age=max_age)

    def list(
        self,
        principal: Principal,
        limit: int,
        offset: int = 0,
        owner: str | None = None,
        query: CatalogQuery | None = None,
    ) -> Page:
        """A page of the caller's uploads (an admin's: everyone's, or `owner`'s) matching
        `query` (newest first without one); expired ones (410 already) are left out."""
        if not principal.is_admin:
            if principal.name is None or principal.grant is not None:
                return Page([], 0)
            owner = principal.name
        self._require(principal, "list")
        page = self.state.list(limit, offset, owner, query)
        now = self.clock()
        return Page([info for info in page.uploads if not info.is_expired(now)], page.total)

    # -- creation --------------------------------------------------------------------------
    def create(self, request: NewUpload, principal: Principal) -> UploadInfo:
        """Create an upload (or a final upload from partial ones) owned by the principal."""
        if principal.name is None or principal.link_upload is not None:
            raise UploadNotFound()
        self._require(principal, "create")
        request = replace(request, metadata=checked_metadata(request.metadata or {}))
        request = self._within_grant(request, principal)
        if request.concat == "final":
            return self._create_final(request, principal)
        if request.length is None and not request.defer_length:
            raise LengthRequired()
        if request.length is not None:
            self._check_size(request.length, principal)
        self._check_body_fits(request)
        now = self.clock()
        info = UploadInfo(
            id=new_upload_id(),
            length=request.length,
            metadata=dict(request.metadata or {}),
            created=now,
            updated=now,
            owner=principal.name,
            concat=request.concat,
            grant=principal.grant.id if principal.grant else None,
            metadata_binary=dict(request.metadata_binary or {}),
            digests=dict(request.digests or {}),
        )
        info = self._pre_create(info)
        if info.length == 0:
            info = info.evolve(digests=self._verify_representation(info, WriteResult(0)))
            info = info.evolve(completed=now)
        info = info.evolve(expires=expiry(info, now, self.settings.expire_after))
        self._reserve(info, info.length, principal)
        try:
            self.store.create(info)
            self._record(info)
        except TusError:
            self._release(info, info.length)
            raise
        self.hooks.after("post-create", info)
        if info.is_complete and not info.is_partial:
            self.hooks.after("post-finish", info)
        self.events.publish("created", info)
        return info

    def create_complete(
        self,
        principal: Principal,
        chunks: Iterable[bytes],
        describe: Callable[[], CompleteFile],
        limit: int,
    ) -> UploadInfo:
        """Create a complete upload in one step from `chunks` (`POST /api/files`).

        Stored exactly like a tus upload that finished: the bytes go through the data store's
        write under a fresh id (S3 part objects named by offset and attempt, or the local file,
        made durable), then the whole state is recorded in one step, complete, so no client
        ever sees it half-made. `describe()` is called once the content has been read (the
        file's name may follow its content in the body). Anything that fails on the way, a bad
        body, a size above `limit`, a quota, a hook, removes the stored bytes: nothing is left
        behind. Ownership, grants, quotas and hooks are those of a tus creation.
        """
        if principal.name is None or principal.link_upload is not None:
            raise UploadNotFound()
        self._require(principal, "create")
        request = self._within_grant(NewUpload(), principal)
        for bound in (self.settings.max_size, principal.grant.max_size if principal.grant else 0):
            if bound:
                limit = min(limit, bound)
        now = self.clock()
        info = UploadInfo(
            id=new_upload_id(),
            length=None,
            created=now,
            updated=now,
            owner=principal.name,
            grant=principal.grant.id if principal.grant else None,
        )
        reserved: int | None = None
        try:
            self.store.create(info)
            result = self.store.write(info, _at_most(chunks, limit), secrets.token_hex(8))
            if result.failure is not None:
                raise result.failure
            described = describe()
            metadata = checked_metadata({**described.metadata, **(request.metadata or {})})
            done = self.clock()
            info = info.evolve(
                length=result.bytes_written,
                offset=result.bytes_written,
                metadata=metadata,
                parts=result.parts,
                updated=done,
                completed=done,
            )
            info = self._pre_create(info)
            self._reserve(info, info.length, principal)
            reserved = info.length
            self.store.save_info(info)
            # Recorded as any creation is (confirmed by replicas when WAIT is on), complete and
            # with its parts index: no client ever sees it half-made.
            self.state.create(info)
        except BaseException:
            if reserved is not None:
                self._release(info, reserved)
            self._delete_bytes(info)
            raise
        self.hooks.after("post-create", info)
        self.hooks.after("post-finish", info)
        self.events.publish("created", info)
        self.events.publish("finished", info)
        return info

    def _create_final(self, request: NewUpload, principal: Principal) -> UploadInfo:
        """A final upload; its partial uploads may still be running (concatenation-unfinished).

        Concatenation is virtual, so a final upload made before its partials finish is simply
        recorded incomplete; it completes (and fires post-finish) when the last one does.
        """
        if request.length is not None or request.defer_length:
            raise InvalidHeader("a final upload must not have Upload-Length: it is the sum")
        if not request.members:
            raise InvalidConcat("a final upload needs at least one partial upload")
        if request.digests:
            raise InvalidHeader("Repr-Digest is not supported on a final upload")
        members = [self._partial_member(member_id, principal) for member_id in request.members]
        lengths = [member.length for member in members]
        length = None if None in lengths else sum(m.length or 0 for m in members)
        if length is not None:
            self._check_size(length, principal)  # a grant's max_size binds the sum too
        finished = all(member.is_complete for member in members)
        now = self.clock()
        info = UploadInfo(
            id=new_upload_id(),
            length=length if finished else None,
            offset=length if finished and length is not None else 0,
            metadata=dict(request.metadata or {}),
            created=now,
            updated=now,
            completed=now if finished else None,
            owner=principal.name,
            concat="final",
            members=tuple(member.id for member in members),
            grant=principal.grant.id if principal.grant else None,
            metadata_binary=dict(request.metadata_binary or {}),
        )
        info = self._pre_create(info)
        self.store.save_info(info)
        # The members were checked above for a clear message; the state store checks them
        # again in the same step that references them, so none can be removed in between.
        self._record(info, lambda: self.state.create_final(info, now))
        self.hooks.after("post-create", info)
        self.events.publish("created", info)
        if finished:
            self.hooks.after("post-finish", info)
        else:
            info = self._settle_final(info)  # a partial may have finished meanwhile
        return info

    def final_length(self, info: UploadInfo) -> int | None:
        """The length an unfinished final upload will have, if every partial's is known yet."""
        if info.length is not None:
            return info.length
        total = 0
        for member_id in info.members:
            member = self.state.get(member_id)
            if member is None or member.length is None:
                return None
            total += member.length
        return total

    def _settle_final(self, info: UploadInfo) -> UploadInfo:
        """Complete an unfinished final upload if all its partial uploads are complete now."""
        members = [self.state.get(member_id) for member_id in info.members]
        if not all(member is not None and member.is_complete for member in members):
            return info
        length = sum((member.length or 0) for member in members if member is not None)
        completed = self.state.complete_final(info, length, self.clock())
        if completed is None:  # someone else completed it (or it is gone): read it back
            return self.state.get(info.id) or info
        self.store.save_info(completed)
        self.hooks.after("post-finish", completed)
        self.events.publish("finished", completed)
        return completed

    def _record(self, info: UploadInfo, record: Callable[[], None] | None = None) -> None:
        """Record a new upload in the state store; if that fails, free what the store holds."""
        try:
            (record or (lambda: self.state.create(info)))()
        except TusError:
            with contextlib.suppress(TusError):
                self.store.delete(info)
            raise

    def _partial_member(self, member_id: str, principal: Principal) -> UploadInfo:
        try:
            # Only the principal's own partial uploads: another user's is "does not exist".
            member = self._load(member_id, principal=principal, action="write")
        except (UploadNotFound, UploadGone) as exc:
            raise InvalidConcat(f"partial upload {member_id} does not exist") from exc
        if not member.is_partial:
            raise InvalidConcat(f"upload {member_id} is not a partial upload")
        return member

    def _pre_create(self, info: UploadInfo) -> UploadInfo:
        metadata = self.hooks.before("pre-create", info)
        return info if metadata is None else info.evolve(metadata=dict(metadata))

    def _check_body_fits(self, request: NewUpload) -> None:
        """A creation body declared longer than the upload can hold is refused up front.

        Nothing is created then: a 413 that leaves an upload behind (with a Location the client
        never asked to keep) is a refusal that changed something. A chunked body declares no
        size; one that overflows is found while reading (after creation) and stores nothing.
        """
        if request.body_length is None:
            return
        room = request.length if request.length is not None else self.settings.max_size or None
        if room is not None and request.body_length > room:
            raise TooLarge(
                f"the body ({request.body_length} bytes) is longer than the upload ({room} bytes)"
            )

    def _check_size(self, length: int, principal: Principal | None = None) -> None:
        if self.settings.max_size and length > self.settings.max_size:
            raise TooLarge(f"upload length {length} exceeds the maximum {self.settings.max_size}")
        grant = principal.grant if principal is not None else None
        if grant is not None and length > grant.max_size:
            raise TooLarge(f"upload length {length} exceeds the grant's maximum {grant.max_size}")

    # -- grants and quotas -----------------------------------------------------------------
    def _within_grant(self, request: NewUpload, principal: Principal) -> NewUpload:
        """A grant holder's request with the grant's metadata fixed, counted against its uses."""
        grant = principal.grant
        if grant is None:
            return request
        if grant.expires <= self.clock():
            raise UploadNotFound()
        metadata = {**(request.metadata or {}), **grant.metadata}
        if request.length is not None:
            self._check_size(request.length, principal)
        if self.accounts is not None and not self.accounts.use_grant(
            grant.id, grant.uploads, grant.expires
        ):
            raise Forbidden(f"this grant has already made its {grant.uploads} upload(s)")
        return replace(request, metadata=metadata)

    def _reserve(self, info: UploadInfo, length: int | None, principal: Principal) -> None:
        """Count an upload's length against its owner's quota (413 if it does not fit).

        A final upload holds no bytes of its own (its partial uploads do, and are counted), so
        it is never charged; an admin's own uploads are counted but never refused.
        """
        if self.accounts is None or info.owner is None or length is None or info.is_final:
            return
        exempt = principal.is_admin and principal.grant is None
        self.accounts.reserve(info.owner, length, exempt=exempt)

    def _release(self, info: UploadInfo, length: int | None) -> None:
        if self.accounts is None or info.owner is None or length is None or info.is_final:
            return
        with contextlib.suppress(TusError):
            self.accounts.release(info.owner, length)

    # -- appending -------------------------------------------------------------------------
    def append(
        self,
        upload_id: str,
        principal: Principal,
        offset: int,
        body: BodyReader,
        checksum: Checksums = None,
        length: int | None = None,
        complete: bool = False,
    ) -> UploadInfo:
        """Write the body at `offset` and advance the offset by what durably arrived.

        `complete` says this body ends the upload (the IETF draft's `Upload-Complete: ?1`):
        the length becomes known, at the latest when the whole body has arrived.

        The hot path is two state round trips: taking the lock reads the state with it, and
        the commit releases the lock with it. Ownership is checked on what the lock read; when
        the upload is locked, it is checked before the holder is asked to let go (only the
        owner or an admin may ask).
        """
        if not is_upload_id(upload_id):
            raise UploadNotFound()
        self._require(principal, "append", upload_id, "write")

        def may_ask_release() -> None:
            self._load(upload_id, principal=principal, action="write")

        with self.locks.hold(
            upload_id,
            read=True,
            with_parts=self.store.keeps_parts,
            before_asking=may_ask_release,
            scope=lock_scope(principal),
        ) as lock:
            info = self._live(upload_id, lock.info, principal, "write")
            if info.is_final:
                raise Forbidden("a final upload cannot be modified")
            if offset != info.offset:
                raise OffsetMismatch(
                    f"Upload-Offset {offset} does not match the upload's offset {info.offset}",
                    headers={"Upload-Offset": str(info.offset)},
                )
            # A length declared now is only recorded together with the write's commit, so a
            # PATCH that fails for any reason leaves the upload as it was.
            declares_length = length is not None and info.length is None
            if length is not None:
                info = self._with_length(info, length, principal)
            body.limit = self._room(info, principal)
            if body.expected is not None and body.limit is not None and body.expected > body.limit:
                raise TooLarge(
                    f"the body ({body.expected} bytes) goes past the upload's length "
                    f"({info.length}) at offset {info.offset}"
                )
            attempt = WriteAttempt(
                self.state,
                self.store,
                lock,
                info,
                self.clock,
                self.settings.expire_after,
                declares_length,
                completes=complete,
                verify=self._verify_representation if info.digests else None,
                on_length_known=lambda known: self._reserve(known, known.length, principal),
            )
            if declares_length:
                # A declared length is counted against the quota before any byte is written,
                # and given back if the write does not commit it.
                self._reserve(info, info.length, principal)
            try:
                # The keeper refreshes the lock and may interrupt the body while it streams; it
                # lets go of the body before the commit releases the lock.
                with self.keeper.watch(lock, body):
                    attempt.write(body, _as_checksums(checksum))
                committed, done = attempt.finish()
            except BaseException:
                if attempt.declares_length and self._load_length(info.id) is None:
                    self._release(attempt.info, attempt.info.length)
                raise
        if committed is not attempt.info or attempt.declares_length:
            self._after_write(committed, done)
        return committed

    def append_completing(
        self,
        upload_id: str,
        principal: Principal,
        offset: int,
        body: BodyReader,
        checksum: Checksums = None,
        *,
        complete: bool,
        length: int | None = None,
    ) -> UploadInfo:
        """An append that says whether it ends the upload (the IETF draft's Upload-Complete).

        A complete upload takes no more appends. With `complete` and a Content-Length, the
        length is known before a byte is read and must agree with every other indication.
        """
        info = self._load(upload_id, principal=principal, action="write")
        self._require(principal, "append")
        if info.is_complete:
            if body.expected == 0:
                raise UploadCompleted(f"upload {upload_id} is already complete")
            raise InconsistentLength(
                f"upload {upload_id} is complete at {info.length} bytes: nothing can be appended"
            )
        if complete and body.expected is not None:
            ends_at = offset + body.expected
            if length is not None and length != ends_at:
                raise InconsistentLength(
                    f"Upload-Length {length} does not match offset plus content ({ends_at})"
                )
            length = ends_at
        return self.append(upload_id, principal, offset, body, checksum, length, complete)

    def _load_length(self, upload_id: str) -> int | None:
        """The length the state store holds now (None: deferred still, or the upload is gone)."""
        with contextlib.suppress(TusError):
            current = self.state.get(upload_id)
            return current.length if current is not None else None
        return None

    def _room(self, info: UploadInfo, principal: Principal | None = None) -> int | None:
        """How many more bytes the upload can take (None: no limit)."""
        if info.length is not None:
            return info.length - info.offset
        limits = [self.settings.max_size] if self.settings.max_size else []
        if principal is not None and principal.grant is not None:
            limits.append(principal.grant.max_size)
        return min(limits) - info.offset if limits else None

    def _verify_representation(self, info: UploadInfo, result: WriteResult) -> dict[str, str]:
        """Digest a write that completes an upload with Repr-Digest or Want-Repr-Digest.

        The stored bytes are read back, this write's included (durable but not yet committed),
        so the digest covers exactly what downloads will serve. A mismatch aborts the write
        attempt: the upload stays incomplete and never completes with bytes the client did not
        mean.
        Returns the digests to record ({} when nothing was asked).
        """
        end = info.offset + result.bytes_written
        if not info.digests or info.length is None or end < info.length:
            return {}
        pending = info.evolve(offset=end, parts=info.parts + result.parts)
        hashers = {name: hashlib.new(DIGEST_ALGORITHMS[name]) for name in info.digests}
        for chunk in self.store.read(pending, 0, end) if end else ():
            for hasher in hashers.values():
                hasher.update(chunk)
        computed = {name: hasher.digest() for name, hasher in hashers.items()}
        expected = decode_digest_values(info.digests)
        for name, digest in expected.items():
            if not hmac.compare_digest(computed[name], digest):
                raise ReprDigestMismatch(
                    f"the {end} bytes uploaded do not match the {name} Repr-Digest announced "
                    "at creation; the upload stays incomplete"
                )
        return encode_digest_values(computed)

    def _after_write(self, info: UploadInfo, done: bool) -> None:
        if done:
            self._last_receive_hook.pop(info.id, None)
            if not info.is_partial:
                self.hooks.after("post-finish", info)
                self.events.publish("finished", info)
                return
            for final_id in self.state.referencing_finals(info.id):
                final = self.state.get(final_id)
                if final is not None and not final.is_complete:
                    self._settle_final(final)
            return
        self.events.progress(info)  # throttled by the publisher
        now = self.clock()
        last = self._last_receive_hook.get(info.id, 0.0)
        if now - last >= self.settings.hooks_receive_interval:
            self._last_receive_hook[info.id] = now
            self._last_receive_hook.move_to_end(info.id)
            while len(self._last_receive_hook) > RECEIVE_HOOK_MEMORY:
                self._last_receive_hook.popitem(last=False)
            self.hooks.after("post-receive", info)

    def _with_length(
        self, info: UploadInfo, length: int, principal: Principal | None = None
    ) -> UploadInfo:
        """`info` with the Upload-Length a PATCH declares, checked but not yet recorded."""
        if info.length is not None:
            if info.length == length:
                return info
            raise InconsistentLength(
                f"Upload-Length {length} differs from the upload's length {info.length}"
            )
        if length < info.offset:
            raise InvalidHeader(f"Upload-Length {length} is below the offset {info.offset}")
        self._check_size(length, principal)
        return info.evolve(length=length)

    # -- termination and expiry ------------------------------------------------------------
    def terminate(self, upload_id: str, principal: Principal) -> None:
        """Remove an upload and its bytes (waiting for a running write to let go first)."""
        info = self._load(upload_id, principal=principal, action="delete")
        self._require(principal, "delete")
        if info.is_partial and self.state.referencing_finals(upload_id):
            raise Forbidden("this partial upload is part of a final upload; terminate that one")
        self.hooks.before("pre-terminate", info)
        with self.locks.hold(upload_id, read=True, with_parts=self.store.keeps_parts) as lock:
            info = self._live(upload_id, lock.info)
            self._remove(info)
        if principal.is_admin and info.owner != principal.name and principal.via != "open":
            log_security_event("upload-deleted-by-admin", upload=info.id, owner=info.owner)
        self.hooks.after("post-terminate", info)

    def remove_owned_by(self, owner: str, principal: Principal) -> int:
        """Terminate every listed upload of `owner` (an admin removing a user); how many."""
        removed = 0
        while True:
            page = self.state.list(100, 0, owner)
            if not page.uploads:
                return removed
            for info in page.uploads:
                with contextlib.suppress(UploadNotFound, UploadGone, Forbidden):
                    self.terminate(info.id, principal)
                    removed += 1
            if removed == 0:  # nothing could go (e.g. locked): do not spin
                return removed

    def _remove(
        self,
        info: UploadInfo,
        holding: frozenset[str] = frozenset(),
        reason: Literal["terminated", "expired"] = "terminated",
    ) -> None:
        """Forget state first (clients then see 410), then free the bytes; unused partials go.

        The state store refuses, atomically, to remove a partial upload a final references.
        Bytes whose removal fails stay behind without state: the orphan sweep removes them.
        """
        unused = self.state.delete(info, self.settings.gone_ttl)
        self.events.publish("deleted", info, reason=reason)
        self._release(info, info.length)
        self._last_receive_hook.pop(info.id, None)
        self._delete_bytes(info)
        for member_id in unused:
            if member_id not in holding:  # one whose lock the caller holds, it removes itself
                self._remove_unused_partial(member_id)

    def _delete_bytes(self, info: UploadInfo) -> None:
        try:
            self.store.delete(info)
        except TusError:
            log.warning("bytes of removed upload %s left for the orphan sweep", info.id)

    def _remove_unused_partial(self, member_id: str) -> None:
        # Never asks a running write to let go: an unfinished partial being written keeps its
        # own expiry and goes when that passes.
        try:
            lock = self.locks.acquire(
                member_id, wait=1, ask_release=False, read=True, with_parts=self.store.keeps_parts
            )
        except (UploadNotFound, UploadGone, UploadLocked):
            return
        try:
            if lock.info is not None:
                self._remove(lock.info)
        except Forbidden:
            return  # a new final uses it now
        finally:
            lock.release()

    def cleanup(self) -> list[str]:
        """Remove every expired upload (and unused complete partials past their expiry)."""
        removed: list[str] = []
        seen: set[str] = set()
        now = self.clock()
        while True:
            # Ask for more than were skipped so far: uploads left in place (being written) must
            # not hide the ones behind them.
            batch = self.state.expired(now, limit=len(seen) + 100)
            ids = [i for i in batch if i not in seen]
            if not ids:
                return removed
            for upload_id in ids:
                seen.add(upload_id)
                with contextlib.suppress(TusError):
                    if self._expire(upload_id, now):
                        removed.append(upload_id)

    def _expire(self, upload_id: str, now: float) -> bool:
        """Remove one upload if it is still expired and not being written; True if removed."""
        lock = self.locks.acquire(
            upload_id, wait=0, ask_release=False, read=True, with_parts=self.store.keeps_parts
        )
        try:
            info = lock.info
            if info is None or not info.is_expired(now):
                return False
            if info.is_partial and self.state.referencing_finals(upload_id):
                return self._expire_unfinished_finals(info)
            self._remove(info, reason="expired")
            log.info("expired upload %s (%s of %s bytes)", info.id, info.offset, info.length)
            return True
        finally:
            lock.release()

    def _expire_unfinished_finals(self, partial: UploadInfo) -> bool:
        """An expired partial upload takes its unfinished final uploads with it.

        Those can never complete now; a complete final keeps its partial (it is part of a file).
        """
        if partial.is_complete:
            return False  # its final upload may still complete: the other parts decide
        final_ids = self.state.referencing_finals(partial.id)
        finals = [self.state.get(final_id) for final_id in final_ids]
        if any(final is not None and final.is_complete for final in finals):
            return False
        for final in finals:
            if final is not None:
                self._remove(final, holding=frozenset({partial.id}), reason="expired")
        with contextlib.suppress(Forbidden):  # unless another final took it meanwhile
            self._remove(partial, reason="expired")
        log.info("expired partial upload %s and %d unfinished final(s)", partial.id, len(finals))
        return True

    def sweep_orphans(self, grace: float = ORPHAN_GRACE) -> list[str]:
        """Remove stored bytes that no live upload owns, once older than `grace` seconds.

        They are what a termination whose byte removal failed, or a crash between storing and
        recording, leaves behind.
        """
        removed: list[str] = []
        cutoff = self.clock() - grace
        candidates = [uid for uid, newest in self.store.stored_uploads() if newest < cutoff]
        for start in range(0, len(candidates), 500):
            batch = candidates[start : start + 500]
            known = self.state.known_ids(batch)
            for upload_id in batch:
                if upload_id not in known:
                    self._delete_bytes(UploadInfo(id=upload_id, length=None))
                    removed.append(upload_id)
        if removed:
            log.info("orphan sweep removed the bytes of %d upload(s)", len(removed))
        return removed

    # -- JSON API helpers ------------------------------------------------------------------
    def rename(self, upload_id: str, principal: Principal, filename: str) -> UploadInfo:
        """Change the file name a download will carry (under the lock: info.json stays whole)."""
        return self.change(upload_id, principal, filename=filename)

    def set_tags(self, upload_id: str, principal: Principal, tags: Sequence[object]) -> UploadInfo:
        """Replace an upload's tags (the one way tags change after creation)."""
        return self.change(upload_id, principal, tags=tags)

    def change(
        self,
        upload_id: str,
        principal: Principal,
        filename: str | None = None,
        tags: Sequence[object] | None = None,
    ) -> UploadInfo:
        """Rename and/or retag in one step under the upload's lock; both are checked first, so
        a bad value changes nothing. The catalog's indexes follow the state right after."""
        checked_name = None if filename is None else _valid_filename(filename)
        checked_tags = None if tags is None else valid_tags(tags)
        info = self._load(upload_id, principal=principal, action="write")
        if checked_name is not None:
            self._require(principal, "rename")
        if checked_tags is not None:
            self._require(principal, "tag")
        with self.locks.hold(upload_id, read=True) as lock:
            info = self._live(upload_id, lock.info)
            before = tags_of(info.metadata)
            metadata = dict(info.metadata)
            dropped: set[str] = set()
            if checked_name is not None:
                metadata.pop("name", None)
                metadata["filename"] = checked_name
                dropped |= {"name", "filename"}
            if checked_tags is not None:
                metadata = with_tags(metadata, checked_tags)
                dropped.add(TAGS_KEY)
            now = self.clock()
            old_binary = info.metadata_binary
            binary = {k: v for k, v in old_binary.items() if k not in dropped}
            info = info.evolve(metadata=metadata, metadata_binary=binary, updated=now)
            self.store.save_info(info)
            self.state.set_metadata(info, metadata, now)
            if binary != old_binary:
                self.state.set_metadata_binary(info, binary)
        if checked_name is not None:
            self.events.publish("renamed", info)
        if checked_tags is not None and checked_tags != before:
            self.tagged(info, before)
        return info

    def tagged(self, info: UploadInfo, before: tuple[str, ...]) -> None:
        """Called once an upload's tags changed (`before` -> `tags_of(info.metadata)`): the
        live `tagged` event, with the new tags."""
        self.events.publish("tagged", info, tags=list(tags_of(info.metadata)))

    # -- downloads -------------------------------------------------------------------------
    def download(self, upload_id: str, principal: Principal) -> Download:
        """A complete upload, ready to stream; 409 while it is still incomplete."""
        info = self._load(
            upload_id, with_parts=self.store.keeps_parts, principal=principal, action="read"
        )
        self._require(principal, "download")
        if not info.is_complete:
            total = "unknown" if info.length is None else str(info.length)
            raise UploadIncomplete(
                f"upload incomplete: {info.offset} of {total} bytes received",
                headers={"Upload-Offset": str(info.offset)},
            )
        size = info.length or 0
        etag = f"{info.id}-{size}-{int((info.completed or info.created) * 1000)}"
        last_modified = info.completed or info.updated

        def recheck() -> object:
            return self._load(upload_id)

        def opener() -> BinaryIO:
            return self.store.open_file(info)

        if info.is_final:
            members = [self._load(m, with_parts=self.store.keeps_parts) for m in info.members]
            reader = _concat_reader(self, members)
            return Download(info, size, etag, last_modified, None, reader, opener, recheck)
        path = self.store.local_path(info)
        reader = _store_reader(self.store, info)
        return Download(info, size, etag, last_modified, path, reader, opener, recheck)

    # -- health ----------------------------------------------------------------------------
    def health(self) -> dict[str, str]:
        """Reachability of each backend: 'ok' or the reason it is not."""
        report: dict[str, str] = {}
        for name, check in (("redis", self.state.ping), ("storage", self.store.check)):
            try:
                check()
                report[name] = "ok"
            except TusError as exc:
                report[name] = exc.message
        return report


Action = Literal["head", "read", "write", "delete"]
"""What a request does to an upload: tus HEAD / API get, download, PATCH / rename, DELETE."""


def lock_scope(principal: Principal) -> LockScope | None:
    """The uploads a writer may lock at all (None: any, for admins); see `check_access`."""
    if principal.link_upload is not None:
        return LockScope(owner="\x00")  # links only read: they never lock anything
    if principal.grant is not None:
        return LockScope(owner=principal.grant.owner, grant=principal.grant.id)
    if principal.is_admin:
        return None
    return LockScope(owner=principal.name or "\x00")


def check_access(info: UploadInfo, principal: Principal, action: Action) -> None:
    """404 unless `principal` may do `action` to the upload: exactly what a missing one gets.

    Owners and admins may do everything; a grant holder may HEAD, PATCH and DELETE only the
    uploads its grant created; a signed link may only read its one upload. Uploads from before
    accounts existed (no owner) are the admins' alone.
    """
    if principal.link_upload is not None:
        allowed = action == "read" and info.id == principal.link_upload
    elif principal.grant is not None:
        allowed = (
            action != "read"
            and info.grant == principal.grant.id
            and info.owner == principal.grant.owner
        )
    else:
        allowed = principal.owns(info.owner)
    if not allowed:
        raise UploadNotFound()


def _as_checksums(checksum: Checksums) -> tuple[Checksum, ...]:
    if checksum is None:
        return ()
    if isinstance(checksum, Checksum):
        return (checksum,)
    return tuple(checksum)


def valid_filename(filename: str) -> str:
    """A file name a download can carry (400 otherwise); see `_valid_filename`."""
    return _valid_filename(filename)


def _valid_filename(filename: str) -> str:
    """A file name a download can carry: 1-255 Unicode scalar values, no '/', no controls."""
    filename = filename.strip()
    if not filename or len(filename) > FILENAME_MAX:
        raise InvalidHeader(f"filename must be 1 to {FILENAME_MAX} characters")
    try:
        filename.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidHeader("filename must be valid Unicode text (no lone surrogates)") from None
    if "/" in filename or any(unicodedata.category(ch) in _BAD_NAME_CATEGORIES for ch in filename):
        raise InvalidHeader("filename must not contain '/' or control characters")
    return filename


def _primed(first: bytes | None, rest: Iterator[bytes]) -> Iterator[bytes]:
    """The already-fetched first chunk, then the rest; closing it closes the backend read."""
    try:
        if first is None:
            return
        yield first
        yield from rest
    finally:
        close = getattr(rest, "close", None)
        if close:
            close()


def _at_most(chunks: Iterable[bytes], limit: int) -> Iterator[bytes]:
    """Pass `chunks` through; 413 (pointing to tus) as soon as they go past `limit` bytes."""
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > limit:
            raise TooLarge(
                f"a JSON upload holds at most {limit} bytes; upload larger files with tus "
                "(POST /files/)"
            )
        yield chunk


def _store_reader(store: DataStore, info: UploadInfo) -> Callable[[int, int], Iterator[bytes]]:
    def read(start: int, end: int) -> Iterator[bytes]:
        return store.read(info, start, end)

    return read


def _concat_reader(
    service: UploadService, members: list[UploadInfo]
) -> Callable[[int, int], Iterator[bytes]]:
    """Read a final upload by streaming the covered ranges of its partial uploads in order."""

    def read(start: int, end: int) -> Iterator[bytes]:
        base = 0
        for member in members:
            size = member.length or 0
            lo, hi = max(start, base), min(end, base + size)
            if lo < hi:
                yield from service.store.read(member, lo - base, hi - base)
            base += size
            if base >= end:
                return

    return read
