"""Snakemake's own executor-plugin suite (its `simple` and `groups` workflows) on the local backend."""

from __future__ import annotations

from typing import Optional

import pytest
from snakemake.common.tests import TestWorkflowsLocalStorageBase, TestWorkflowsMinioPlayStorageBase
from snakemake_interface_executor_plugins.settings import ExecutorSettingsBase

from ssm_rules.settings import ExecutorSettings


@pytest.mark.slow
class TestSnakemakeSuiteLocal(TestWorkflowsLocalStorageBase):
    __test__ = True

    def get_executor(self) -> str:
        return "sagemaker"

    def get_executor_settings(self) -> Optional[ExecutorSettingsBase]:  # noqa: UP045 (base's signature)
        return ExecutorSettings(backend="local")

    def get_assume_shared_fs(self) -> bool:
        # the plugin implies no shared file system (common_settings.implies_no_shared_fs)
        return False


@pytest.mark.slow
class TestSnakemakeSuiteAwsOnMoto(TestWorkflowsMinioPlayStorageBase):
    """The same suite with S3 as default storage and backend aws, both on the moto server
    whose SageMaker jobs really run (tests/moto_sagemaker.py)."""

    __test__ = True

    @pytest.fixture(autouse=True)
    def _moto(self, aws, bucket):
        self._aws = aws
        self._bucket = bucket

    @property
    def bucket(self) -> str:
        return self._bucket

    @property
    def endpoint_url(self) -> str:
        return self._aws.endpoint

    @property
    def access_key(self) -> str:
        return "testing"

    @property
    def secret_key(self) -> str:
        return "testing"

    def get_executor(self) -> str:
        return "sagemaker"

    def get_executor_settings(self) -> Optional[ExecutorSettingsBase]:  # noqa: UP045
        return ExecutorSettings(backend="aws", role="SageMakerRole", bucket=self._bucket)

    def get_assume_shared_fs(self) -> bool:
        return False

    def cleanup_test(self) -> None:
        # every rule ran as a SageMaker job (the aws fixture resets the server afterwards)
        assert self._aws.calls.count("sagemaker", "CreateTrainingJob") >= 4
