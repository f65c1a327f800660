"""Old name of ``worker_toolkit.worker_lib`` (simple-sagemaker's READMEs as task_lib)."""

from worker_toolkit.worker_lib import *  # noqa: F403
from worker_toolkit.worker_lib import (  # noqa: F401
    WorkerConfig,
    initMultiWorkersState,
    markCompleted,
    parseArgs,
    setDebugLevel,
)
