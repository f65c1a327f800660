"""Discovery shim: Snakemake finds executor plugins by this package name.

Nothing heavy is imported here (a plugin that fails to import breaks every snakemake call):
boto3 and the SageMaker SDK are imported only when a job needs them.
"""

from snakemake_interface_executor_plugins.settings import CommonSettings

from ssm_rules._snakemake_internals import build_settings_in_dry_runs
from ssm_rules.executor import Executor
from ssm_rules.settings import ExecutorSettings

# Checked with Snakemake 9.20 to 9.27: with a shared file system assumed, Snakemake deletes or
# overwrites the job's storage outputs itself; jobs run remotely and fetch nothing from us.
common_settings = CommonSettings(
    non_local_exec=True,
    implies_no_shared_fs=True,
    job_deploy_sources=False,
    pass_default_storage_provider_args=True,
    pass_default_resources_args=True,
    pass_envvar_declarations_to_cmd=False,
    auto_deploy_default_storage_provider=False,
    can_transfer_local_files=True,
    init_seconds_before_status_checks=0,
)

build_settings_in_dry_runs("sagemaker")

__all__ = ["Executor", "ExecutorSettings", "common_settings"]
