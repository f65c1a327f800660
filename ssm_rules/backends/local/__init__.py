"""A local SageMaker: runs CreateTrainingJob / CreateProcessingJob bodies on this machine.

See :class:`LocalBackend` (``service.py``); one module per concept: ``jobdir`` (the job's
record), ``status`` (the Describe* document), ``validation`` (what is refused),
``sandbox`` (a host's /opt/ml), ``channels`` (input placement and sharding), ``toolkit``
(script mode of the framework images), ``hosts`` (processes, mount namespace, signals),
``artifacts`` (model/output tarballs, checkpoints, processing outputs), ``runner`` (one job
from start to end, in its own process).
"""

from __future__ import annotations

from ssm_rules.backends.local.service import LocalBackend
from ssm_rules.backends.local.validation import (
    JobNotFound,
    LocalSageMakerError,
    ResourceInUse,
    ValidationError,
)

__all__ = ["JobNotFound", "LocalBackend", "LocalSageMakerError", "ResourceInUse", "ValidationError"]
