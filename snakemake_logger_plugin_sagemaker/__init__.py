"""Discovery shim: Snakemake finds logger plugins by this package name (``--logger sagemaker``,
named in both profiles). It exists for ``snakemake -n``: a dry run never instantiates the
executor, so this is where the SageMaker plan is checked and printed (ssm_rules.dryrun).

Outside a dry run it does nothing: the executor checks the plan itself before its first job.
Nothing heavy is imported here (a plugin that fails to import breaks every snakemake call).
"""

from logging import LogRecord

from snakemake_interface_logger_plugins.base import LogHandlerBase


class LogHandler(LogHandlerBase):
    def __post_init__(self) -> None:
        if self.common_settings.dryrun:
            from ssm_rules.dryrun import install

            install()

    def emit(self, record: LogRecord) -> None:
        pass  # Snakemake's own handler prints everything; the plan is printed through it

    @property
    def writes_to_stream(self) -> bool:
        return False

    @property
    def writes_to_file(self) -> bool:
        return False

    @property
    def has_filter(self) -> bool:
        return True

    @property
    def has_formatter(self) -> bool:
        return True

    @property
    def needs_rulegraph(self) -> bool:
        return False


__all__ = ["LogHandler"]
