"""The S3 / MinIO data store: each upload is a run of part objects under one key prefix.

S3 objects cannot be appended to, so every PATCH body is cut into part objects of at most
`TUSSERVER_S3_PART_SIZE` bytes, each named by the absolute offset where it starts and by the
write attempt that stored it: `<prefix><id>/<offset:020d>.<attempt>`. The attempt makes every
key unique, so a stale writer can never overwrite, and its clean-up never delete, a part another
attempt committed. The service records a write's `Part`s in the state store's index only after
every PUT was acknowledged (docs/architecture.md, "Invariants"). Reads use that committed index,
never a bucket listing, so leftovers of failed or rejected writes ("orphans") are never served;
`delete` removes them with everything else under the upload's prefix.

The upload's info is kept beside its parts as `<prefix><id>/info.json` so `scan` can rebuild a
lost index from the bucket alone.

One module per job: `client` (configuration, keys, error translation), `info_codec`, `writer`,
`reader`, `rebuild` (index rebuild and orphan listing).
"""

from __future__ import annotations

from .client import (
    MAX_OBJECT_SIZE,
    StorageConfigError,
    describe,
    make_http_client,
    parse_endpoint,
)
from .info_codec import S3InfoStore, info_from_dict, info_to_dict
from .reader import S3Reader
from .rebuild import S3Index, contiguous_parts
from .writer import S3Writer

__all__ = [
    "MAX_OBJECT_SIZE",
    "S3Store",
    "StorageConfigError",
    "contiguous_parts",
    "describe",
    "info_from_dict",
    "info_to_dict",
    "make_http_client",
    "parse_endpoint",
]


class S3Store(S3Writer, S3Reader, S3InfoStore, S3Index):
    """Uploads as part objects in one bucket, each upload under `<prefix><id>/`.

    One bucket for all uploads with a key prefix per upload: a bucket per upload runs into
    bucket-count limits and makes every upload pay for a bucket creation (docs/architecture.md).
    """

    name = "s3"
    keeps_parts = True
