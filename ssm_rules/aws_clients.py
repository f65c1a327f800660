"""boto3 clients with bounded retries, created lazily (boto3 is heavy to import).

Every client uses botocore's standard retry mode (exponential backoff with jitter, retries
on throttling and 5xx) with a bounded number of attempts. ``AWS_ENDPOINT_URL`` is honoured
by botocore itself, which is how the tests reach a moto server.

Every call of a client made here is counted in :data:`CALLS` (``"sagemaker.ListTrainingJobs"``,
``"logs.GetLogEvents"``),
through botocore's ``before-send`` event, which fires once per HTTP attempt: a throttled call
that botocore retries counts each attempt, as AWS's throttling counts them. The S3 storage
plugin makes its own clients: its calls are not ours and are not counted here.
"""

from __future__ import annotations

import functools
import os
import threading
from collections import Counter
from typing import Any

MAX_ATTEMPTS_ENV = "SSM_AWS_MAX_ATTEMPTS"
DEFAULT_MAX_ATTEMPTS = 8
USER_AGENT = "ssm_rules"
# An S3 client's pooled connections: as many as objects.TRANSFER_CONCURRENCY requests in flight
# (botocore's default pool is 10).
S3_CONNECTIONS = 20


class CallCounts:
    """API calls by ``service.Operation``; the executor's threads share it."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def record(self, operation: str) -> None:
        with self._lock:
            self._counts[operation] += 1

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self._counts)

    def clear(self) -> None:
        with self._lock:
            self._counts.clear()

    def summary(self) -> str:
        """Like ``12 calls: sagemaker.CreateTrainingJob 10, sagemaker.ListTrainingJobs 2``."""
        counts = self.snapshot()
        by_name = ", ".join(f"{op} {n}" for op, n in sorted(counts.items()))
        return f"{sum(counts.values())} calls" + (f": {by_name}" if by_name else "")


CALLS = CallCounts()


def count_calls(client: Any, counts: CallCounts = CALLS) -> Any:
    """Count every HTTP attempt ``client`` makes in ``counts``; returns the client."""
    # the name in IAM actions and endpoints ("logs", not "cloudwatch-logs")
    service = client.meta.service_model.signing_name

    def before_send(event_name: str, **_: Any) -> None:
        # the event is named "before-send.<service id>.<Operation>"
        counts.record(f"{service}.{event_name.rsplit('.', 1)[-1]}")

    client.meta.events.register("before-send", before_send)
    return client


@functools.cache
def _data_loader() -> Any:
    """botocore's reader of service models and endpoint data, shared by every session of this
    process: it caches what it parsed (SageMaker's model alone is megabytes of JSON), which a
    new session would otherwise parse again."""
    from botocore.loaders import create_loader

    return create_loader()


@functools.cache
def session(region: str | None = None) -> Any:
    import boto3
    import botocore.session

    core = botocore.session.Session()
    core.register_component("data_loader", _data_loader())
    made = boto3.session.Session(botocore_session=core, region_name=region or None)
    # boto3 adds its own data directory to the loader's paths once per session: keep one
    paths = _data_loader().search_paths
    paths[:] = list(dict.fromkeys(paths))
    return made


def max_attempts() -> int:
    """Attempts per call, first one included (``SSM_AWS_MAX_ATTEMPTS``, read per client)."""
    return int(os.environ.get(MAX_ATTEMPTS_ENV) or DEFAULT_MAX_ATTEMPTS)


def forget_sessions() -> None:
    """Drop the cached session and clients (they keep the credentials first resolved)."""
    _client.cache_clear()
    session.cache_clear()


def client(service: str, region: str | None = None) -> Any:
    """The client of ``service`` in ``region``, one per process (botocore's clients are
    thread-safe, and building one walks its whole service model: SageMaker's has hundreds of
    operations)."""
    return _client(service, region)


@functools.cache
def _client(service: str, region: str | None) -> Any:
    from botocore.config import Config

    # "total_max_attempts" counts the first call; botocore's "max_attempts" in a Config counts
    # only the retries (the legacy meaning), which would make one attempt more.
    config = Config(
        retries={"mode": "standard", "total_max_attempts": max_attempts()},
        # in the User-Agent: our calls are told apart from others' (CloudTrail's userAgent)
        user_agent_extra=USER_AGENT,
        **({"max_pool_connections": S3_CONNECTIONS} if service == "s3" else {}),
    )
    return count_calls(session(region).client(service, config=config))
