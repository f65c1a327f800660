"""Snakemake's own executor-plugin suite (its `simple` and `groups` workflows) on the local backend."""

from __future__ import annotations

from typing import Optional

import pytest
from snakemake.common.tests import TestWorkflowsLocalStorageBase
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
