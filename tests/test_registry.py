"""The backends are found by name and imported only when a run asks for one: Snakemake
imports the plugin (settings, executor) on every call, and the aws backend pulls in boto3."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

from ssm_rules.backends.registry import BACKENDS, context_maker, run_context
from ssm_rules.settings import ExecutorSettings


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_each_backend_makes_its_context_from_settings_workdir_and_logger(name):
    params = list(inspect.signature(context_maker(name)).parameters)
    assert params[:3] == ["settings", "workdir", "logger"]


def test_the_local_backend_context_comes_through_the_registry(tmp_path):
    ctx = run_context(ExecutorSettings(), tmp_path)
    assert ctx.backend_name == "local" and ctx.root.startswith("file://")


def test_the_settings_refuse_a_name_the_registry_does_not_have():
    with pytest.raises(Exception, match="'slurm' is not a backend: write 'local'"):
        ExecutorSettings(backend="slurm")


def test_importing_the_plugin_imports_no_backend_and_no_boto3():
    code = (
        "import sys, ssm_rules.settings, ssm_rules.executor\n"
        "print(sorted(m for m in sys.modules if m.startswith(('boto3', 'botocore',"
        " 'ssm_rules.backends.aws', 'ssm_rules.backends.local'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_aws_context_module_imports_first_without_a_cycle():
    code = "import ssm_rules.backends.aws.context"
    subprocess.run([sys.executable, "-c", code], check=True)
