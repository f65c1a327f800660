"""requirements.txt on the local backend: installed as a framework container would, once per
requirements hash, into a cached environment layered over this machine's Python.

Everything installs offline: a tiny wheel built by the test, found with ``--no-index
--find-links``; the installs are real ``pip`` runs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest

from ssm_rules.backends.base import JobState
from ssm_rules.backends.local import LocalBackend
from ssm_rules.backends.local import requirements_env as renv
from ssm_rules.backends.local.context import local_context
from ssm_rules.settings import ExecutorSettings
from tests.e2e import LOCAL_ARGS, Workflow
from tests.test_local_backend import code_tar, log_text, members, run, training
from worker_toolkit import launcher
from worker_toolkit._requirements import failing_line
from worker_toolkit.task import TaskDescription


def build_wheel(where: Path, name: str = "tinypkg", version: str = "1.0", body: str = "") -> Path:
    """A pure-Python wheel whose module ``name`` has ``VERSION = version`` (and ``body``)."""
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f"VERSION = {version!r}\n{body}",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record = []
    where.mkdir(parents=True, exist_ok=True)
    path = where / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        for member, text in files.items():
            z.writestr(member, text)
            digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest())
            record.append(f"{member},sha256={digest.rstrip(b'=').decode()},{len(text)}")
        record.append(f"{dist}/RECORD,,")
        z.writestr(f"{dist}/RECORD", "\n".join(record) + "\n")
    return path


@pytest.fixture
def wheels(tmp_path: Path) -> Path:
    where = tmp_path / "wheels"
    build_wheel(where)
    return where


def requirements(wheels: Path, *lines: str) -> str:
    return "\n".join(["--no-index", f"--find-links {wheels}", *lines]) + "\n"


# --- the environment ----------------------------------------------------------------------


def test_installed_once_per_hash_layered_over_this_python(tmp_path: Path, wheels: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    # boto3 is in the environment the jobs run with: satisfied, so not installed again
    (code / "requirements.txt").write_text(requirements(wheels, "tinypkg==1.0", "boto3"))
    cache = tmp_path / "envs"

    first = renv.ensure(cache, code / "requirements.txt")
    assert first.installed
    probe = "import boto3, tinypkg, sys; print(tinypkg.VERSION, tinypkg.__file__, boto3.__file__)"
    out = subprocess.run([first.python, "-c", probe], capture_output=True, text=True, check=True)
    version, tiny_file, boto3_file = out.stdout.split()
    assert version == "1.0" and tiny_file.startswith(str(first.path))
    assert not boto3_file.startswith(str(first.path))  # from the layer below
    assert "tinypkg" in first.log

    again = renv.ensure(cache, code / "requirements.txt")
    assert (again.path, again.installed) == (first.path, False)
    assert renv.cached(cache, code / "requirements.txt") == again

    (code / "requirements.txt").write_text(requirements(wheels, "tinypkg"))
    other = renv.ensure(cache, code / "requirements.txt")
    assert other.installed and other.path != first.path


def test_a_rebuilt_local_wheel_is_a_new_environment(tmp_path: Path) -> None:
    """Same requirements text, same version, other code in the wheel it names: a fresh
    container would install the new code, so the cache must not serve the old."""
    code = tmp_path / "code"
    build_wheel(code / "wheels", body="FLAVOUR = 'old'\n")
    (code / "requirements.txt").write_text("./wheels/tinypkg-1.0-py3-none-any.whl\n")
    old = renv.ensure(tmp_path / "envs", code / "requirements.txt")
    build_wheel(code / "wheels", body="FLAVOUR = 'new'\n")
    new = renv.ensure(tmp_path / "envs", code / "requirements.txt")
    assert old.installed and new.installed and new.path != old.path
    probe = [new.python, "-c", "import tinypkg; print(tinypkg.FLAVOUR)"]
    assert subprocess.run(probe, capture_output=True, text=True).stdout.strip() == "new"


def test_concurrent_installs_of_one_hash_do_not_race(tmp_path: Path, wheels: Path) -> None:
    (tmp_path / "requirements.txt").write_text(requirements(wheels, "tinypkg"))
    script = (
        "import json, sys; from pathlib import Path;"
        "from ssm_rules.backends.local import requirements_env as r;"
        "e = r.ensure(Path(sys.argv[1]), Path(sys.argv[2]));"
        "print(json.dumps([str(e.path), e.installed]))"
    )
    argv = [
        sys.executable,
        "-c",
        script,
        str(tmp_path / "envs"),
        str(tmp_path / "requirements.txt"),
    ]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) for _ in range(3)]
    results = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert len({path for path, _ in results}) == 1
    assert sorted(installed for _, installed in results) == [False, False, True]


def test_failed_install_names_the_line(tmp_path: Path, wheels: Path) -> None:
    (tmp_path / "requirements.txt").write_text(
        requirements(wheels, "tinypkg", "# the next one does not exist", "No_Such.Pkg==2.0")
    )
    with pytest.raises(renv.RequirementsError) as caught:
        renv.ensure(tmp_path / "envs", tmp_path / "requirements.txt")
    text = str(caught.value)
    assert text.startswith("InstallRequirementsError:\nExitCode 1\n")
    assert "No matching distribution found for No_Such.Pkg==2.0" in text
    assert 'ExtraInfo "requirements.txt line 5: No_Such.Pkg==2.0"' in text
    assert "-m pip install -r requirements.txt" in text
    # nothing half-built is taken for an environment
    assert renv.cached(tmp_path / "envs", tmp_path / "requirements.txt") is None


def test_a_stop_kills_the_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pip hangs on an index that never answers; the stop comes once pip has asked it. Only a
    kill ends the install as stopped: pip left to itself times out (120 s) and fails."""
    index = socket.create_server(("127.0.0.1", 0))
    asked, hung_up = threading.Event(), threading.Event()

    def never_answer() -> None:
        conn, _ = index.accept()
        asked.set()
        with conn:
            while conn.recv(65536):
                pass
        hung_up.set()  # pip's end of the connection closed: pip is gone

    threading.Thread(target=never_answer, daemon=True).start()
    monkeypatch.setenv("PIP_TIMEOUT", "120")
    monkeypatch.setenv("PIP_RETRIES", "0")
    port = index.getsockname()[1]
    (tmp_path / "requirements.txt").write_text(f"--index-url http://127.0.0.1:{port}/\ntinypkg\n")
    try:
        with pytest.raises(renv.InstallInterrupted):
            renv.ensure(tmp_path / "envs", tmp_path / "requirements.txt", asked.is_set)
        assert hung_up.wait(60)
    finally:
        index.close()
    assert renv.cached(tmp_path / "envs", tmp_path / "requirements.txt") is None


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            "ERROR: Could not find a version that satisfies the requirement torchx>=9 "
            "(from versions: none)\nERROR: No matching distribution found for torchx>=9",
            "requirements.txt line 2: torchx>=9",
        ),
        (  # pip's build failure names the project with normalisation of its own
            "  error: subprocess-exited-with-error\n"
            "ERROR: Failed to build installable wheels for some pyproject.toml based "
            "projects (my-lib)",
            "requirements.txt line 3: My_Lib @ file:///src/my_lib",
        ),
        ("ERROR: something else entirely", None),
    ],
)
def test_failing_line_from_pips_errors(error: str, expected: str | None) -> None:
    text = "numpy  # already there\ntorchx>=9\nMy_Lib @ file:///src/my_lib\n"
    assert failing_line(text, error) == expected


def _task(job_type: str) -> TaskDescription:
    return TaskDescription(kind="script", job_type=job_type, program="main.py")


def test_launcher_on_sagemaker_processing_reports_the_line(tmp_path: Path, wheels: Path) -> None:
    """Off the local backend the launcher pip-installs a processing job's requirements.txt
    itself (into the image's Python: only a failing, offline install is run here)."""
    (tmp_path / "requirements.txt").write_text(requirements(wheels, "nosuchpkg>=3"))
    env = {k: v for k, v in os.environ.items() if k != "SSM_LOCAL_BACKEND"}
    text = launcher.install_requirements(_task("processing"), tmp_path, env)
    assert text is not None and text.startswith("InstallRequirementsError:\nExitCode 1\n")
    assert 'ExtraInfo "requirements.txt line 3: nosuchpkg>=3"' in text
    assert launcher.install_requirements(_task("training"), tmp_path, env) is None
    local = {**env, "SSM_LOCAL_BACKEND": "1"}
    assert launcher.install_requirements(_task("processing"), tmp_path, local) is None


# --- jobs on the local backend --------------------------------------------------------------

IMPORTS_TINYPKG = """
    import os, sys
    try:
        import tinypkg
        found = tinypkg.VERSION
    except ImportError:
        found = "missing"
    open(os.path.join(os.environ["SM_MODEL_DIR"], "found.txt"), "w").write(found)
    print("tinypkg:", found, sys.executable)
"""


def test_training_job_gets_its_requirements_then_reuses_them(tmp_path: Path, wheels: Path) -> None:
    backend = LocalBackend(tmp_path / "jobs")
    files = {"train.py": IMPORTS_TINYPKG, "requirements.txt": requirements(wheels, "tinypkg")}
    for name in ("req-1", "req-2"):
        code = code_tar(tmp_path / name, files)
        st = run(backend, training(tmp_path, name, "train.py", code), timeout=60)
        assert st.state is JobState.COMPLETED, st.failure_reason
        out = tmp_path / "s3" / "out" / name / "output" / "model.tar.gz"
        assert members(out) == {"found.txt": "1.0"}
    first, second = log_text(backend, "req-1"), log_text(backend, "req-2")
    assert "Successfully installed tinypkg-1.0" in first
    assert "Successfully installed" not in second and "using the cached environment" in second
    env_dirs = [p for p in (tmp_path / "python-envs").iterdir() if p.is_dir()]
    assert len(env_dirs) == 1 and str(env_dirs[0]) in second


def test_failed_install_fails_the_job_with_the_line(tmp_path: Path, wheels: Path) -> None:
    backend = LocalBackend(tmp_path / "jobs")
    files = {"train.py": IMPORTS_TINYPKG, "requirements.txt": requirements(wheels, "nosuchpkg")}
    st = run(backend, training(tmp_path, "badreq-1", "train.py", code_tar(tmp_path, files)), 60)
    assert st.state is JobState.FAILED
    assert st.failure_reason is not None
    assert st.failure_reason.startswith("AlgorithmError: InstallRequirementsError:\nExitCode 1")
    assert 'ExtraInfo "requirements.txt line 3: nosuchpkg"' in st.failure_reason
    assert "No matching distribution found for nosuchpkg" in log_text(backend, "badreq-1")
    assert "tinypkg:" not in log_text(backend, "badreq-1")  # the program never ran


def test_skip_setting_runs_with_this_python(tmp_path: Path, wheels: Path) -> None:
    backend = LocalBackend(tmp_path / "jobs", skip_requirements=True)
    files = {"train.py": IMPORTS_TINYPKG, "requirements.txt": requirements(wheels, "nosuchpkg")}
    st = run(backend, training(tmp_path, "skip-1", "train.py", code_tar(tmp_path, files)))
    assert st.state is JobState.COMPLETED, st.failure_reason
    out = tmp_path / "s3" / "out" / "skip-1" / "output" / "model.tar.gz"
    assert members(out) == {"found.txt": "missing"}
    assert "not installing requirements.txt (SSM_LOCAL_SKIP_REQUIREMENTS" in log_text(
        backend, "skip-1"
    )
    assert not (tmp_path / "python-envs").exists()


SNAKEFILE = """
from ssm_rules import job

rule all:
    input: "out/prep.txt", "out/train.txt"

rule prep:
    output: "out/prep.txt"
    resources: job_type="processing"
    script: "code/use_tinypkg.py"

rule train:
    output: "out/train.txt"
    script: "code/use_tinypkg.py"

rule bad:
    output: "out/bad.txt"
    script: "badcode/use_tinypkg.py"
"""

USE_TINYPKG = """
import tinypkg
open(snakemake.output[0], "w").write(tinypkg.VERSION)
"""


@pytest.mark.slow  # a snakemake run
def test_processing_and_training_rules_share_one_install(tmp_path: Path, wheels: Path) -> None:
    """Through Snakemake and the plugin: the script's directory is the job's code; its
    requirements.txt is installed once for both rules (same hash), which run at the same
    time; a failed install is the rule's error."""
    wf = Workflow(tmp_path / "wf")
    wf.write("Snakefile", SNAKEFILE)
    wf.write("code/use_tinypkg.py", USE_TINYPKG)
    wf.write("code/requirements.txt", requirements(wheels, "tinypkg"))
    wf.write("badcode/use_tinypkg.py", USE_TINYPKG)
    wf.write("badcode/requirements.txt", requirements(wheels, "tinypkg", "nosuchpkg"))
    done = wf.run(
        *LOCAL_ARGS, "--keep-going", "out/prep.txt", "out/train.txt", "out/bad.txt", check=False
    )
    assert wf.path("out/prep.txt").read_text() == "1.0"
    assert wf.path("out/train.txt").read_text() == "1.0"
    assert done.returncode != 0 and not wf.path("out/bad.txt").exists()
    assert "InstallRequirementsError" in done.stderr
    assert 'ExtraInfo "requirements.txt line 4: nosuchpkg"' in done.stderr
    envs = wf.path(".ssm_rules/python-envs")
    assert len([p for p in envs.iterdir() if p.is_dir()]) == 2  # code/ and badcode/ (failed)
    requests = [json.loads(p.read_text()) for p in wf.root.glob(".ssm_rules/jobs/*/request.json")]
    processing = [r["ProcessingJobName"] for r in requests if "ProcessingJobName" in r]
    assert len(requests) == 3 and len(processing) == 1 and processing[0].startswith("prep-")
    logs = [p.read_text() for p in wf.root.glob(".ssm_rules/jobs/*/logs/algo-1.log")]
    assert len([text for text in logs if "Successfully installed tinypkg" in text]) == 1
    assert len([text for text in logs if "using the cached environment" in text]) == 1


def test_skip_setting_reaches_the_local_backend(tmp_path: Path) -> None:
    settings = ExecutorSettings(local_skip_requirements=True)
    assert local_context(settings, tmp_path).backend.skip_requirements is True
    assert local_context(ExecutorSettings(), tmp_path).backend.skip_requirements is False
