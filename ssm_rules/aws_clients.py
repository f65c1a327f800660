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
USER_AGENT = "ssm_rules"


@functools.cache
def session(region: str | None = None) -> Any:
    import boto3

    return boto3.session.Session(region_name=region or None)


def client(service: str, region: str | None = None) -> Any:
    from botocore.config import Config

    # "total_max_attempts" counts the first call; botocore's "max_attempts" in a Config counts
    # only the retries (the legacy meaning), which would make MAX_ATTEMPTS + 1 attempts.
    config = Config(
        retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},
        # in the User-Agent: our calls are told apart from others' (CloudTrail's userAgent)
        user_agent_extra=USER_AGENT,
    )
    return session(region).client(service, config=config)
