"""One validation for both backends, the plan checked as it will be sent, and the bad-input
cases that are not a single rule's (settings, region, framework, the request's tags)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from snakemake_interface_common.exceptions import WorkflowError

from ssm_rules.backends.aws.errors import InvalidRequestError
from ssm_rules.backends.aws.validation import RequestValidator
from ssm_rules.backends.base import JobType
from ssm_rules.backends.local.context import local_context
from ssm_rules.executor import identity_tags
from ssm_rules.identity import identity
from ssm_rules.images import image_uri
from ssm_rules.instance_types import instance_type_problem
from ssm_rules.requests import Placement, build_request
from ssm_rules.rules import job
from ssm_rules.settings import ExecutorSettings
from ssm_rules.spec import SpecError, build_spec
from tests.jobviews import view

NEW_TYPE = "ml.p6-b200.48xlarge"  # in botocore's enum, with a dash in its family


def spec_of(tmp_path: Path, backend: str = "local", **changes):
    return build_spec(
        view(tmp_path, **changes), backend=backend, default_instance_type="ml.m5.large"
    )


# --- instance types: the same answer everywhere -----------------------------------------------


def test_a_typo_in_the_instance_type_is_refused_by_the_setting_the_resource_and_the_request(
    tmp_path,
):
    with pytest.raises(WorkflowError) as setting:
        ExecutorSettings(instance_type="ml.m5.xlage")
    with pytest.raises(SpecError) as resource:
        spec_of(tmp_path, resources={"instance_type": "ml.m5.xlage"})
    for err in (setting, resource):
        assert "'ml.m5.xlage' is not a SageMaker instance type" in str(err.value)
        assert "did you mean 'ml.m5.xlarge'" in str(err.value)
    assert str(setting.value).startswith("--sagemaker-instance-type")
    spec = spec_of(tmp_path)
    request = build_request(
        replace(spec, instance=replace(spec.instance, instance_type="ml.m5.xlage")), _place()
    )
    with pytest.raises(InvalidRequestError, match="'ml.m5.xlage' is not allowed: did you mean"):
        RequestValidator()(request)


def test_a_new_instance_type_is_accepted_by_the_setting_the_resource_and_the_request(tmp_path):
    assert ExecutorSettings(instance_type=NEW_TYPE).instance_type == NEW_TYPE
    spec = spec_of(tmp_path, resources={"instance_type": NEW_TYPE, "spot": 0})
    assert spec.instance.instance_type == NEW_TYPE
    RequestValidator()(build_request(spec, _place()))
    # a type botocore does not list yet, of the right form: the service decides
    assert instance_type_problem("ml.m9z.4xlarge") is None


def test_the_known_instance_types_are_the_enums_of_the_create_operations():
    from ssm_rules.aws_names import sagemaker_service_model
    from ssm_rules.instance_types import known_instance_types

    model = sagemaker_service_model()
    training = model.operation_model("CreateTrainingJob").input_shape
    processing = model.operation_model("CreateProcessingJob").input_shape
    t_enum = set(training.members["ResourceConfig"].members["InstanceType"].enum)
    p_enum = set(
        processing.members["ProcessingResources"]
        .members["ClusterConfig"]
        .members["InstanceType"]
        .enum
    )
    assert known_instance_types(JobType.TRAINING) == t_enum
    assert known_instance_types(JobType.PROCESSING) == p_enum
    assert known_instance_types() == t_enum | p_enum and NEW_TYPE in t_enum


def test_the_local_backend_checks_requests_against_sagemakers_model(tmp_path):
    ctx = local_context(ExecutorSettings(), tmp_path)
    spec = spec_of(tmp_path)
    bad = replace(spec, instance=replace(spec.instance, instance_type="ml.m5.xlage"))
    place = _place(code_uri=ctx.root + "code/x/sourcedir.tar.gz", jobs_uri=ctx.jobs_uri)
    ctx.validate(build_request(spec, place))  # file:// URIs stand for s3:// ones
    with pytest.raises(InvalidRequestError, match="ml.m5.xlage"):
        ctx.validate(build_request(bad, place))
    assert not (tmp_path / ".ssm_rules").exists()


# --- the plan's requests carry the submit's tags ------------------------------------------------


def test_the_plan_request_has_the_identity_tags_of_the_same_length_as_at_submit(tmp_path):
    spec = spec_of(tmp_path, params=(("sm", job(tags={"team": "ml"})),))
    planned = identity_tags(spec, identity(spec, "", {}))
    submitted = identity_tags(spec, identity(spec, "f" * 64, {"data": "0" * 64}))
    assert {k: len(v) for k, v in planned.items()} == {k: len(v) for k, v in submitted.items()}
    # 48 user tags + the 3 identity tags: the request breaks SageMaker's limit of 50 (the spec
    # refuses it first; the request check would too, in the plan, before any upload)
    many = replace(spec, options=replace(spec.options, tags={f"t{i}": "v" for i in range(48)}))
    with pytest.raises(InvalidRequestError, match=r"Tags: has length 51 is above the maximum 50"):
        RequestValidator()(build_request(many, _place(identity_tags=planned)))
    RequestValidator()(build_request(spec, _place(identity_tags=planned)))


# --- settings, region, framework --------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "fragments"),
    [
        (
            dict(region="eu-wset-1"),
            ["--sagemaker-region", "'eu-wset-1'", "did you mean 'eu-west-1'"],
        ),
        (dict(bucket="My_Bucket"), ["--sagemaker-bucket", "'My_Bucket'", "not an S3 bucket name"]),
        (dict(bucket="a..b"), ["'a..b'", "no two adjacent periods"]),
        (dict(bucket="192.168.1.1"), ["'192.168.1.1'", "not an IP address"]),
        (dict(instance_type="m5.large"), ["--sagemaker-instance-type", "did you mean"]),
        (dict(backend="sagemaker"), ["'sagemaker' is not a backend", "'aws'"]),
    ],
)
def test_bad_settings_are_refused_before_anything(setting, fragments):
    with pytest.raises(WorkflowError) as err:
        ExecutorSettings(**setting)
    for fragment in fragments:
        assert fragment in str(err.value), (fragment, str(err.value))


def test_the_local_backend_refuses_a_region_that_does_not_exist(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-9")
    with pytest.raises(WorkflowError) as err:
        local_context(ExecutorSettings(), tmp_path)
    assert "AWS_DEFAULT_REGION: region 'eu-west-9' is not a region with SageMaker" in str(err.value)
    assert not (tmp_path / ".ssm_rules").exists()


def test_an_unknown_framework_is_our_error_not_a_file_not_found():
    with pytest.raises(SpecError) as err:
        image_uri(
            job(framework="notaframework"), "train", "us-east-1", "ml.m5.large", JobType.TRAINING
        )
    message = str(err.value)
    assert "job(framework='notaframework') is not a framework" in message
    assert "framework='pytorch'" in message and "job(image_uri=...)" in message
    with pytest.raises(SpecError, match="did you mean 'pytorch'"):
        image_uri(job(framework="pytorh"), "train", "us-east-1", "ml.m5.large", JobType.TRAINING)


def test_a_region_without_the_image_names_the_region_not_the_framework():
    with pytest.raises(SpecError) as err:
        image_uri(job(), "train", "xx-nowhere-1", "ml.m5.large", JobType.TRAINING)
    assert "region 'xx-nowhere-1'" in str(err.value) and "--sagemaker-region" in str(err.value)
    assert "framework=" not in str(err.value)


# --- what is accepted on purpose --------------------------------------------------------------


def test_a_custom_resource_declared_as_a_global_limit_is_accepted(tmp_path):
    v = view(tmp_path, resources={"sagemaker_slots": 1})
    with pytest.raises(SpecError, match="--resources sagemaker_slots=<limit>"):
        build_spec(v, backend="local", default_instance_type="ml.m5.large")
    build_spec(
        v,
        backend="local",
        default_instance_type="ml.m5.large",
        declared_resources=frozenset({"sagemaker_slots"}),
    )
    # Snakemake's own resources are never ours to refuse
    spec_of(tmp_path, resources={"mem_mb": 1000, "disk_mb": 1000, "runtime": 30, "tmpdir": "/tmp"})


def test_a_script_is_parsed_with_the_python_the_job_runs(tmp_path):
    """On the local backend the job runs this Python: its syntax error is refused. On
    SageMaker the image's Python (py312 by default) may accept newer syntax; it is parsed with
    that version when installed here, else let through (never refuse what the job accepts)."""
    import sys

    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "ok.py").write_text("x: int = 1\n")
    newer = "type Vector = list[float]\n"  # PEP 695: Python 3.12+
    (tmp_path / "code" / "new.py").write_text(newer)
    spec_of(tmp_path, body="script", script="code/ok.py")
    if sys.version_info < (3, 12):
        with pytest.raises(SpecError, match="syntax error"):
            spec_of(tmp_path, body="script", script="code/new.py")
    # py312 (the default image's): parsed by python3.12 if installed (accepts it), else let through
    spec_of(tmp_path, backend="aws", body="script", script="code/new.py")
    with pytest.raises(SpecError, match="syntax error"):
        spec_of(
            tmp_path,
            backend="aws",
            body="script",
            script="code/new.py",
            params=(("sm", job(py_version="py310")),),
        )


def _place(**changes) -> Placement:
    base = Placement(
        job_name="train-0101000000-abcdef",
        code_uri="s3://b/p/code/x/sourcedir.tar.gz",
        channel_uris={},
        jobs_uri="s3://b/p/jobs",
        image_uri="763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.8-cpu-py312",
        role_arn="arn:aws:iam::123456789012:role/ssm-test",
        region="us-east-1",
    )
    return replace(base, **changes)


def test_the_snakemake_hooks_are_installed_by_the_settings():
    """Guards the two Snakemake internals we patch (snakemake.dag.ScriptProcessor): a newer
    Snakemake that renames them must fail here, not silently lose the checks."""
    from snakemake.dag import DAGProcessorBase, ScriptProcessor

    ExecutorSettings()
    assert getattr(ScriptProcessor.process_job, "_ssm_guarded", False)
    assert "process" in ScriptProcessor.__dict__ and "process" in DAGProcessorBase.__dict__
    ExecutorSettings()  # installing again wraps nothing twice
    assert getattr(ScriptProcessor.process_job, "_ssm_guarded", False)
