"""Warm pools for chains of on-demand training jobs: the pure planning (which job keeps a pool,
for whom), the keep_alive_mins resource, the request, the run's bookkeeping (quota fallback,
reuse, ending the pools nothing takes) and the local backend's WarmPoolStatus lifecycle."""

from __future__ import annotations

import datetime
import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from ssm_rules.backends.base import (
    JobRequest,
    JobState,
    JobStatus,
    JobType,
    WarmPoolQuotaError,
    typed_fields,
)
from ssm_rules.backends.local import LocalBackend
from ssm_rules.backends.local import warm_pools as local_pools
from ssm_rules.backends.local.jobdir import JobDir, now_iso, write_json_atomic
from ssm_rules.backends.local.validation import ValidationError, validate
from ssm_rules.budget import Budget, billed_instance_seconds
from ssm_rules.pricing import Prices, PriceTable
from ssm_rules.requests import build_request
from ssm_rules.spec import build_spec
from ssm_rules.warm_pools import (
    DEFAULT_KEEP_ALIVE_MINS,
    PlannedPool,
    WarmPools,
    plan_of_jobs,
    plan_pools,
    pool_key,
    still_to_follow,
    with_keep_alive,
)
from tests.e2e import LOCAL_ARGS, Workflow, aws_args
from tests.jobviews import view
from tests.test_requests import place


def body(**changes: Any) -> dict[str, Any]:
    b: dict[str, Any] = {
        "TrainingJobName": "train-1",
        "RoleArn": "arn:aws:iam::1:role/r",
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30},
        "EnableManagedSpotTraining": False,
    }
    for k, v in changes.items():
        if k in ("InstanceType", "InstanceCount", "VolumeSizeInGB", "VolumeKmsKeyId"):
            b["ResourceConfig"][k] = v
        else:
            b[k] = v
    return b


# --- which requests match (AWS's "Matching training jobs") ----------------------------------


def test_pool_key_holds_what_aws_matches_on():
    key = pool_key(JobType.TRAINING, body())
    assert key == pool_key(JobType.TRAINING, body(HyperParameters={"lr": "0.1"}))
    vpc = {"Subnets": ["s-1", "s-2"], "SecurityGroupIds": ["g"]}
    swapped = {"Subnets": ["s-2", "s-1"], "SecurityGroupIds": ["g"]}
    assert pool_key(JobType.TRAINING, body(VpcConfig=vpc)) == pool_key(
        JobType.TRAINING, body(VpcConfig=swapped)
    )
    for change in (
        {"RoleArn": "arn:aws:iam::1:role/other"},
        {"InstanceType": "ml.m5.xlarge"},
        {"InstanceCount": 2},
        {"VolumeSizeInGB": 50},
        {"VolumeKmsKeyId": "k"},
        {"VpcConfig": vpc},
        {"EnableNetworkIsolation": True},
        {"EnableInterContainerTrafficEncryption": True},
    ):
        assert pool_key(JobType.TRAINING, body(**change)) != key, change


def test_spot_processing_and_heterogeneous_jobs_have_no_pool():
    assert pool_key(JobType.TRAINING, body(EnableManagedSpotTraining=True)) is None
    assert pool_key(JobType.PROCESSING, body()) is None
    hetero = body()
    hetero["ResourceConfig"]["InstanceGroups"] = [{"InstanceGroupName": "a"}]
    assert pool_key(JobType.TRAINING, hetero) is None


# --- the plan: who keeps a pool, for whom ---------------------------------------------------

KEY = pool_key(JobType.TRAINING, body())
OTHER = pool_key(JobType.TRAINING, body(InstanceType="ml.c5.xlarge"))
DEFAULT = DEFAULT_KEEP_ALIVE_MINS * 60


def test_a_matching_chain_keeps_its_pools_and_the_last_job_may_take_one():
    plan = plan_pools(
        [PlannedPool("a", KEY), PlannedPool("b", KEY), PlannedPool("c", KEY)],
        [("a", "b"), ("b", "c")],
    )
    assert plan["a"].keep_alive_seconds == DEFAULT and plan["a"].successors == {"b"}
    assert plan["b"].keep_alive_seconds == DEFAULT and plan["b"].successors == {"c"}
    # AWS: "each subsequent training job must also specify a KeepAlivePeriodInSeconds" to
    # run on a pool: the last job asks for one (and the run ends it when it is done)
    assert plan["c"].keep_alive_seconds == DEFAULT and plan["c"].successors == frozenset()


def test_no_pool_without_a_matching_neighbour():
    plan = plan_pools(
        [PlannedPool("a", KEY), PlannedPool("b", OTHER), PlannedPool("lone", KEY)],
        [("a", "b")],
    )
    assert {t: p.keep_alive_seconds for t, p in plan.items()} == {"a": 0, "b": 0, "lone": 0}


def test_spot_chain_keeps_no_pool():
    plan = plan_pools([PlannedPool("a", None), PlannedPool("b", None)], [("a", "b")])
    assert plan["a"].keep_alive_seconds == plan["b"].keep_alive_seconds == 0


def test_explicit_keep_alive_wins_and_zero_opts_out_of_the_chain():
    plan = plan_pools(
        [
            PlannedPool("a", KEY),
            PlannedPool("b", KEY, keep_alive_mins=0),
            PlannedPool("c", KEY, 12),
        ],
        [("a", "b")],
    )
    # b cannot take a pool without a keep-alive: a keeping one for it would only cost
    assert plan["a"].keep_alive_seconds == 0 and plan["b"].keep_alive_seconds == 0
    assert plan["c"].keep_alive_seconds == 12 * 60  # asked for, with no successor


def test_fan_in_and_fan_out_link_every_matching_pair():
    plan = plan_pools(
        [PlannedPool(t, KEY) for t in ("a1", "a2", "b", "c1", "c2")],
        [("a1", "b"), ("a2", "b"), ("b", "c1"), ("b", "c2")],
    )
    assert plan["a1"].successors == plan["a2"].successors == {"b"}
    assert plan["b"].successors == {"c1", "c2"}


def test_a_pool_waits_for_the_successors_that_have_not_ended():
    successors = frozenset({"b1", "b2"})
    assert still_to_follow(successors, set()) == successors
    assert still_to_follow(successors, {"b1", "x"}) == {"b2"}
    assert not still_to_follow(successors, {"b1", "b2"})  # then the pool is ended
    assert not still_to_follow(frozenset(), set())  # the last of a chain: ended as it ends


@dataclass(eq=False)
class DagJob:
    """What the planning reads of a Snakemake job: its DAG's ``dependencies`` (job → {its
    producer jobs: files})."""

    name: str
    dag: Any


def test_a_group_is_one_job_followed_by_what_follows_any_member(tmp_path):
    """a → group g (b → c) → d, and e reads b, a member in the middle: g takes a's pool and
    keeps one for d and e; the edge b → c inside g is none."""
    dag = SimpleNamespace(dependencies={})
    a, b, c, d, e = (DagJob(name, dag) for name in "abcde")
    dag.dependencies = {b: {a: {"a.txt"}}, c: {b: {"b.txt"}}, d: {c: {"c.txt"}}, e: {b: {"b.txt"}}}
    on_demand = spec(tmp_path, spot=0)
    request = JobRequest(JobType.TRAINING, body())

    def planned(task: str, *jobs: DagJob) -> tuple[tuple[DagJob, ...], Any, JobRequest]:
        return jobs, replace(on_demand, task_id=task), request

    plan = plan_of_jobs([planned("a", a), planned("g", b, c), planned("d", d), planned("e", e)])
    assert plan["a"].successors == {"g"}
    assert plan["g"].successors == {"d", "e"}
    assert {t: p.keep_alive_seconds for t, p in plan.items()} == dict.fromkeys("agde", DEFAULT)


# --- the resource and the request -------------------------------------------------------------


def spec(tmp_path: Path, **resources: Any):
    return build_spec(
        view(tmp_path, resources=resources), backend="local", default_instance_type="ml.m5.large"
    )


def test_keep_alive_mins_on_demand_is_read(tmp_path):
    assert spec(tmp_path, spot=0, keep_alive_mins=10).instance.keep_alive_mins == 10
    assert spec(tmp_path, spot=0).instance.keep_alive_mins is None
    assert spec(tmp_path, keep_alive_mins=0).instance.keep_alive_mins == 0  # spot, none asked


# bad keep_alive_mins values: the catalogue, tests/test_spec.py::BAD ("keep_alive_mins ...")


def test_request_carries_the_decided_keep_alive(tmp_path):
    s = spec(tmp_path, spot=0)
    assert "KeepAlivePeriodInSeconds" not in build_request(s, place()).body["ResourceConfig"]
    sent = build_request(with_keep_alive(s, 300), place()).body
    assert sent["ResourceConfig"]["KeepAlivePeriodInSeconds"] == 300
    assert sent["EnableManagedSpotTraining"] is False


def test_local_service_refuses_keep_alive_with_spot(tmp_path):
    b = build_request(with_keep_alive(spec(tmp_path, spot=0), 60), place()).body
    validate(JobType.TRAINING, b)
    b["EnableManagedSpotTraining"] = True
    with pytest.raises(ValidationError, match="spot"):
        validate(JobType.TRAINING, b)


def test_cost_counts_the_retained_time_of_a_pool(tmp_path):
    extra = {
        "BillableTimeInSeconds": 100,
        "WarmPoolStatus": {"Status": "Reused", "ResourceRetainedBillableTimeInSeconds": 50},
    }
    # "ResourceRetainedBillableTimeInSeconds * InstanceCount" (WarmPoolStatus)
    status = JobStatus(
        "j", JobState.COMPLETED, **typed_fields(JobType.TRAINING, extra), extra=extra
    )
    assert billed_instance_seconds(status, JobType.TRAINING, 2) == 300
    table = PriceTable("us-east-1", datetime.date.today(), {"Training:ml.m5.large": 3.6})
    budget = Budget(10.0, Prices(table))
    budget.add_retained(spec(tmp_path, spot=0, instance_count=2), 100)  # a pool kept 100 s more
    assert budget.spent == pytest.approx(3.6 * 100 * 2 / 3600)


# --- the run's bookkeeping, against a faithful small SageMaker of warm pools ------------------


@dataclass
class PoolService:
    """Create/Describe/UpdateTrainingJob as far as warm pools go: a job created with a
    keep-alive takes the Available pool of a matching job; a quota of 0 refuses keep-alives."""

    quota: int | None = None
    pools: dict[str, dict[str, Any]] = field(default_factory=dict)
    keys: dict[str, Any] = field(default_factory=dict)
    created: list[dict[str, Any]] = field(default_factory=list)
    updates: list[str] = field(default_factory=list)

    def submit(self, request: JobRequest) -> None:
        keep = request.body["ResourceConfig"].get("KeepAlivePeriodInSeconds")
        if keep and self.quota == 0:
            raise WarmPoolQuotaError(
                "ResourceLimitExceeded: The account-level service limit 'ml.m5.large for "
                "training warm pool usage' is 0 Instances"
            )
        self.created.append(request.body)
        name, key = request.name, pool_key(request.job_type, request.body)
        self.keys[name] = key
        for owner, pool in self.pools.items():
            if keep and pool["Status"] == "Available" and self.keys[owner] == key:
                pool.update(Status="Reused", ReusedByJob=name)
                self.pools[name] = {"Status": "InUse"}
                return

    def finish(self, name: str) -> JobStatus:
        keep = next(b for b in self.created if b["TrainingJobName"] == name)["ResourceConfig"]
        extra: dict[str, Any] = {"BillableTimeInSeconds": 10}
        if keep.get("KeepAlivePeriodInSeconds"):
            self.pools[name] = {"Status": "Available", "ResourceRetainedBillableTimeInSeconds": 0}
            extra["WarmPoolStatus"] = dict(self.pools[name])
        return JobStatus(
            name, JobState.COMPLETED, **typed_fields(JobType.TRAINING, extra), extra=extra
        )

    def warm_pool(self, name: str) -> dict[str, Any] | None:
        pool = self.pools.get(name)
        if pool and pool["Status"] != "InUse":
            pool["ResourceRetainedBillableTimeInSeconds"] = 7  # as time went by
        return dict(pool) if pool else None

    def end_warm_pool(self, name: str) -> None:
        self.updates.append(name)
        self.pools[name]["Status"] = "Terminated"


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def info(self, msg: str) -> None:
        self.lines.append(("info", msg))

    def warning(self, msg: str) -> None:
        self.lines.append(("warning", msg))


def chain(tmp_path: Path, service: PoolService) -> tuple[WarmPools, Log, list[tuple[str, float]]]:
    a = spec(tmp_path, spot=0)
    from dataclasses import replace

    b = replace(a, rule="evaluate", task_id="evaluate")
    plan = plan_pools(
        [PlannedPool(a.task_id, KEY), PlannedPool("evaluate", KEY)], [(a.task_id, "evaluate")]
    )
    log, billed = Log(), []
    pools = WarmPools(
        plan,
        service,
        log,
        bill=lambda s, secs: billed.append((s.rule, secs)),
        closed=lambda name: billed.append((name, "closed")),
    )
    for s, name in ((a, "train-1"), (b, "evaluate-1")):
        sent = pools.decide(s)
        pools.submit(service.submit, build_request(sent, place(name)))
        pools.ended(sent, service.finish(name))
    return pools, log, billed


def test_chain_reuses_the_pool_then_ends_the_last_one(tmp_path):
    service = PoolService()
    pools, log, billed = chain(tmp_path, service)
    assert [b["ResourceConfig"]["KeepAlivePeriodInSeconds"] for b in service.created] == [
        DEFAULT,
        DEFAULT,
    ]
    assert service.pools["train-1"]["ReusedByJob"] == "evaluate-1"
    assert any("job evaluate-1 ran on the warm pool of job train-1" in m for _, m in log.lines)
    assert service.updates == ["evaluate-1"]  # nothing follows it: its pool would idle, billed
    # the retained time of both pools counted, each said billed no more (the budget's
    # reservation of it ends)
    assert billed == [
        ("train", 7),
        ("train-1", "closed"),
        ("evaluate", 7),
        ("evaluate-1", "closed"),
    ]
    pools.end_all()
    assert service.updates == ["evaluate-1"]  # nothing left open


def test_quota_refusal_falls_back_to_no_keep_alive_said_once(tmp_path):
    service = PoolService(quota=0)
    _, log, billed = chain(tmp_path, service)
    assert [b["ResourceConfig"].get("KeepAlivePeriodInSeconds") for b in service.created] == [
        None,
        None,
    ]
    warnings = [m for kind, m in log.lines if kind == "warning"]
    assert len(warnings) == 1 and "ml.m5.large for training warm pool usage" in warnings[0]
    assert service.updates == [] and billed == []


def test_a_pool_whose_successor_never_comes_is_ended_at_shutdown(tmp_path):
    service = PoolService()
    a = spec(tmp_path, spot=0)
    plan = plan_pools([PlannedPool(a.task_id, KEY), PlannedPool("b", KEY)], [(a.task_id, "b")])
    pools = WarmPools(plan, service, Log())
    sent = pools.decide(a)
    pools.submit(service.submit, build_request(sent, place("train-1")))
    pools.ended(sent, service.finish("train-1"))
    assert service.updates == []  # b may still follow
    pools.end_all()  # the run is over: b never ran (failed upstream, or the run was cancelled)
    assert service.updates == ["train-1"]


def test_a_re_attached_job_s_pool_is_ended_when_nothing_of_this_run_follows(tmp_path):
    """A killed client's job, re-attached by the next run: that run did not create it, so its
    keep-alive is read from its description. The rerun asks only for it: its pool would idle,
    billed, for the keep-alive the earlier run gave it."""
    service = PoolService()
    a = spec(tmp_path, spot=0)
    earlier = WarmPools(
        plan_pools([PlannedPool(a.task_id, KEY), PlannedPool("b", KEY)], [(a.task_id, "b")]),
        service,
        Log(),
    )
    earlier.submit(service.submit, build_request(earlier.decide(a), place("train-1")))
    # the client was killed; the rerun plans a alone, re-attaches to train-1 and sees it end
    billed: list[tuple[str, float]] = []
    rerun = WarmPools(
        plan_pools([PlannedPool(a.task_id, KEY)], []),
        service,
        Log(),
        bill=lambda s, secs: billed.append((s.rule, secs)),
    )
    ended = service.finish("train-1")
    assert ended.extra.get("ResourceConfig") is None  # known from WarmPoolStatus alone
    rerun.ended(rerun.decide(a), ended)
    assert service.updates == ["train-1"] and billed == [("train", 7)]
    # from the ResourceConfig of its description alone, as well (before SageMaker shows a
    # WarmPoolStatus); then the pool is ended at the run's end once it shows one
    service = PoolService()
    rerun = WarmPools(plan_pools([PlannedPool(a.task_id, KEY)], []), service, Log())
    service.submit(build_request(with_keep_alive(a, 300), place("train-2")))
    ended = service.finish("train-2")
    extra = {"ResourceConfig": {"InstanceType": "ml.m5.large", "KeepAlivePeriodInSeconds": 300}}
    rerun.ended(a, JobStatus("train-2", JobState.COMPLETED, extra=extra))
    assert service.updates == ["train-2"]


def test_a_re_attached_job_s_pool_is_taken_by_its_successor_and_counted(tmp_path):
    service = PoolService()
    a = spec(tmp_path, spot=0)
    b = replace(a, rule="evaluate", task_id="evaluate")
    plan = plan_pools(
        [PlannedPool(a.task_id, KEY), PlannedPool("evaluate", KEY)], [(a.task_id, "evaluate")]
    )
    service.submit(build_request(with_keep_alive(a, DEFAULT), place("train-1")))  # earlier run
    log, billed = Log(), []
    pools = WarmPools(plan, service, log, bill=lambda s, secs: billed.append((s.rule, secs)))
    pools.ended(pools.decide(a), service.finish("train-1"))  # re-attached, ended
    assert service.updates == []  # evaluate follows: the pool is kept for it
    sent = pools.decide(b)
    pools.submit(service.submit, build_request(sent, place("evaluate-1")))
    pools.ended(sent, service.finish("evaluate-1"))
    assert service.pools["train-1"]["ReusedByJob"] == "evaluate-1"
    assert any("job evaluate-1 ran on the warm pool of job train-1" in m for _, m in log.lines)
    assert ("train", 7) in billed  # the re-attached job's retained time is in the cost


def test_fan_out_one_successor_takes_the_pool_the_other_starts_cold(tmp_path):
    from dataclasses import replace

    service = PoolService()
    a = spec(tmp_path, spot=0)
    b1, b2 = (replace(a, rule=r, task_id=r) for r in ("b1", "b2"))
    plan = plan_pools(
        [PlannedPool(s.task_id, KEY) for s in (a, b1, b2)],
        [(a.task_id, "b1"), (a.task_id, "b2")],
    )
    log = Log()
    pools = WarmPools(plan, service, log)
    sent = {}
    for s, name in ((a, "a-1"), (b1, "b1-1"), (b2, "b2-1")):
        sent[name] = pools.decide(s)
        pools.submit(service.submit, build_request(sent[name], place(name)))
        if name == "a-1":
            pools.ended(sent[name], service.finish(name))
    for name in ("b1-1", "b2-1"):
        pools.ended(sent[name], service.finish(name))
    assert service.pools["a-1"]["ReusedByJob"] == "b1-1"
    assert service.pools["b2-1"]["Status"] == "Terminated"  # b2 started cold, then ended
    assert sorted(service.updates) == ["b1-1", "b2-1"]  # never a's, which b1 took
    pools.end_all()
    assert sorted(service.updates) == ["b1-1", "b2-1"]


# --- the local backend's WarmPoolStatus -------------------------------------------------------


def local_job(root: Path, name: str, keep: int, ended: bool = True, **doc: Any) -> JobDir:
    jobdir = JobDir(root / name)
    jobdir.path.mkdir(parents=True)
    request = body(TrainingJobName=name)
    request["ResourceConfig"]["KeepAlivePeriodInSeconds"] = keep
    write_json_atomic(jobdir.request_file, request)
    status = {"TrainingJobName": name, "TrainingJobStatus": "Completed" if ended else "InProgress"}
    if ended:
        status["TrainingEndTime"] = now_iso()
    status.update(doc)
    jobdir.write_status(status)
    return jobdir


def pool_of(root: Path, jobdir: JobDir) -> dict[str, Any] | None:
    return local_pools.status(root, jobdir, jobdir.read_request(), jobdir.read_status())


def test_local_warm_pool_quota_refuses_a_keep_alive_before_creating_anything(tmp_path, monkeypatch):
    monkeypatch.setenv(local_pools.QUOTA_ENV, "0")
    request = build_request(with_keep_alive(spec(tmp_path, spot=0), 300), place())
    backend = LocalBackend(tmp_path / "jobs")
    with pytest.raises(WarmPoolQuotaError, match="'ml.m5.large for training warm pool usage'"):
        backend.submit(request)
    assert not (tmp_path / "jobs").exists()  # the name stays free for the job without


def test_local_pool_available_then_reused_by_a_matching_job(tmp_path):
    a = local_job(tmp_path, "a", 60)
    assert pool_of(tmp_path, a)["Status"] == "Available"
    b = local_job(tmp_path, "b", 60, ended=False)
    assert local_pools.claim(tmp_path, "b", b.read_request()) == "a"
    assert pool_of(tmp_path, a)["Status"] == "Reused"
    assert pool_of(tmp_path, a)["ReusedByJob"] == "b"
    assert pool_of(tmp_path, b) == {"Status": "InUse"}
    c = local_job(tmp_path, "c", 60, ended=False)
    assert local_pools.claim(tmp_path, "c", c.read_request()) is None  # a's pool is taken


def test_local_pool_expires_and_can_be_ended(tmp_path):
    a = local_job(tmp_path, "a", 1)
    time.sleep(1.1)
    pool = pool_of(tmp_path, a)
    assert pool["Status"] == "Terminated" and pool["ResourceRetainedBillableTimeInSeconds"] == 1
    b = local_job(tmp_path, "b", 600)
    local_pools.update_keep_alive(tmp_path, b, b.read_request(), b.read_status(), 0)
    assert pool_of(tmp_path, b)["Status"] == "Terminated"
    with pytest.raises(ValidationError, match="no warm pool to update"):
        local_pools.update_keep_alive(tmp_path, b, b.read_request(), b.read_status(), 0)


def test_local_job_without_keep_alive_or_failed_internally_keeps_no_pool(tmp_path):
    assert pool_of(tmp_path, local_job(tmp_path, "a", 0)) is None
    failed = local_job(
        tmp_path, "f", 60, TrainingJobStatus="Failed", FailureReason="InternalServerError: x"
    )
    assert pool_of(tmp_path, failed)["Status"] == "Terminated"
    assert json.loads((failed.path / "warm_pool.json").read_text())["Status"] == "Terminated"


# --- real runs: both backends -----------------------------------------------------------------

CHAINS = """
rule all:
    input: "b.txt", "d.txt"

rule a:
    output: "a.txt"
    resources: spot=0
    shell: "echo a > {output}"

rule b:
    input: "a.txt"
    output: "b.txt"
    resources: spot=0
    shell: "cat {input} > {output}"

rule c:
    output: "c.txt"
    shell: "echo c > {output}"

rule d:
    input: "c.txt"
    output: "d.txt"
    shell: "cat {input} > {output}"
"""


def chains(tmp_path: Path, snakefile: str = CHAINS) -> Workflow:
    wf = Workflow(tmp_path / "wf")
    wf.write("Snakefile", snakefile)
    return wf


def by_rule(bodies: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {b["TrainingJobName"].split("-")[0]: b for b in bodies}


def keep_alives(bodies: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {r: b["ResourceConfig"].get("KeepAlivePeriodInSeconds") for r, b in bodies.items()}


@pytest.mark.slow
def test_local_on_demand_chain_reuses_its_pool_and_the_plan_shows_it(tmp_path):
    wf = chains(tmp_path)
    plan = wf.run(*LOCAL_ARGS, "-n", "--logger", "sagemaker").stdout
    rows = {line.split()[0]: line for line in plan.splitlines() if line.startswith("  ")}
    assert "no, keep-alive 5m00s" in rows["a"] and "no, keep-alive 5m00s" in rows["b"]
    assert "keep-alive" not in rows["c"] and "keep-alive" not in rows["d"]

    proc = wf.run(*LOCAL_ARGS, "b.txt")  # the spot chain runs in the aws test
    root = wf.path(".ssm_rules/jobs")
    backend = LocalBackend(root)
    jobs = by_rule([JobDir(p).read_request() for p in root.iterdir() if not p.name.startswith(".")])
    assert keep_alives(jobs) == {"a": DEFAULT, "b": DEFAULT}
    a, b = jobs["a"]["TrainingJobName"], jobs["b"]["TrainingJobName"]
    a_pool = backend.describe(a, JobType.TRAINING)["WarmPoolStatus"]
    assert a_pool["Status"] == "Reused" and a_pool["ReusedByJob"] == b
    b_pool = backend.describe(b, JobType.TRAINING)["WarmPoolStatus"]
    # ended by the run (UpdateTrainingJob), not left to idle for its 5 minutes
    assert b_pool["Status"] == "Terminated" and b_pool["ResourceRetainedBillableTimeInSeconds"] < 60
    text = proc.stdout + proc.stderr
    assert f"job {b} ran on the warm pool of job {a} (rule a)" in text
    assert f"ended the warm pool of job {b}" in text


GROUP_CHAIN = """
rule all:
    input: "d.txt"

rule a:
    output: "a.txt"
    resources: spot=0
    shell: "echo a > {output}"

rule b:
    input: "a.txt"
    output: "b.txt"
    resources: spot=0
    group: "g"
    shell: "cat {input} > {output}; echo b >> {output}"

rule c:
    input: "b.txt"
    output: "c.txt"
    resources: spot=0
    group: "g"
    shell: "cat {input} > {output}; echo c >> {output}"

rule d:
    input: "c.txt"
    output: "d.txt"
    resources: spot=0
    shell: "cat {input} > {output}; echo d >> {output}"
"""


@pytest.mark.slow
def test_local_chain_through_a_group_reuses_the_pools_of_its_one_job(tmp_path):
    """A group is one job in the pool planning: it takes a's pool and keeps one for d."""
    wf = chains(tmp_path, GROUP_CHAIN)
    plan = wf.run(*LOCAL_ARGS, "-n", "--logger", "sagemaker").stdout
    rows = {line.split()[0]: line for line in plan.splitlines() if line.startswith("  ")}
    assert all("no, keep-alive 5m00s" in rows[r] for r in "agd"), plan
    proc = wf.run(*LOCAL_ARGS)
    assert wf.path("d.txt").read_text() == "a\nb\nc\nd\n"
    root = wf.path(".ssm_rules/jobs")
    backend = LocalBackend(root)
    jobs = by_rule([JobDir(p).read_request() for p in root.iterdir() if not p.name.startswith(".")])
    assert keep_alives(jobs) == {"a": DEFAULT, "g": DEFAULT, "d": DEFAULT}
    a, g, d = (jobs[r]["TrainingJobName"] for r in "agd")
    assert backend.describe(a, JobType.TRAINING)["WarmPoolStatus"]["ReusedByJob"] == g
    assert backend.describe(g, JobType.TRAINING)["WarmPoolStatus"]["ReusedByJob"] == d
    text = proc.stdout + proc.stderr
    assert f"group g: job {g} ran on the warm pool of job {a} (rule a)" in text
    assert f"rule d: job {d} ran on the warm pool of job {g} (group g)" in text


def created(api_calls: Any) -> dict[str, dict[str, Any]]:
    return by_rule(
        [json.loads(c.body) for c in api_calls.calls if c.operation == "CreateTrainingJob"]
    )


@pytest.mark.slow
def test_aws_on_demand_chain_reuses_its_pool_and_ends_the_last(tmp_path, aws, bucket, api_calls):
    wf = chains(tmp_path)
    proc = wf.run(*aws_args(bucket), env=aws.env())
    jobs = created(api_calls)
    assert keep_alives(jobs) == {"a": DEFAULT, "b": DEFAULT, "c": None, "d": None}
    a, b = jobs["a"]["TrainingJobName"], jobs["b"]["TrainingJobName"]
    sm = aws.client("sagemaker")
    a_pool = sm.describe_training_job(TrainingJobName=a)["WarmPoolStatus"]
    assert a_pool["Status"] == "Reused" and a_pool["ReusedByJob"] == b
    updates = [json.loads(c.body) for c in api_calls.calls if c.operation == "UpdateTrainingJob"]
    assert updates == [{"TrainingJobName": b, "ResourceConfig": {"KeepAlivePeriodInSeconds": 0}}]
    assert sm.describe_training_job(TrainingJobName=b)["WarmPoolStatus"]["Status"] == "Terminated"
    assert f"job {b} ran on the warm pool of job {a} (rule a)" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_aws_warm_pool_quota_refusal_falls_back_said_once(tmp_path, aws, bucket, api_calls):
    aws.hook.warm_pool_quota = 0  # AWS's default
    wf = chains(tmp_path, CHAINS.replace('"b.txt", "d.txt"', '"b.txt"'))
    proc = wf.run(*aws_args(bucket), env=aws.env())
    creates = [json.loads(c.body) for c in api_calls.calls if c.operation == "CreateTrainingJob"]
    # a with its keep-alive (refused), a again without, then b without
    assert [keep_alives(by_rule([body])) for body in creates] == [
        {"a": DEFAULT},
        {"a": None},
        {"b": None},
    ]
    text = proc.stdout + proc.stderr
    assert text.count("SageMaker refused a warm pool for ml.m5.large") == 1
    assert "ml.m5.large for training warm pool usage" in text
    assert api_calls.count("sagemaker", "UpdateTrainingJob") == 0
