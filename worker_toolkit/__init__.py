"""In-job toolkit of ssm_rules (standard library only).

``worker_lib.WorkerConfig`` gives a job its paths, hyperparameters and hosts (a superset of
simple-sagemaker's ``worker_toolkit.worker_lib``); ``launcher`` runs a rule's script or shell
command inside the SageMaker container; ``contract`` names the paths both sides agree on.

``worker_toolkit.WorkerConfig`` is imported on first use: the launcher, which starts every
job, does not need worker_lib (argparse, logging) on its way to the program.
"""

from __future__ import annotations

__all__ = ["WorkerConfig"]


def __getattr__(name: str) -> object:
    if name == "WorkerConfig":
        from .worker_lib import WorkerConfig

        return WorkerConfig
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
