"""A plain moto server in its own process, for tests of the aws backend's API usage.

Unlike ``tests/moto_sagemaker.py`` (whose hook makes jobs really run), this server is moto as
shipped (but for SageMaker Search, which follows AWS's documentation: tests/moto_search.py):
every SageMaker job is Completed the moment it is created, which is what API-call
counting wants (100 jobs cost nothing). It runs as a subprocess so that the in-process hook,
which patches moto's classes while installed, can never reach it.

S3 cross-account access is off (``MOTO_S3_ALLOW_CROSSACCOUNT_ACCESS=false``), as on AWS: a
HeadBucket on another account's bucket is answered 403.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from urllib.error import URLError
from urllib.request import Request, urlopen

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
STARTUP_SECONDS = 30


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PlainMotoServer:
    def __init__(self) -> None:
        self.endpoint = ""
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        port = _free_port()
        repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        path = os.pathsep.join(p for p in (repo, os.environ.get("PYTHONPATH", "")) if p)
        env = {**os.environ, "MOTO_S3_ALLOW_CROSSACCOUNT_ACCESS": "false", "PYTHONPATH": path}
        self._process = subprocess.Popen(
            # moto's server with SageMaker Search as AWS documents it (tests/moto_search.py)
            [sys.executable, "-m", "tests.moto_search", "-H", "127.0.0.1", "-p", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.endpoint = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            try:
                with urlopen(f"{self.endpoint}/moto-api/data.json", timeout=2):
                    return
            except (URLError, ConnectionError, TimeoutError):
                if self._process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"moto server did not start on {self.endpoint}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    def reset(self) -> None:
        with urlopen(Request(f"{self.endpoint}/moto-api/reset", method="POST"), timeout=30):
            pass

    def env(self) -> dict[str, str]:
        """This server and test credentials, and nothing of this machine's AWS setup."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }


# Variables that would redirect or re-authenticate boto3 if a developer's shell has them.
FOREIGN_ENV = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_REGION",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)
