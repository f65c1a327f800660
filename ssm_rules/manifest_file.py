"""A list of files as one SageMaker channel: the ManifestFile S3DataType.

The manifest is a JSON array, a prefix first and then keys relative to it::

    [{"prefix": "s3://bucket/wf/data/"}, "part-1.csv", "sub/part-2.csv"]

SageMaker (File mode) places each object at ``<channel dir>/<relative key>`` and, with
ShardedByS3Key, deals the listed objects over the instances (CreateTrainingJob
S3DataSource.S3DataType; ProcessingS3Input the same). ``file://`` URIs stand in for S3 on
the local profile.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from ssm_rules.objects import ObjectURI


class ManifestError(ValueError):
    pass


def build(uris: Sequence[str]) -> str:
    """The manifest of ``uris``: their longest common folder as the prefix, the rest as keys
    in the order given (the order SageMaker deals them in)."""
    parsed = [ObjectURI.parse(u) for u in uris]
    places = {(p.scheme, p.bucket) for p in parsed}
    if len(places) != 1:
        raise ManifestError(
            f"the files {list(uris)} are in {len(places)} buckets: a SageMaker channel of "
            "several files reads one bucket; put them in one"
        )
    common: list[str] = []
    for segments in zip(*(p.key.split("/")[:-1] for p in parsed), strict=False):
        if len(set(segments)) != 1:
            break
        common.append(segments[0])
    folder = "/".join(common)
    prefix = ObjectURI(parsed[0].scheme, parsed[0].bucket, folder + "/" if folder else "")
    keys = [p.key[len(prefix.key) :] for p in parsed]
    if len(set(keys)) != len(keys):
        raise ManifestError(f"the files {list(uris)} are listed twice: list each file once")
    return json.dumps([{"prefix": str(prefix)}, *keys])


def parse(text: str) -> tuple[str, list[str]]:
    """``(prefix URI, relative keys)`` of a manifest's text."""
    try:
        data = json.loads(text)
    except ValueError as e:
        raise ManifestError(f"the manifest is not JSON: {e}") from None
    if (
        not isinstance(data, list)
        or not data
        or not isinstance(data[0], dict)
        or not isinstance(data[0].get("prefix"), str)
        or not all(isinstance(k, str) for k in data[1:])
    ):
        raise ManifestError(
            'a manifest is [{"prefix": "s3://bucket/prefix/"}, "key1", "key2", ...]'
        )
    return data[0]["prefix"], list(data[1:])
