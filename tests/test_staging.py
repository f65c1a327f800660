"""Code bundles, input sync, output promotion, safe extraction (file:// store: same code path as S3)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ssm_rules import extract, staging
from ssm_rules._snakemake_internals import keep_local_path, named_items, named_list
from ssm_rules.digests import CACHE_FILE, DigestCache
from ssm_rules.objects import LocalObjects, ObjectURI, file_uri, relative_key
from ssm_rules.rules import local_input
from ssm_rules.spec import build_spec
from tests.jobviews import io as io_item
from tests.jobviews import view

STORE = LocalObjects()


def test_code_bundle_is_deterministic_and_content_addressed(tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    (code / "train.py").write_text("print(1)")
    (code / "__pycache__").mkdir()
    (code / "__pycache__" / "x.pyc").write_bytes(b"junk")
    spec = build_spec(
        view(
            tmp_path,
            body="script",
            script="code/train.py",
            params=(("sm", __import__("ssm_rules").job(source_dir="code")),),
        ),
        backend="local",
        default_instance_type="ml.m5.large",
    )
    a, b = staging.code_bundle(spec), staging.code_bundle(spec)
    assert a.data == b.data and a.sha256 == b.sha256
    assert "train.py" in a.files and "ssm_launch.py" in a.files
    assert "worker_toolkit/worker_lib.py" in a.files and not any("pycache" in f for f in a.files)
    root = file_uri(tmp_path / "store", directory=True)
    uri, uploaded = staging.upload_code(STORE, root, a)
    assert uploaded and uri.endswith(f"/code/{a.sha256}/sourcedir.tar.gz")
    assert staging.upload_code(STORE, root, b) == (uri, False)  # unchanged code: no upload
    (code / "train.py").write_text("print(2)")
    assert staging.code_bundle(spec).sha256 != a.sha256


def test_sync_uploads_only_what_changed_and_deletes_what_went(tmp_path):
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "a.txt").write_text("a")
    (data / "sub" / "b.txt").write_text("b")
    dest = file_uri(tmp_path / "store" / "input" / "data", directory=True)
    first = staging.sync_local_input(STORE, data, dest)
    assert (first.uploaded, first.deleted) == (2, 0)
    again = staging.sync_local_input(STORE, data, dest)
    assert (again.uploaded, again.deleted) == (0, 0)
    (data / "a.txt").write_text("changed")
    (data / "sub" / "b.txt").unlink()
    third = staging.sync_local_input(STORE, data, dest)
    assert (third.uploaded, third.deleted) == (1, 1)
    keys = [relative_key(ObjectURI.parse(dest).key, o.key) for o in STORE.list(dest)]
    assert keys == ["a.txt"]


# --- sync: concurrent uploads, and unchanged files not read again -----------------------------


@pytest.fixture
def opened(tmp_path: Path) -> Iterator[list[str]]:
    """Every file under ``tmp_path/data`` this process opens while the test runs (Python's
    ``open`` audit event: hashing, copying, s3transfer's reads alike)."""
    found: list[str] = []
    audit = _OpenAudit.installed()
    audit.watching = (str(tmp_path / "data") + os.sep, found)
    try:
        yield found
    finally:
        audit.watching = None


class _OpenAudit:
    """One audit hook (hooks cannot be removed), installed by the first test that asks,
    recording only while a test watches."""

    _installed: _OpenAudit | None = None

    def __init__(self) -> None:
        self.watching: tuple[str, list[str]] | None = None
        sys.addaudithook(self._event)

    @classmethod
    def installed(cls) -> _OpenAudit:
        if cls._installed is None:
            cls._installed = cls()
        return cls._installed

    def _event(self, event: str, args: tuple[object, ...]) -> None:
        watching = self.watching
        if watching is not None and event == "open" and isinstance(args[0], str):
            if args[0].startswith(watching[0]):
                watching[1].append(os.path.relpath(args[0], watching[0]))


def _tree_of(root: Path, files: dict[str, bytes]) -> dict[str, Path]:
    paths = {}
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        paths[rel] = path
    return paths


def _stored(dest: str) -> dict[str, bytes]:
    base = ObjectURI.parse(dest).key
    return {relative_key(base, o.key): Path(o.key).read_bytes() for o in STORE.list(dest)}


def test_unchanged_files_are_not_read_again_and_changed_ones_are_sent(tmp_path, opened):
    """The digest cache under .ssm_rules gives an unchanged file's SHA-256 without opening
    it; a change of content is found even when size and mtime were kept (ctime, inode)."""
    data = tmp_path / "data"
    contents = {f"{name}.txt": name.encode() * 10 for name in "abcde"}
    _tree_of(data, contents)
    dest = file_uri(tmp_path / "store" / "data", directory=True)
    cache = tmp_path / ".ssm_rules" / CACHE_FILE

    def sync() -> tuple[staging.SyncResult, int]:  # each a new run: the cache read from disk
        digests = DigestCache(cache, racy_ns=0)
        opened.clear()
        return staging.sync_local_input(STORE, data, dest, digests), digests.hashed

    first, hashed = sync()
    assert (first.uploaded, first.deleted, hashed) == (5, 0, 5)
    recorded = json.loads(cache.read_text())["files"]
    assert recorded[str(data / "a.txt")][0] == 10 and recorded[str(data / "a.txt")][-1] == (
        hashlib.sha256(b"a" * 10).hexdigest()
    )
    again, hashed = sync()
    assert (again.uploaded, again.deleted, hashed) == (0, 0, 0) and opened == []

    a = data / "a.txt"  # same size, other bytes, its mtime set back (cp -p, rsync -t, tar x)
    st = a.stat()
    a.write_bytes(b"A" * 10)
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns))
    (data / "b.txt").write_bytes(b"longer b")  # another size
    os.utime(data / "c.txt")  # touched: read again, but the same bytes are not sent
    (data / "d.txt").unlink()
    third, hashed = sync()
    assert (third.uploaded, third.deleted, hashed) == (2, 1, 3)
    assert sorted(set(opened)) == ["a.txt", "b.txt", "c.txt"]  # e.txt: not opened
    assert _stored(dest) == {
        "a.txt": b"A" * 10,
        "b.txt": b"longer b",
        "c.txt": b"c" * 10,
        "e.txt": b"e" * 10,
    }
    fourth, hashed = sync()
    assert (fourth.uploaded, fourth.deleted, hashed) == (0, 0, 0)


def test_a_file_hashed_right_after_it_was_written_is_read_again_next_time(tmp_path, opened):
    """Within RACY_NS of its mtime/ctime, a write in the same timestamp tick could change a
    file without changing its stat: such a file is not remembered (git's racy-clean rule)."""
    data = tmp_path / "data"
    _tree_of(data, {"fresh.txt": b"just written"})
    dest = file_uri(tmp_path / "store" / "data", directory=True)
    digests = DigestCache(tmp_path / ".ssm_rules" / CACHE_FILE)  # the default margin
    staging.sync_local_input(STORE, data, dest, digests)
    staging.sync_local_input(STORE, data, dest, digests)
    assert digests.hashed == 2 and opened.count("fresh.txt") >= 2
    staging.sync_local_input(STORE, data, dest, DigestCache(digests.path))
    assert not digests.path.exists() or str(data / "fresh.txt") not in digests.path.read_text()


def test_an_unreadable_digest_cache_means_every_file_is_hashed(tmp_path):
    data = tmp_path / "data"
    _tree_of(data, {"x.txt": b"x", "y.txt": b"y"})
    dest = file_uri(tmp_path / "store" / "data", directory=True)
    cache = tmp_path / ".ssm_rules" / CACHE_FILE
    staging.sync_local_input(STORE, data, dest, DigestCache(cache, racy_ns=0))
    for broken in ("{not json", json.dumps({"format": 0, "files": {}}), '{"files": [1]}'):
        cache.write_text(broken)
        digests = DigestCache(cache, racy_ns=0)
        result = staging.sync_local_input(STORE, data, dest, digests)
        assert (result.uploaded, digests.hashed) == (0, 2)
    assert json.loads(cache.read_text())["format"] == 1  # rewritten whole


def test_concurrent_sync_to_s3_stores_what_one_upload_after_another_did(
    tmp_path, aws, bucket, api_calls
):
    """upload_many (one TransferManager for all files) leaves the same objects, sizes and
    ETags (multipart ones too) as S3Objects.upload file by file; a re-sync sends nothing, and
    what went is deleted in one DeleteObjects."""
    from ssm_rules.objects import MULTIPART_BYTES, S3Objects

    s3 = aws.client("s3")
    store = S3Objects(client=s3)
    files = {f"part-{i % 3}/f{i:02d}.bin": os.urandom(97 * i + 1) for i in range(24)}
    files["big.bin"] = os.urandom(MULTIPART_BYTES + 1234)  # two parts
    paths = _tree_of(tmp_path / "data", files)
    api_calls.clear()
    result = staging.sync_local_input(store, tmp_path / "data", f"s3://{bucket}/sync/data/")
    assert (result.uploaded, result.deleted) == (25, 0)
    assert api_calls.count("s3", "PutObject", f"/{bucket}/sync/data/") == 24
    assert api_calls.count("s3", "UploadPart") == 2
    for rel, path in paths.items():
        store.upload(path, f"s3://{bucket}/serial/data/{rel}")

    def objects(prefix: str) -> dict[str, tuple[int, str, bytes]]:
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]
        return {
            o["Key"][len(prefix) :]: (
                o["Size"],
                o["ETag"],
                s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read(),
            )
            for o in listed
        }

    synced = objects("sync/data/")
    assert synced == objects("serial/data/")
    assert {rel: body for rel, (_, _, body) in synced.items()} == files
    assert synced["big.bin"][1].endswith('-2"')  # multipart: 8 MB parts, as awscli's

    api_calls.clear()
    again = staging.sync_local_input(store, tmp_path / "data", f"s3://{bucket}/sync/data/")
    assert (again.uploaded, again.deleted) == (0, 0)
    # the sidecar read whole (one GetObject), the listing; nothing sent
    assert api_calls.counts("s3") == {"s3.GetObject": 1, "s3.ListObjectsV2": 1}
    for rel in ("part-0/f00.bin", "part-1/f01.bin", "big.bin"):
        paths[rel].unlink()
    api_calls.clear()
    third = staging.sync_local_input(store, tmp_path / "data", f"s3://{bucket}/sync/data/")
    assert (third.uploaded, third.deleted) == (0, 3)
    assert (
        api_calls.count("s3", "DeleteObjects") == 1 and api_calls.count("s3", "DeleteObject") == 0
    )
    assert len(objects("sync/data/")) == 22


def test_copy_many_on_s3_copies_every_object_and_names_a_missing_one(aws, bucket):
    from ssm_rules.objects import ObjectStoreError, S3Objects

    s3 = aws.client("s3")
    store = S3Objects(client=s3)
    for i in range(12):
        s3.put_object(Bucket=bucket, Key=f"src/{i}.txt", Body=f"object {i}".encode())
    pairs = [(f"s3://{bucket}/src/{i}.txt", f"s3://{bucket}/dst/{i}.txt") for i in range(12)]
    assert store.copy_many(pairs) == 12
    for i in range(12):
        body = s3.get_object(Bucket=bucket, Key=f"dst/{i}.txt")["Body"].read()
        assert body == f"object {i}".encode()
    missing = [(f"s3://{bucket}/src/nope.txt", f"s3://{bucket}/dst/nope.txt")]
    with pytest.raises(
        ObjectStoreError, match=rf"copying s3://{bucket}/src/nope.txt to .*CopyObject"
    ):
        store.copy_many(pairs[:2] + missing)


def _evil_tar(path: Path) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name in ("../escape.txt", "/abs.txt", "ok.txt"):
            info = tarfile.TarInfo(name)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))


def test_extract_refuses_path_traversal(tmp_path):
    evil = tmp_path / "model.tar.gz"
    _evil_tar(evil)
    with pytest.raises(tarfile.TarError):
        extract(evil, tmp_path / "dest")
    assert not (tmp_path / "escape.txt").exists() and not Path("/abs.txt").exists()


def test_extract_refuses_links_out(tmp_path):
    evil = tmp_path / "model.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        link = tarfile.TarInfo("passwd")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tar.addfile(link)
    with pytest.raises(tarfile.TarError):
        extract(evil, tmp_path / "dest")


def test_snakemake_internals_we_rely_on():
    """Guards _snakemake_internals: if Snakemake renames these, this fails first."""
    from snakemake.path_modifier import PATH_MODIFIER_FLAG, PathModifier

    path = local_input("data/x")
    assert path.flags[PATH_MODIFIER_FLAG] and keep_local_path("y").flags[PATH_MODIFIER_FLAG]
    # PathModifier.modify returns a path flagged as modified untouched (no default storage)
    assert "get_flag_value(path, PATH_MODIFIER_FLAG)" in __import__("inspect").getsource(
        PathModifier.modify
    )
    nl = named_list("input", [("a", "/p/a"), ("b", "/p/b1"), ("b", "/p/b2"), (None, "/p/c")])
    assert (nl.a, str(nl.b), str(nl)) == ("/p/a", "/p/b1 /p/b2", "/p/a /p/b1 /p/b2 /p/c")
    assert named_items(nl) == (("a", "/p/a"), ("b", "/p/b1"), ("b", "/p/b2"), (None, "/p/c"))


# --- promotion of outputs a job left empty -----------------------------------------------------
def _promotion_case(tmp_path: Path, job_type: str, *outputs: tuple[str, object]):
    from ssm_rules.requests import Placement

    items = tuple(io_item(str(value), name=name, value=value) for name, value in outputs)
    resources = {"job_type": job_type} if job_type == "processing" else {}
    spec = build_spec(
        view(tmp_path, outputs=items, resources=resources),
        backend="local",
        default_instance_type="ml.m5.large",
    )
    jobs = file_uri(tmp_path / "jobs", directory=True)
    place = Placement("job-1", "", {}, jobs, "", "", "us-east-1")
    return spec, place, ObjectURI.parse(staging.carrier_uri(spec, place))


def _put_model(tmp_path: Path, carrier: ObjectURI, members: dict[str, bytes]) -> None:
    """The job's model.tar.gz, where the job leaves it."""
    local = tmp_path / "upload.tar.gz"
    with tarfile.open(local, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    STORE.upload(local, str(carrier.join("model.tar.gz")))


def test_empty_output_data_of_a_completed_training_job_is_an_empty_tarball(tmp_path):
    """SageMaker may upload no output.tar.gz for a job that wrote no output data: the declared
    output_data() is then a valid, empty tar.gz; an empty model.tar.gz gives a warning."""
    from ssm_rules.rules import model, output_data

    spec, place, carrier = _promotion_case(
        tmp_path, "training", ("m", model("res/model.tar.gz")), ("o", output_data("res/out.tar.gz"))
    )
    _put_model(tmp_path, carrier, {})  # SageMaker always uploads model.tar.gz
    assert staging.carriers_present(lambda _uri: STORE, spec, place)  # a rerun may reuse it
    warnings = staging.promote_outputs(lambda _uri: STORE, spec, place)
    with tarfile.open(tmp_path / "res" / "out.tar.gz") as tar:
        assert tar.getmembers() == []
    assert len(warnings) == 1 and "SM_MODEL_DIR" in warnings[0] and "job-1" in warnings[0]
    # a model with files: no warning
    _put_model(tmp_path, carrier, {"weights.bin": b"w"})
    assert staging.promote_outputs(lambda _uri: STORE, spec, place) == []


@pytest.mark.parametrize("job_type", ["training", "processing"])
def test_a_missing_output_tarball_is_an_error_where_it_cannot_mean_empty(tmp_path, job_type):
    """Plain file outputs travel inside a training job's output.tar.gz, and our launcher
    always writes a processing job's: without it nothing is promoted."""
    from ssm_rules.rules import model, output_data

    outputs = [("m", model("res/model.tar.gz")), ("o", output_data("res/out.tar.gz"))]
    if job_type == "training":
        outputs.append(("f", "res/metrics.json"))
    spec, place, carrier = _promotion_case(tmp_path, job_type, *outputs)
    _put_model(tmp_path, carrier, {"weights.bin": b"w"})
    assert not staging.carriers_present(lambda _uri: STORE, spec, place)
    with pytest.raises(staging.PromotionError, match="output.tar.gz.*nothing was promoted"):
        staging.promote_outputs(lambda _uri: STORE, spec, place)
    assert not (tmp_path / "res").exists()


def test_snakemake_forcing_as_is_forced_rebuilds_it():
    """Guards is_forced: Snakemake's forced flag mixes the user's forcing with
    --rerun-incomplete's, and is_forced rebuilds the user's part as Workflow._prepare_dag
    does. If Snakemake changes either, this fails first."""
    from inspect import getsource

    import snakemake.api  # noqa: F401 — first: it imports dag and workflow in working order
    from snakemake.dag import DAG
    from snakemake.settings.types import DAGSettings
    from snakemake.workflow import Workflow

    for name in ("forcerun", "forcetargets", "target_jobs", "target_files_omit_workdir_adjustment"):
        assert hasattr(DAGSettings(), name), name
    assert "self.forcefiles.update(incomplete_files)" in getsource(DAG.check_incomplete)
    needrun = getsource(DAG.update_needrun)
    assert "job not in self.omitforce" in needrun and "job.rule in self.forcerules" in needrun
    assert "not self.forcefiles.isdisjoint(job.output)" in needrun
    prepare = getsource(Workflow._prepare_dag)
    for line in (
        "forcefiles = set(files(self.dag_settings.forcerun))",
        "forcefiles.update(targetfiles)",
        "self.modifier.path_modifier.apply_default_storage",
        "else os.path.relpath(f)",
    ):
        assert line in prepare, line
    init = getsource(DAG.init)
    assert "self.forcefiles.update(job.output)" in init and "spec.wildcards_dict" in init


def test_scratch_files_live_in_the_run_directory_and_dead_clients_are_cleaned(
    tmp_path, monkeypatch
):
    import os
    import subprocess

    from ssm_rules import scratch

    monkeypatch.setattr(scratch, "_root", None)  # restored after: other tests use TMPDIR
    ended = subprocess.Popen(["true"])  # noqa: S607 — a client pid that is no longer alive
    ended.wait()
    root = tmp_path / ".ssm_rules" / "tmp"
    (root / str(ended.pid) / "ssm-promote-x").mkdir(parents=True)
    (root / str(os.getppid())).mkdir()  # a client still running here
    assert scratch.use(tmp_path / ".ssm_rules") == [root / str(ended.pid)]
    assert sorted(p.name for p in root.iterdir()) == [str(os.getppid())]
    seen: list[Path] = []
    upload = LocalObjects.upload
    monkeypatch.setattr(
        LocalObjects, "upload", lambda self, path, uri: (seen.append(path), upload(self, path, uri))
    )
    staging.upload_text(LocalObjects(), "hi", file_uri(tmp_path / "out" / "t.txt"))
    assert [p.parent for p in seen] == [root / str(os.getpid())]
    assert (tmp_path / "out" / "t.txt").read_text() == "hi"
