"""In-job toolkit of ssm_rules (standard library only).

``worker_lib.WorkerConfig`` gives a job its paths, hyperparameters and hosts (a superset of
simple-sagemaker's ``worker_toolkit.worker_lib``); ``launcher`` runs a rule's script or shell
command inside the SageMaker container; ``contract`` names the paths both sides agree on.
"""

from __future__ import annotations

from .worker_lib import WorkerConfig

__all__ = ["WorkerConfig"]
