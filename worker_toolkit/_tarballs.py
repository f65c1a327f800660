"""Safe extraction of model/output tarballs, on both sides of the job boundary (stdlib only).

The client (``ssm_rules.extract``) and the in-job launcher (``unpacked(...)`` inputs) use
this one function. Python's ``data`` filter (PEP 706) refuses absolute names, ``..``, links
that leave the destination and special files; container images with a Python older than
the backport (3.8.17 / 3.9.17 / 3.10.12 / 3.11.4) get the same refusals from a check here.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

from .contract import SSM_FILES_MEMBER


def _top(name: str) -> str:
    return name.removeprefix("./").split("/", 1)[0]


def _check_member(member: tarfile.TarInfo, dest: Path) -> None:
    """The ``data`` filter's refusals, for Pythons without it."""
    target = os.path.realpath(dest / member.name)
    if os.path.isabs(member.name) or not (target + os.sep).startswith(str(dest) + os.sep):
        raise tarfile.OutsideDestinationError(member, target)
    if member.issym() or member.islnk():
        link = member.linkname
        base = os.path.dirname(target) if member.issym() else str(dest)
        if os.path.isabs(link) or not (
            os.path.realpath(os.path.join(base, link)) + os.sep
        ).startswith(str(dest) + os.sep):
            raise tarfile.LinkOutsideDestinationError(member, link)
    elif not (member.isfile() or member.isdir()):
        raise tarfile.SpecialFileError(member)


def extract_tarball(src: Path, dest: Path, skip_carrier: bool = True) -> None:
    """Extract ``src`` into ``dest``; ``skip_carrier`` leaves out the plain-file carrier that
    ssm_rules adds to output.tar.gz."""
    dest = Path(os.path.realpath(dest))
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(src, "r:*") as tar:
        members = [
            m for m in tar.getmembers() if not (skip_carrier and _top(m.name) == SSM_FILES_MEMBER)
        ]
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, members=members, filter="data")
            return
        for member in members:
            _check_member(member, dest)
        tar.extractall(dest, members=members)  # noqa: S202 — every member checked above
