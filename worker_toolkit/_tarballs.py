"""tar.gz in and out, on both sides of the job boundary (standard library only).

One writer and one safe extractor: the client (code bundle, ``ssm_rules.extract``), the local
backend (model.tar.gz / output.tar.gz as SageMaker uploads them, the code bundle it unpacks)
and the in-job launcher (the processing carrier, ``unpacked(...)`` inputs) all use these.

Writing: members in the order given (``tree_entries`` sorts, directories before their
contents), owners dropped, a gzip header without a timestamp; ``reproducible`` also zeroes
mtimes, normalises modes and stores what a link points to, so that equal code gives equal
bytes and an unchanged bundle is never uploaded again.

Extraction: Python's ``data`` filter (PEP 706) refuses absolute names, ``..``, links that
leave the destination and special files; container images with a Python older than the
backport (3.8.17 / 3.9.17 / 3.10.12 / 3.11.4) get the same refusals from a check here.
"""

from __future__ import annotations

import gzip
import os
import tarfile
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from .contract import SSM_FILES_MEMBER

__all__ = ["UnsafeArchiveError", "extract_tarball", "tree_entries", "write_tar_gz"]


class UnsafeArchiveError(tarfile.TarError, ValueError):
    """A member would land outside the destination, or is a device/FIFO. A TarError, as the
    ``data`` filter's own errors (what callers of ``ssm_rules.extract`` caught), and a
    ValueError: bad input, which the launcher reports in the failure file."""


# --- writing ----------------------------------------------------------------------------
def tree_entries(root: Path) -> list[tuple[str, Path]]:
    """(name relative to ``root``, path) of everything below ``root``: directories (empty ones
    too: ``tar`` in a container keeps them), files, symlinks (not followed). Sorted by path
    components, so a directory comes before its contents."""
    found: list[Path] = []
    if not root.is_dir() or root.is_symlink():
        return []
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        found.extend(base / name for name in dirnames if (base / name).is_symlink())
        found.extend(base / name for name in filenames)
        if base != root:
            found.append(base)
    found.sort(key=lambda p: p.relative_to(root).parts)
    return [(p.relative_to(root).as_posix(), p) for p in found]


def write_tar_gz(
    entries: Iterable[tuple[str, Path]], out: IO[bytes], reproducible: bool = False
) -> None:
    """Write the ``(member name, path)`` entries, in order, as a tar.gz into ``out``."""

    def normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
        # no owner names or ids: the same tree gives the same bytes on every host and run
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        if reproducible:
            info.mtime = 0
            info.mode = 0o755 if info.isdir() or info.mode & 0o100 else 0o644
        return info

    # mtime=0: gzip would otherwise stamp the time of writing into the header
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=6) as gz:
        with tarfile.open(
            fileobj=gz, mode="w", format=tarfile.PAX_FORMAT, dereference=reproducible
        ) as tar:
            for name, path in entries:
                tar.add(str(path), arcname=name, recursive=False, filter=normalise)


def write_tar_gz_file(
    entries: Iterable[tuple[str, Path]], dest: Path, reproducible: bool = False
) -> None:
    """``write_tar_gz`` into the file ``dest``, which appears whole or not at all."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    with open(tmp, "wb") as raw:
        write_tar_gz(entries, raw, reproducible)
    os.replace(tmp, dest)


# --- extraction -------------------------------------------------------------------------
def _top(name: str) -> str:
    return name.removeprefix("./").split("/", 1)[0]


def _check_member(member: tarfile.TarInfo, dest: Path) -> str | None:
    """What the ``data`` filter would refuse about ``member``, for Pythons without it (whose
    tarfile has none of the filter's error classes either)."""
    target = os.path.realpath(dest / member.name)
    if os.path.isabs(member.name) or not (target + os.sep).startswith(str(dest) + os.sep):
        return f"{member.name!r}, which would land outside {dest}"
    if member.issym() or member.islnk():
        link = member.linkname
        base = os.path.dirname(target) if member.issym() else str(dest)
        if os.path.isabs(link) or not (
            os.path.realpath(os.path.join(base, link)) + os.sep
        ).startswith(str(dest) + os.sep):
            return f"{member.name!r}, a link to {link!r} outside {dest}"
    elif not (member.isfile() or member.isdir()):
        return f"{member.name!r}, a special file"
    return None


def extract_tarball(src: Path, dest: Path, skip_carrier: bool = True) -> None:
    """Extract ``src`` into ``dest``; ``skip_carrier`` leaves out the plain-file carrier that
    ssm_rules adds to output.tar.gz. UnsafeArchiveError (a ValueError) names the member."""
    dest = Path(os.path.realpath(dest))
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(src, "r:*") as tar:
        members = [
            m for m in tar.getmembers() if not (skip_carrier and _top(m.name) == SSM_FILES_MEMBER)
        ]
        if hasattr(tarfile, "data_filter"):
            try:
                tar.extractall(dest, members=members, filter="data")
            except tarfile.FilterError as exc:
                raise UnsafeArchiveError(f"{src}: refusing to extract {exc}") from exc
            return
        for member in members:
            problem = _check_member(member, dest)
            if problem is not None:
                raise UnsafeArchiveError(f"{src}: refusing to extract {problem}")
        tar.extractall(dest, members=members)  # noqa: S202 — every member checked above
