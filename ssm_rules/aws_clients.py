"""boto3 clients with bounded retries, created lazily (boto3 is heavy to import).

Every client uses botocore's standard retry mode (exponential backoff with jitter, retries
on throttling and 5xx) with a bounded number of attempts. ``AWS_ENDPOINT_URL`` is honoured
by botocore itself, which is how the tests reach a moto server.
"""

from __future__ import annotations

import functools
import os
from typing import Any

MAX_ATTEMPTS = int(os.environ.get("SSM_AWS_MAX_ATTEMPTS", "8"))


@functools.cache
def session(region: str | None = None) -> Any:
    import boto3

    return boto3.session.Session(region_name=region or None)


def client(service: str, region: str | None = None) -> Any:
    from botocore.config import Config

    config = Config(retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS})
    return session(region).client(service, config=config)
