"""The aws context of a dry run: the checks that need no credentials fail as in the real run;
without credentials the rest is said to be unchecked, and nothing is created."""

from __future__ import annotations

import logging

import pytest

from ssm_rules.backends.aws.context import AwsSetupError, aws_context
from ssm_rules.dryrun import plan_context
from ssm_rules.settings import ExecutorSettings


def test_a_malformed_role_name_fails_the_dry_run_as_it_fails_the_run(
    tmp_path, no_credentials, monkeypatch
):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")  # the role is checked before any call
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    settings = ExecutorSettings(backend="aws", region="eu-west-1", role_name="a b")
    with pytest.raises(AwsSetupError) as real:
        aws_context(settings)
    with pytest.raises(AwsSetupError) as dry:
        plan_context(settings, tmp_path, logging.getLogger("test"))
    assert str(dry.value) == str(real.value) and "--sagemaker-role-name" in str(dry.value)


def test_without_credentials_the_plan_is_built_and_says_what_is_unchecked(
    tmp_path, no_credentials, caplog
):
    settings = ExecutorSettings(backend="aws", region="eu-west-1", role="MyRole")
    with caplog.at_level(logging.WARNING):
        ctx = plan_context(settings, tmp_path, logging.getLogger("test"))
    assert ctx.region == "eu-west-1" and ctx.role_arn.endswith(":role/MyRole")
    assert "the account, role and bucket are not checked: no AWS credentials found" in caplog.text
