"""SHA-256 of local files, remembered with their stat so that an unchanged file is not read again.

A sync compares each local input file's SHA-256 with the one recorded beside its upload
(staging's sidecar); hashing every file of a large dataset on every run costs as much as
reading it. A :class:`DigestCache` keeps, per absolute path, the stat the file had when it was
hashed: when the stat is the same now, the recorded digest is used and the file is not opened.

What "the same stat" means is stricter than ``aws s3 sync``'s size + mtime (with S3's
LastModified, to the second):

- size, ``st_mtime_ns``, ``st_ctime_ns`` and ``st_ino`` must all be equal. mtime can be set back
  by anyone (``touch -r``, ``cp -p``, ``rsync -t``, ``tar x``), so a rewritten file can carry
  its old mtime and size; ctime cannot be set by a program (the kernel sets it to "now" on
  every write, ``utime`` and rename), and a file replaced by another (an editor's save, a
  download renamed into place) has another inode.
- a file whose mtime or ctime was less than :data:`RACY_NS` before it was hashed is not
  remembered (git's "racily clean" rule): a write in the same timestamp tick as the hashing
  (coarse kernel clock, or a filesystem that keeps seconds, 2 s on FAT) could change the
  content without changing the stat. Such a file is hashed again next time, and remembered
  then.
- a file whose stat changed while it was read (written meanwhile) is not remembered.

What remains is a file whose content changed while size, mtime, ctime and inode all stayed:
only the system clock set back, or the disk written around its filesystem. That matters
because a job's identity rests on it (an input not re-uploaded keeps its S3 ETag, so an
earlier job with the old data would be reused); after such a thing, delete the cache file
(``.ssm_rules/sync-digests.json``) and every file is hashed again.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ssm_rules.objects import temp_sibling

CACHE_FILE = "sync-digests.json"  # under the run's state directory (``.ssm_rules/``)
FORMAT = 1
RACY_NS = 2_000_000_000  # FAT keeps mtimes to 2 s, ext3 and HFS+ to 1 s


def file_sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


@dataclass(frozen=True)
class FileDigest:
    sha256: str
    size: int


def _signature(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


class DigestCache:
    """Path → (stat signature, SHA-256), read from and saved to ``path`` (None: kept in memory
    only, so every file is hashed once per cache). Safe to use from several threads.
    ``racy_ns``: how old a file's timestamps must be for it to be remembered."""

    def __init__(self, path: Path | None = None, racy_ns: int = RACY_NS) -> None:
        self.path = path
        self.racy_ns = racy_ns
        self.hashed = 0  # files read to hash them through this cache (the rest: remembered)
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[tuple[int, int, int, int], str]] | None = None
        self._changed = False

    def _known(self) -> dict[str, tuple[tuple[int, int, int, int], str]]:
        """The entries, read from the file on first use (the caller holds the lock)."""
        if self._entries is None:
            self._entries = self._load(self.path) if self.path else {}
        return self._entries

    def digest(self, path: Path) -> FileDigest:
        key = os.path.abspath(path)
        before = os.stat(key)
        signature = _signature(before)
        with self._lock:
            known = self._known().get(key)
        if known is not None and known[0] == signature:
            return FileDigest(known[1], before.st_size)
        started = time.time_ns()
        sha256 = file_sha256(Path(key))
        steady = _signature(os.stat(key)) == signature
        old_enough = max(before.st_mtime_ns, before.st_ctime_ns) < started - self.racy_ns
        with self._lock:
            self.hashed += 1
            if steady and old_enough:
                self._known()[key] = (signature, sha256)
                self._changed = True
            elif self._known().pop(key, None) is not None:
                self._changed = True
        return FileDigest(sha256, before.st_size)

    def save(self) -> None:
        """Write what changed (atomically: a concurrent run reads the old file or the new)."""
        with self._lock:
            if self.path is None or not self._changed:
                return
            entries = {k: [*sig, sha] for k, (sig, sha) in sorted(self._known().items())}
            self._changed = False
        tmp = temp_sibling(self.path)
        try:
            tmp.write_text(json.dumps({"format": FORMAT, "files": entries}))
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    @staticmethod
    def _load(path: Path) -> dict[str, tuple[tuple[int, int, int, int], str]]:
        """A missing, unreadable or other-format file is an empty cache: everything is hashed."""
        try:
            data = json.loads(path.read_text())
            if data.get("format") != FORMAT:
                return {}
            return {
                key: ((int(a), int(b), int(c), int(d)), str(sha))
                for key, (a, b, c, d, sha) in data["files"].items()
            }
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return {}
