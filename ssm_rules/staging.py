"""Putting things where a job needs them, and its results where the Snakefile declared them.

- the code bundle: deterministic tar.gz of source_dir + dependencies + worker_toolkit + the
  launcher, content-addressed (``code/<sha256>/sourcedir.tar.gz``): unchanged code is not
  uploaded again;
- local inputs: synced under ``inputs/<hash of the local path>/<name>/``, unchanged files (by
  SHA-256, recorded in a sidecar file; an S3 ETag is not an MD5 for multipart uploads) not
  uploaded again, and not even read when their stat is as when last hashed (digests.py);
  the changed ones sent concurrently;
- outputs: promoted from the job's carrier location only after the job succeeded, after
  checking that every carrier exists, so an artifact that exists is always complete.
"""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ssm_rules import safe_tar, scratch
from ssm_rules.backends.base import JobType
from ssm_rules.digests import DigestCache, FileDigest
from ssm_rules.local_tree import tree
from ssm_rules.manifest import snapshot
from ssm_rules.objects import ObjectStore, ObjectURI, relative_key
from ssm_rules.requests import Placement, carrier_uri, tensorboard_uri
from ssm_rules.spec import OutputKind, TaskSpec
from worker_toolkit import contract as C

TOOLKIT_DIR = Path(__file__).resolve().parent.parent / "worker_toolkit"


StoreOf = Callable[[str], ObjectStore]  # the store that serves a URI (RunContext.store)


class PromotionError(Exception):
    """The job said Completed but what it should have written is not there."""


@dataclass(frozen=True)
class CodeBundle:
    data: bytes
    sha256: str
    files: tuple[str, ...]


def _code_files(spec: TaskSpec, prefix: str = "") -> dict[str, Path]:
    files: dict[str, Path] = {}
    if spec.source_dir is not None:
        files.update(tree(spec.source_dir, prefix))
    for dep in spec.dependencies:
        files.update(tree(dep, f"{prefix}{dep.name}/"))
    if spec.script_path is not None:
        files[prefix + spec.script_path.name] = spec.script_path
    return files


def code_bundle(spec: TaskSpec) -> CodeBundle:
    """A group's job: each member's code in its own directory (``GroupMember.code_dir``),
    and at the root the requirements.txt the members share, which SageMaker installs."""
    if spec.members:
        from ssm_rules.group import requirements_file

        files = {}
        for m in spec.members:
            files.update(_code_files(m.spec, m.code_dir + "/"))
        requirements = requirements_file(spec)
        if requirements is not None:
            files[requirements.name] = requirements
    else:
        files = _code_files(spec)
    # ours last: the launcher and worker_toolkit always are what this version ships
    files.update(tree(TOOLKIT_DIR, "worker_toolkit/"))
    files[C.LAUNCHER_PROGRAM] = TOOLKIT_DIR / C.LAUNCHER_PROGRAM
    data = safe_tar.deterministic_tar_gz(files.items())
    return CodeBundle(data, hashlib.sha256(data).hexdigest(), tuple(sorted(files)))


def upload_code(store: ObjectStore, root: str, bundle: CodeBundle) -> tuple[str, bool]:
    """Returns (uri, uploaded?)."""
    uri = str(ObjectURI.parse(root).join("code", bundle.sha256, C.CODE_BUNDLE_NAME))
    if store.exists(uri):
        return uri, False
    with tempfile.NamedTemporaryFile(suffix=".tar.gz", dir=scratch.directory()) as tmp:
        tmp.write(bundle.data)
        tmp.flush()
        store.upload(Path(tmp.name), uri)
    return uri, True


@dataclass(frozen=True)
class SyncResult:
    uri: str  # the channel's URI (a prefix ending with "/" for a directory)
    uploaded: int
    deleted: int


def input_prefix(root: str, local: Path) -> str:
    """Where a local input is mirrored: keyed by its absolute path (readable name last), so
    every job reading it shares the upload and a sync only sends what changed."""
    digest = hashlib.sha256(str(local.resolve()).encode()).hexdigest()[:16]
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", local.name) or "input"
    return str(ObjectURI.parse(root).join("inputs", digest, name)) + "/"


def files_prefix(root: str, files: list[Path]) -> str:
    """Where a list of local files given as one input is mirrored (keyed by the list)."""
    digest = hashlib.sha256("\n".join(str(f.resolve()) for f in files).encode()).hexdigest()
    return str(ObjectURI.parse(root).join("inputs", digest[:16], "files")) + "/"


def manifest_uri(root: str, task_id: str, channel: str) -> str:
    """Where the ManifestFile of a task's list channel is written."""
    return str(ObjectURI.parse(root).join("manifests", task_id, f"{channel}.json"))


def sync_local_input(
    store: ObjectStore, local: Path, dest_prefix: str, digests: DigestCache | None = None
) -> SyncResult:
    """Mirror a local file or directory under ``dest_prefix`` (which ends with ``/``)."""
    if local.is_dir():
        return _sync(store, lambda: dict(tree(local, "")), dest_prefix, dest_prefix, digests)
    uri = str(ObjectURI.parse(dest_prefix).join(local.name))
    return _sync(store, lambda: {local.name: local}, dest_prefix, uri, digests)


def sync_local_files(
    store: ObjectStore,
    wanted: dict[str, Path],
    dest_prefix: str,
    uri: str | None = None,
    digests: DigestCache | None = None,
) -> SyncResult:
    """Mirror local files (relative key → path) under ``dest_prefix``; only what changed
    is sent, and objects no longer wanted are deleted."""
    return _sync(store, lambda: wanted, dest_prefix, uri or dest_prefix, digests)


def _sync(
    store: ObjectStore,
    local_files: Callable[[], dict[str, Path]],
    dest_prefix: str,
    uri: str,
    digests: DigestCache | None,
) -> SyncResult:
    """A file is unchanged when its SHA-256 is the one the sidecar recorded at its last upload
    and its object still has its size. ``digests`` (the run's DigestCache) gives the SHA-256
    of a file whose stat is as when it was last hashed without reading it; without one,
    every file is read.

    What is there (the listing, the sidecar) is read while the local files are walked and
    their digests found, and each changed file is uploaded while the next ones are hashed:
    the waits on S3, on the disk and on the CPU overlap."""
    digests = digests if digests is not None else DigestCache()
    base = ObjectURI.parse(dest_prefix)
    sidecar_uri = dest_prefix.rstrip("/") + ".ssm-sync.json"
    record: dict[str, str] = {}
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="ssm-sync-read") as reads:
        known_read = reads.submit(_read_sidecar, store, sidecar_uri)
        present_read = reads.submit(
            lambda: {relative_key(base.key, o.key): o.size for o in store.list(dest_prefix)}
        )
        wanted = local_files()

        def changed() -> Iterator[tuple[Path, str]]:
            ahead: list[tuple[str, Path, FileDigest]] = []  # digests found before S3 answered
            for rel, path in sorted(wanted.items()):
                ahead.append((rel, path, digests.digest(path)))
                if known_read.done() and present_read.done():
                    yield from decide(ahead)
                    ahead.clear()
            yield from decide(ahead)

        def decide(digested: list[tuple[str, Path, FileDigest]]) -> Iterator[tuple[Path, str]]:
            known, present = known_read.result(), present_read.result()
            for rel, path, digest in digested:
                record[rel] = digest.sha256
                if known.get(rel) != digest.sha256 or present.get(rel) != digest.size:
                    yield path, str(base.join(rel))

        try:
            uploaded = store.upload_many(changed())
        finally:
            digests.save()  # what was hashed stays known, even when an upload failed
        known, present = known_read.result(), present_read.result()
    deleted = store.delete_many(str(base.join(rel)) for rel in sorted(set(present) - set(wanted)))
    if uploaded or deleted or known != record:
        upload_text(store, json.dumps(record, sort_keys=True), sidecar_uri)
    return SyncResult(uri, uploaded, deleted)


def _read_sidecar(store: ObjectStore, uri: str) -> dict[str, Any]:
    data = store.read_bytes(uri)
    try:
        found = json.loads(data) if data is not None else {}
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def upload_text(store: ObjectStore, text: str, uri: str) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".tmp", dir=scratch.directory()) as tmp:
        tmp.write(text)
        tmp.flush()
        store.upload(Path(tmp.name), uri)


# Beside a task's state prefix (``.../state/`` → ``.../state.ssm-writer.json``, outside it:
# never in a listing of the state, never wiped by clean_state): the identity parts of the
# last job that was given this state to write, so that the next one can say what differs.
STATE_WRITER_SUFFIX = ".ssm-writer.json"


def state_writer_uri(state_prefix: str) -> str:
    return state_prefix.rstrip("/") + STATE_WRITER_SUFFIX


def read_state_writer(store: ObjectStore, state_prefix: str) -> dict[str, Any]:
    """``{"job": name, "parts": identity parts}`` of the state's last writer, or {}."""
    return _read_sidecar(store, state_writer_uri(state_prefix))


def record_state_writer(
    store: ObjectStore, state_prefix: str, job: str, parts: dict[str, Any]
) -> None:
    upload_text(
        store,
        json.dumps({"job": job, "parts": parts}, sort_keys=True),
        state_writer_uri(state_prefix),
    )


def clear_prefix(store: ObjectStore, prefix: str) -> int:
    return store.delete_many(o.uri for o in store.list(prefix))


def remove_stale_outputs(store_of: StoreOf, spec: TaskSpec) -> None:
    """Delete what an earlier run left at the declared outputs, so it can never pass as this
    run's result (Snakemake does not delete remote outputs before a job). A state output
    loses only its manifest: the state objects are what the next job resumes from."""
    for out in spec.outputs:
        if out.kind is OutputKind.TENSORBOARD:  # a folder: every object under it
            clear_prefix(store_of(out.uri), out.uri)
        else:
            store_of(out.uri).delete(out.uri)


# --- promotion ------------------------------------------------------------------------------

EMPTY_FOLDER_MARKER = ".ssm-empty"  # a folder output with no files still exists (S3: an object)


def _promote_folder(store_of: StoreOf, src: str, dst: str, tmp: str) -> None:
    """Every object under ``src`` to the same key under ``dst``; a job that wrote no file
    leaves an empty marker, so the declared folder exists (S3 has no empty folders)."""
    objects = store_of(src).list(src)
    base_src, base_dst = ObjectURI.parse(src), ObjectURI.parse(dst)
    pairs = [(o.uri, str(base_dst.join(relative_key(base_src.key, o.key)))) for o in objects]
    _copy_all(store_of, pairs, tmp)
    if not objects:
        marker = Path(tmp) / EMPTY_FOLDER_MARKER
        marker.write_text("")
        store_of(dst).upload(marker, str(base_dst.join(EMPTY_FOLDER_MARKER)))


def _copy_all(store_of: StoreOf, pairs: list[tuple[str, str]], tmp: str) -> None:
    """Each (src, dst): server-side, all of a store's at once (S3: concurrent CopyObjects);
    between a file:// and an s3:// store, through a local copy."""
    by_scheme: dict[str, list[tuple[str, str]]] = {}
    across = []
    for src, dst in pairs:
        scheme = ObjectURI.parse(src).scheme
        if scheme == ObjectURI.parse(dst).scheme:
            by_scheme.setdefault(scheme, []).append((src, dst))
        else:
            across.append((src, dst))
    for group in by_scheme.values():
        store_of(group[0][0]).copy_many(group)
    for src, dst in across:
        local = Path(tmp) / "copy"
        store_of(src).download(src, local)
        store_of(dst).upload(local, dst)


def _carrier(spec: TaskSpec, place: Placement, out_kind: OutputKind) -> str:
    base = ObjectURI.parse(carrier_uri(spec, place))
    name = C.MODEL_ARCHIVE if out_kind is OutputKind.MODEL else C.OUTPUT_ARCHIVE
    return str(base.join(name))


def carriers_present(store_of: StoreOf, spec: TaskSpec, place: Placement) -> bool:
    """Whether a finished job left everything promotion needs (an adopted job's outputs may
    have been cleaned up since)."""
    kinds = {o.kind for o in spec.outputs}
    needed = [
        _carrier(spec, place, k)
        for k in (OutputKind.MODEL, OutputKind.OUTPUT_DATA)
        if k in kinds and not (k is OutputKind.OUTPUT_DATA and _output_tar_optional(spec))
    ]
    if spec.job_type is JobType.TRAINING and OutputKind.FILE in kinds:
        needed.append(_carrier(spec, place, OutputKind.OUTPUT_DATA))
    elif OutputKind.FILE in kinds:
        base = ObjectURI.parse(carrier_uri(spec, place))
        needed += [
            str(base.join("files", o.member)) for o in spec.outputs if o.kind is OutputKind.FILE
        ]
    return all(store_of(uri).exists(uri) for uri in needed)


def _output_tar_optional(spec: TaskSpec) -> bool:
    """Whether a completed job may lack output.tar.gz: SageMaker uploads none for a training
    job whose SM_OUTPUT_DATA_DIR stayed empty. Not when plain file outputs travel inside it,
    and not for processing jobs (our launcher always writes theirs)."""
    return spec.job_type is JobType.TRAINING and not any(
        o.kind is OutputKind.FILE for o in spec.outputs
    )


def promote_outputs(store_of: StoreOf, spec: TaskSpec, place: Placement) -> list[str]:
    """Put every declared output in place from what the finished (Completed) job left.
    Checks first that every carrier exists, then copies; a missing carrier raises before
    anything is promoted. An output_data() whose job wrote nothing, so that SageMaker
    uploaded no output.tar.gz, becomes an empty tarball. Returns warnings for the user."""
    training = spec.job_type is JobType.TRAINING
    files = [o for o in spec.outputs if o.kind is OutputKind.FILE]
    sources: dict[str, str] = {}
    for out in spec.outputs:
        if out.kind in (OutputKind.MODEL, OutputKind.OUTPUT_DATA):
            sources[out.uri] = _carrier(spec, place, out.kind)
        elif out.kind is OutputKind.FILE and not training:
            sources[out.uri] = str(
                ObjectURI.parse(carrier_uri(spec, place)).join("files", out.member)
            )
    absent_sources = {src for src in sources.values() if not store_of(src).exists(src)}
    output_tar = _carrier(spec, place, OutputKind.OUTPUT_DATA)
    empty_outputs = []
    if output_tar in absent_sources and _output_tar_optional(spec):
        absent_sources.discard(output_tar)
        empty_outputs = [dst for dst, src in sources.items() if src == output_tar]
        for dst in empty_outputs:
            del sources[dst]
    missing = sorted(absent_sources)
    if files and training and not store_of(output_tar).exists(output_tar):
        missing.append(output_tar)
    if missing:
        raise PromotionError(
            f"job {place.job_name} completed but left no {', '.join(missing)}: its outputs were "
            "not written or not uploaded (see the job's log: did it write into SM_MODEL_DIR / "
            "SM_OUTPUT_DATA_DIR / {output.<name>}?); nothing was promoted"
        )
    warnings = [_empty_model_warning(spec, place, store_of)] if _has_model(spec) else []
    with tempfile.TemporaryDirectory(prefix="ssm-promote-", dir=scratch.directory()) as tmp:
        contents: dict[str, bytes] = {}
        if files and training:
            local_tar = Path(tmp) / C.OUTPUT_ARCHIVE
            store_of(output_tar).download(output_tar, local_tar)
            for out in files:  # all found before anything is written
                data = safe_tar.read_member(local_tar, f"{C.SSM_FILES_MEMBER}/{out.member}")
                if data is None:
                    raise PromotionError(
                        f"job {place.job_name} completed but its output.tar.gz has no "
                        f"{C.SSM_FILES_MEMBER}/{out.member} for output {out.uri}; nothing was "
                        "promoted"
                    )
                contents[out.uri] = data
        for uri, data in contents.items():
            staged = Path(tmp) / "file"
            staged.write_bytes(data)
            store_of(uri).upload(staged, uri)
        for dst in empty_outputs:
            staged = Path(tmp) / C.OUTPUT_ARCHIVE
            staged.write_bytes(safe_tar.deterministic_tar_gz([]))
            store_of(dst).upload(staged, dst)
        _copy_all(store_of, [(src, dst) for dst, src in sources.items()], tmp)
        if spec.tensorboard_output is not None:
            _promote_folder(store_of, tensorboard_uri(place), spec.tensorboard_output.uri, tmp)
        state = spec.state_output
        if state is not None:
            assert spec.state_prefix is not None
            upload_text(
                store_of(state.uri),
                snapshot(store_of(spec.state_prefix), spec.state_prefix, place.job_name).to_json(),
                state.uri,
            )
    absent = [
        o.uri
        for o in spec.outputs
        if o.kind is not OutputKind.TENSORBOARD and not store_of(o.uri).exists(o.uri)
    ]
    if absent:
        raise PromotionError(f"job {place.job_name}: after promotion {absent} still do not exist")
    return [w for w in warnings if w]


# A tar.gz with a few members is more than this; only smaller model.tar.gz are opened to
# see whether they are empty (a real model is never downloaded for a warning).
_SMALL_ARCHIVE_BYTES = 1024


def _has_model(spec: TaskSpec) -> bool:
    return any(o.kind is OutputKind.MODEL for o in spec.outputs)


def _empty_model_warning(spec: TaskSpec, place: Placement, store_of: StoreOf) -> str:
    """A warning when the job's model.tar.gz holds no file: SageMaker tars SM_MODEL_DIR
    whatever it holds, so a program that wrote its model elsewhere still "succeeds"."""
    uri = _carrier(spec, place, OutputKind.MODEL)
    sizes = [o.size for o in store_of(uri).list(uri) if o.uri == uri]
    if not sizes or sizes[0] > _SMALL_ARCHIVE_BYTES:
        return ""
    with tempfile.TemporaryDirectory(prefix="ssm-model-", dir=scratch.directory()) as tmp:
        local = Path(tmp) / C.MODEL_ARCHIVE
        store_of(uri).download(uri, local)
        with tarfile.open(local) as tar:  # names only: nothing is extracted
            if any(member.isfile() for member in tar):
                return ""
    model = next(o.uri for o in spec.outputs if o.kind is OutputKind.MODEL)
    return (
        f"job {place.job_name} wrote nothing to its model directory (SM_MODEL_DIR, "
        f"WorkerConfig().model_dir): the model output {model} is an empty model.tar.gz. "
        "Write the model files into $SM_MODEL_DIR, or declare another kind of output."
    )
