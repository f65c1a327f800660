"""Placing S3Prefix data into a host, as SageMaker File mode does.

An object lands at ``<dir>/<relative_key(prefix, key)>``: SageMaker strips the prefix up
to its last ``/`` (see :func:`ssm_rules.objects.relative_key`). With ``ShardedByS3Key`` the
objects, in key order, are dealt round-robin: object i goes to host i mod N
(FullyReplicated: every host gets every object). Keys ending in ``/`` are S3 console
"folders", not data, and are skipped.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ssm_rules import manifest_file
from ssm_rules.objects import ObjectInfo, ObjectURI, S3Objects, relative_key, store_for


class PlacementError(ValueError):
    pass


@dataclass(frozen=True)
class Source:
    """One S3DataSource / S3Input: a URI prefix and how it is split across hosts."""

    uri: str
    sharded: bool = False
    manifest: bool = False  # S3DataType ManifestFile: uri is a manifest naming the objects

    @classmethod
    def from_request(cls, src: dict[str, object]) -> Source:
        return cls(
            uri=str(src["S3Uri"]),
            sharded=src.get("S3DataDistributionType") == "ShardedByS3Key",
            manifest=src.get("S3DataType") == "ManifestFile",
        )

    def objects(self, s3: S3Objects | None = None) -> tuple[str, list[ObjectInfo]]:
        """``(prefix key, objects)``: what the channel holds, in the order hosts get them
        (S3Prefix: key order; ManifestFile: the manifest's order)."""
        if not self.manifest:
            return ObjectURI.parse(self.uri).key, list_objects(self.uri, s3)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "manifest.json"
            store_for(self.uri, s3).download(self.uri, path)
            try:
                prefix, keys = manifest_file.parse(path.read_text())
            except manifest_file.ManifestError as e:
                raise PlacementError(f"manifest {self.uri}: {e}") from None
        found = []
        for rel in keys:
            uri = str(ObjectURI.parse(prefix).join(rel))
            match = [o for o in store_for(uri, s3).list(uri) if o.uri == uri]
            if not match:  # SageMaker fails the job when a listed object is missing
                raise PlacementError(f"manifest {self.uri} lists {uri}, which does not exist")
            found.append(match[0])
        return ObjectURI.parse(prefix).key, found


def list_objects(uri: str, s3: S3Objects | None = None) -> list[ObjectInfo]:
    objs = [o for o in store_for(uri, s3).list(uri) if not o.key.endswith("/")]
    return sorted(objs, key=lambda o: o.key)


def shard(objects: Sequence[ObjectInfo], host_index: int, host_count: int) -> list[ObjectInfo]:
    """``host_index`` is 0-based (algo-1 is 0)."""
    return [o for i, o in enumerate(objects) if i % host_count == host_index]


def host_share(
    source: Source, objects: Sequence[ObjectInfo], host_index: int, host_count: int
) -> list[ObjectInfo]:
    """The objects of ``source`` that one host gets."""
    return shard(objects, host_index, host_count) if source.sharded else list(objects)


def destination(dest: Path, rel: str) -> Path:
    target = Path(os.path.normpath(dest / rel))
    if rel.startswith("/") or not (target == dest or dest in target.parents):
        raise PlacementError(f"object key {rel!r} would land outside {dest}")
    return target


def place(
    source: Source,
    dest: Path,
    host_index: int,
    host_count: int,
    s3: S3Objects | None = None,
    listing: tuple[str, Sequence[ObjectInfo]] | None = None,
) -> list[Path]:
    """Download this host's share of ``source`` under ``dest``; returns the files placed.

    ``listing`` (``Source.objects()``) may be passed to list once for all hosts.
    """
    dest.mkdir(parents=True, exist_ok=True)
    prefix_key, objects = listing if listing is not None else source.objects(s3)
    mine = host_share(source, objects, host_index, host_count)
    store = store_for(source.uri, s3)
    placed = []
    for obj in mine:
        target = destination(dest, relative_key(prefix_key, obj.key))
        store.download(obj.uri, target)
        placed.append(target)
    return placed


def folder_uri(uri: str) -> str:
    """A prefix treated as a folder (CheckpointConfig.S3Uri, ProcessingOutput S3Uri)."""
    return uri if uri.endswith("/") else uri + "/"
