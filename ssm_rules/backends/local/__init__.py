"""A local SageMaker: runs CreateTrainingJob / CreateProcessingJob bodies on this machine.

See :class:`LocalBackend` (``service.py``); one module per concept: ``jobdir`` (the job's
record), ``status`` (the Describe* document), ``validation`` (what is refused),
``sandbox`` (a host's /opt/ml), ``channels`` (input placement and sharding), ``toolkit``
(script mode of the framework images), ``hosts`` (processes, mount namespace, signals),
``artifacts`` (model/output tarballs, checkpoints, processing outputs), ``runner`` (one job
from start to end, in its own process), ``spawn`` (how a client starts runners).

The names below are imported on first use: a runner needs none of the client's modules.
"""

from __future__ import annotations

__all__ = ["JobNotFound", "LocalBackend", "LocalSageMakerError", "ResourceInUse", "ValidationError"]


def __getattr__(name: str) -> object:
    if name == "LocalBackend":
        from ssm_rules.backends.local.service import LocalBackend

        return LocalBackend
    if name in __all__:
        from ssm_rules.backends.local import validation

        return getattr(validation, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
