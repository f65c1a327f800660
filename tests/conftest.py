"""Shared fixtures: a moto server on 127.0.0.1 whose SageMaker jobs really run.

- ``moto_server`` (session): the server (:class:`tests.moto_sagemaker.MotoServer`), started
  once, in a thread of this process. Use ``aws`` instead.
- ``aws`` (per test): the same server, emptied (``POST /moto-api/reset``), with the hook
  installed for this test (jobs run under its ``tmp_path``), and ``AWS_ENDPOINT_URL`` + test credentials
  in ``os.environ`` for this test (so in-process boto3, ``snakemake`` subprocesses and the
  local runners all reach moto). ``aws.client("s3")`` gives a plain boto3 client.
- ``api_calls`` (per test): every request the server received since the test started,
  ``api_calls.count("sagemaker", "DescribeTrainingJob")``, ``api_calls.counts("s3")``.
- ``aws.faults`` (per test, emptied): server-side faults, ``aws.faults.add("sagemaker",
  "CreateTrainingJob", "throttle", times=2)`` (:mod:`tests.moto_faults`).
- ``bucket`` (per test): an empty bucket in moto's S3; its name.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.moto_sagemaker import CLEARED_ENV, ApiCalls, MotoServer

BUCKET = "ssm-test-bucket"


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = MotoServer(tmp_path_factory.mktemp("moto-sagemaker"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def aws(
    moto_server: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[MotoServer]:
    for name in CLEARED_ENV:
        monkeypatch.delenv(name, raising=False)
    for name, value in moto_server.env().items():
        monkeypatch.setenv(name, value)
    # The hook's runners inherit this: a stopped program that ignores SIGTERM (a script
    # without a handler is pid 1 of its host) is killed after 3 s, not SageMaker's 120 s.
    monkeypatch.setenv("SSM_STOP_GRACE_SECONDS", "3")
    # moto's classes are patched only while a test that asked for jobs that run is running
    moto_server.hook.install()
    moto_server.reset()
    moto_server.hook.reset(tmp_path / "sagemaker-jobs")
    moto_server.calls.clear()
    moto_server.faults.clear()
    _forget_cached_sessions()
    try:
        yield moto_server
    finally:
        # No runner outlives its test: it would call the server during the next one.
        moto_server.faults.clear()
        moto_server.hook.stop_all()
        try:
            moto_server.hook.wait_all()
        finally:
            moto_server.hook.uninstall()
        _forget_cached_sessions()


def _forget_cached_sessions() -> None:
    """ssm_rules caches its boto3 session, which caches the credentials it first resolved:
    a session made outside this environment must not be reused inside it, nor after."""
    from ssm_rules import aws_clients

    aws_clients.forget_sessions()


@pytest.fixture
def api_calls(aws: MotoServer) -> ApiCalls:
    return aws.calls


@pytest.fixture
def bucket(aws: MotoServer) -> str:
    aws.client("s3").create_bucket(Bucket=BUCKET)
    return BUCKET


@pytest.fixture(scope="session", autouse=True)
def nothing_written_to_the_real_opt_ml() -> Iterator[None]:
    """The local backend mounts each host's sandbox at /opt/ml in a private namespace (or
    re-roots paths): no job, launcher or test may ever write into this machine's /opt/ml,
    files or directories (/opt/ml itself is the backend's mount point)."""
    before = _entries_under(Path("/opt/ml"))
    yield
    leaked = _entries_under(Path("/opt/ml")) - before
    assert not leaked, f"written into the real /opt/ml: {sorted(leaked)[:10]}"


def _entries_under(root: Path) -> set[str]:
    return {str(p) for p in root.rglob("*")} if root.is_dir() else set()


@pytest.fixture(scope="session")
def _known_image_uris(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The image URIs resolved by the tests so far (``image-uris.json`` of ssm_rules.images)."""
    return tmp_path_factory.mktemp("image-uris") / "image-uris.json"


@pytest.fixture
def cache_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _known_image_uris: Path
) -> Iterator[Path]:
    """An empty ``$XDG_CACHE_HOME`` for this test (no price list cached) but for the image URIs
    earlier tests resolved: resolving one imports sagemaker-core, 6 s of CPU per process."""
    import json
    import shutil

    from ssm_rules import images

    home = tmp_path / "cache-home"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    mine = images.cache_file()
    mine.parent.mkdir(parents=True)
    if _known_image_uris.is_file():
        shutil.copy(_known_image_uris, mine)
    yield home
    if mine.is_file():
        known = json.loads(_known_image_uris.read_text()) if _known_image_uris.is_file() else {}
        try:
            known.update(json.loads(mine.read_text()))
        except ValueError:
            return  # a test that wrote a broken cache on purpose
        _known_image_uris.write_text(json.dumps(known))


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No AWS credentials anywhere, and an endpoint that answers nothing (never the real AWS)."""
    from ssm_rules import aws_clients

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    aws_clients.forget_sessions()
    yield
    aws_clients.forget_sessions()
