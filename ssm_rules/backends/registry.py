"""The backends by name, each imported only when a run asks for it: Snakemake imports the
plugin on every call (``-n`` and ``--help`` too), and the aws backend pulls in boto3.

A backend is a package under ``ssm_rules/backends/`` whose context function turns the
settings into a :class:`~ssm_rules.backends.context.RunContext` (signature
:data:`ContextMaker`); it reaches the executor through :func:`run_context` only.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ssm_rules.backends.context import RunContext
    from ssm_rules.settings import ExecutorSettings

# (settings, the run's working directory, logger) → the run's context
ContextMaker = Callable[["ExecutorSettings", Path, Any], "RunContext"]

# name → "module:function" of its ContextMaker
BACKENDS: dict[str, str] = {
    "local": "ssm_rules.backends.local.context:local_context",
    "aws": "ssm_rules.backends.aws.context:aws_context",
}


def context_maker(name: str) -> ContextMaker:
    """The named backend's ContextMaker, its module imported now. The settings refuse an
    unknown name first (with the names to write), so a KeyError here is a bug."""
    module, function = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), function)


def run_context(settings: ExecutorSettings, workdir: Path, logger: Any = None) -> RunContext:
    return context_maker(settings.backend)(settings, workdir, logger)
