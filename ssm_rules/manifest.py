"""Task state manifests: the file a ``state(...)`` output declares.

The state objects themselves live under the prefix next to the manifest and are written
by the job while it runs (CheckpointConfig); the manifest is written only after the job
succeeded, so an existing manifest always describes a complete state.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ssm_rules.objects import ObjectStore, ObjectURI, relative_key, store_for

MANIFEST_FORMAT = "ssm_rules.state/1"


@dataclass(frozen=True)
class StateManifest:
    prefix: str  # URI ending with "/"
    job: str
    objects: tuple[tuple[str, int], ...]  # (key relative to prefix, size)

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": MANIFEST_FORMAT,
                "prefix": self.prefix,
                "job": self.job,
                "objects": [{"key": k, "size": s} for k, s in self.objects],
            },
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str) -> StateManifest:
        data = json.loads(text)
        if data.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"not an ssm_rules state manifest (format {data.get('format')!r})")
        return cls(
            data["prefix"], data["job"], tuple((o["key"], o["size"]) for o in data["objects"])
        )


def snapshot(store: ObjectStore, prefix: str, job: str) -> StateManifest:
    """The manifest of the state objects under ``prefix`` now (one List call)."""
    pkey = ObjectURI.parse(prefix).key
    return StateManifest(
        prefix, job, tuple((relative_key(pkey, o.key), o.size) for o in store.list(prefix))
    )


def copy_state_objects(manifest: Path, dest: Path) -> None:
    m = StateManifest.from_json(Path(manifest).read_text())
    store = store_for(m.prefix)
    base = ObjectURI.parse(m.prefix)
    for key, _size in m.objects:
        target = (dest / key).resolve()
        if not target.is_relative_to(dest.resolve()):
            raise ValueError(f"state object {key!r} would land outside {dest}")
        store.download(str(base.join(key)), target)
