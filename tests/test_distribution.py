"""Distributed training: job(distribution=...) is sent as the SageMaker SDK sends it, refused
where SageMaker (or sense) would refuse it, and on the local backend the hosts of a job reach
each other by name (algo-1..N), so a program that connects across hosts works."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from ssm_rules.backends.local.hosts import host_addresses
from ssm_rules.requests import build_request
from ssm_rules.rules import job
from ssm_rules.spec import SpecError
from tests.e2e import LOCAL_ARGS, Workflow
from tests.test_requests import place
from tests.test_spec import spec_of


def _spec(tmp_path, distribution, **resources):
    (tmp_path / "t.py").write_text("print(1)\n")
    return spec_of(
        tmp_path,
        body="script",
        script="t.py",
        shell_template=None,
        params=(("sm", job(distribution=distribution, framework_version="2.8")),),
        resources={"instance_type": "ml.g5.xlarge", "instance_count": 2, **resources},
    )


def _hps(spec) -> dict[str, str]:
    return build_request(spec, place()).body["HyperParameters"]


def test_torch_distributed_sends_the_sdks_hyperparameters(tmp_path):
    hps = _hps(_spec(tmp_path, {"torch_distributed": {"enabled": True}}))
    assert hps["sagemaker_torch_distributed_enabled"] == "true"
    assert hps["sagemaker_instance_type"] == '"ml.g5.xlarge"'


def test_mpi_sends_processes_per_host_and_options(tmp_path):
    dist = {"mpi": {"enabled": True, "processes_per_host": 4, "custom_mpi_options": "-x A"}}
    hps = _hps(_spec(tmp_path, dist, instance_type="ml.c5.xlarge", instance_count=1))
    assert hps["sagemaker_mpi_enabled"] == "true"
    assert hps["sagemaker_mpi_num_of_processes_per_host"] == "4"
    assert hps["sagemaker_mpi_custom_mpi_options"] == '"-x A"'


@pytest.mark.parametrize(
    ("distribution", "resources", "message"),
    [
        ({"torch_distrib": {"enabled": True}}, {}, "did you mean 'torch_distributed'"),
        ({"mpi": True}, {}, r"each strategy takes a dict"),
        ({"mpi": {"enabled": False}}, {}, "enables nothing"),
        ({"parameter_server": {"enabled": True}}, {"instance_count": 1}, "instance_count>=2"),
        (
            {"torch_distributed": {"enabled": True}},
            {"instance_type": "ml.m5.xlarge", "instance_count": 1},
            "runs a single worker",
        ),
        (
            {"torch_distributed": {"enabled": True}},
            {"instance_type": "ml.m5.xlarge"},
            "supported only for GPU and Trainium",
        ),
        (
            {"torch_distributed": {"enabled": True}},
            {"job_type": "processing", "spot": 0},
            "on a processing rule",
        ),
    ],
)
def test_distribution_mistakes_are_refused_before_anything_runs(
    tmp_path, distribution, resources, message
):
    with pytest.raises(SpecError, match=message):
        _spec(tmp_path, distribution, **resources)


def test_each_job_has_its_own_block_of_host_addresses():
    a = host_addresses("train-1", ["algo-1", "algo-2"])
    b = host_addresses("train-2", ["algo-1", "algo-2"])
    assert a["algo-1"].startswith("127.") and a["algo-1"] != a["algo-2"]
    assert a["algo-1"].rsplit(".", 1)[0] != b["algo-1"].rsplit(".", 1)[0]


# algo-1 serves, algo-2 connects to it by name and says who it is; algo-1 keeps what it heard
CROSS_HOST_PY = """
import json, os, pathlib, socket, sys, time
from worker_toolkit import worker_lib
cfg = worker_lib.WorkerConfig()
port = int(cfg.hps["port"])
me = os.environ["SM_CURRENT_HOST"]
assert socket.gethostname() == me, (socket.gethostname(), me)
hps = json.loads(pathlib.Path("/opt/ml/input/config/hyperparameters.json").read_text())
if me == "algo-1":
    srv = socket.create_server(("0.0.0.0", port))
    srv.settimeout(60)
    conn, _ = srv.accept()
    heard = conn.recv(100).decode()
    out = {"heard": heard, "mpi": hps.get("sagemaker_mpi_enabled"), "argv": sys.argv[1:]}
    pathlib.Path(snakemake.output[0]).write_text(json.dumps(out))
else:
    for _ in range(200):
        try:
            with socket.create_connection(("algo-1", port), timeout=2) as c:
                c.sendall(f"hello from {socket.gethostname()}".encode())
            break
        except OSError:
            time.sleep(0.1)
    else:
        sys.exit("could not reach algo-1")
"""


@pytest.mark.slow
def test_hosts_reach_each_other_by_name_on_the_local_backend(tmp_path: Path) -> None:
    from ssm_rules.backends.local.hosts import MountMode, mount_mode

    if mount_mode() is MountMode.NONE:
        pytest.skip("no mount namespaces here: hosts cannot be given names")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    wf = Workflow(tmp_path)
    wf.write(
        "Snakefile",
        f"""
from ssm_rules import job
rule pair:
    output: "heard.json"
    params: sagemaker=job(distribution={{"mpi": {{"enabled": True, "processes_per_host": 2}}}}), port={port}
    resources: instance_count=2, instance_type="ml.c5.xlarge"
    log: "pair.log"
    script: "cross.py"
""",
    )
    wf.write("cross.py", CROSS_HOST_PY)
    wf.run(*LOCAL_ARGS)
    heard = json.loads(wf.path("heard.json").read_text())
    assert heard["heard"] == "hello from algo-2"
    assert heard["mpi"] == "true" and heard["argv"] == ["--port", str(port)]
    assert "no torchrun/mpirun/parameter server is started here" in wf.path("pair.log").read_text()
