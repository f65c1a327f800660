"""Server-side faults for the moto server: "fail the next k requests of operation X".

Each fault is answered the way AWS answers it, per protocol, so that botocore's retry handler
(standard mode) classifies it exactly as it would on AWS:

| kind        | JSON 1.1 (SageMaker, Logs)         | REST-XML (S3)                     | query (STS)              |
|-------------|------------------------------------|-----------------------------------|--------------------------|
| throttle    | 400, ``__type`` ThrottlingException | 503 ``<Code>SlowDown</Code>``     | 400 ``Throttling``       |
| internal    | 500 InternalFailure                | 500 InternalError                 | 500 InternalFailure      |
| unavailable | 503 ServiceUnavailable             | 503 ServiceUnavailable            | 503 ServiceUnavailable   |

(S3 throttles with 503 SlowDown, never with a 400 ThrottlingException.) botocore retries the
throttling codes (ThrottlingException, Throttling, SlowDown) and every 500/502/503/504.

A hold (``FaultTable.hold``) keeps one matching request waiting at the server, without
reaching moto, until the test releases it (with ``after=True``: moto acts first and the reply is
held); then it is answered 500 (nobody is listening any more): the test kills the client while it is blocked at a known step, deterministically.
``once_seen`` arms a hold only after another request was seen (e.g. "the HeadObject that
follows the promotion's last PutObject").

A fault normally answers *instead of* moto (the request never reached the service). With
``after=True`` moto handles the request first and the error is answered instead of its reply:
the service acted, but the client never heard (a reply lost to a 500 or a dropped connection),
which is when a retried Create*Job meets its own job.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from enum import StrEnum

JSON_SERVICES = ("sagemaker", "logs")
QUERY_SERVICES = ("sts",)


class FaultKind(StrEnum):
    THROTTLE = "throttle"
    INTERNAL = "internal"
    UNAVAILABLE = "unavailable"


@dataclass
class Fault:
    service: str  # SigV4 signing name, as ApiCall.service: "sagemaker", "s3", "logs", "sts"
    operation: str  # as ApiCall.operation: "CreateTrainingJob", "CopyObject", ...
    kind: FaultKind
    times: int | None  # requests still to fail; None: every one (a persistent fault)
    after: bool = False  # let moto act first, then answer the error instead of its reply
    path: str | None = None  # only requests whose URL path starts with this
    skip: int = 0  # let this many matching requests through first
    injected: int = 0  # requests failed so far

    def matches(self, service: str, operation: str, path: str) -> bool:
        return (
            (service, operation) == (self.service, self.operation)
            and (self.path is None or path.startswith(self.path))
            and (self.times is None or self.times > 0)
        )


@dataclass
class Hold:
    service: str
    operation: str
    path: str | None = None  # only requests whose URL path starts with this
    once_seen: tuple[str, str, str] | None = None  # (service, operation, path prefix) first
    after: bool = False  # moto acts first, the reply is held (and lost)
    armed: bool = True
    reached: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    def wait_reached(self, timeout: float = 60) -> None:
        if not self.reached.wait(timeout):
            raise AssertionError(f"no {self.service} {self.operation} {self.path or ''} came")


class FaultTable:
    """The faults a test asked for (thread-safe: the server answers from many threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._holds: list[Hold] = []

    def add(
        self,
        service: str,
        operation: str,
        kind: FaultKind | str = FaultKind.THROTTLE,
        times: int | None = 1,
        after: bool = False,
        path: str | None = None,
        skip: int = 0,
    ) -> Fault:
        fault = Fault(service, operation, FaultKind(kind), times, after, path, skip)
        with self._lock:
            self._faults.append(fault)
        return fault

    def take(self, service: str, operation: str, path: str) -> Fault | None:
        """The first fault for this request, counted as injected (None: answer normally)."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(service, operation, path):
                    if fault.skip > 0:
                        fault.skip -= 1
                        continue
                    fault.injected += 1
                    if fault.times is not None:
                        fault.times -= 1
                    return fault
        return None

    def hold(
        self,
        service: str,
        operation: str,
        path: str | None = None,
        once_seen: tuple[str, str, str] | None = None,
        after: bool = False,
    ) -> Hold:
        hold = Hold(service, operation, path, once_seen, after, armed=once_seen is None)
        with self._lock:
            self._holds.append(hold)
        return hold

    def take_hold(self, service: str, operation: str, path: str) -> Hold | None:
        """Arms the holds waiting for this request; the first armed hold it matches (taken:
        a hold stops one request)."""
        with self._lock:
            for hold in self._holds:
                if not hold.armed and hold.once_seen is not None:
                    seen_service, seen_operation, seen_path = hold.once_seen
                    if (service, operation) == (seen_service, seen_operation) and path.startswith(
                        seen_path
                    ):
                        hold.armed = True
                        return None
            for hold in self._holds:
                if (
                    hold.armed
                    and not hold.reached.is_set()
                    and (service, operation) == (hold.service, hold.operation)
                    and (hold.path is None or path.startswith(hold.path))
                ):
                    hold.reached.set()
                    return hold
        return None

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            for hold in self._holds:
                hold.released.set()
            self._holds.clear()


# --- what AWS answers ---------------------------------------------------------------------------

_STATUS = {
    FaultKind.THROTTLE: "400 Bad Request",
    FaultKind.INTERNAL: "500 Internal Server Error",
    FaultKind.UNAVAILABLE: "503 Service Unavailable",
}
_JSON = {
    FaultKind.THROTTLE: ("ThrottlingException", "Rate exceeded"),
    FaultKind.INTERNAL: ("InternalFailure", "An internal error occurred. Try again."),
    FaultKind.UNAVAILABLE: ("ServiceUnavailable", "Service is unavailable. Try again."),
}
_S3 = {
    FaultKind.THROTTLE: ("503 Slow Down", "SlowDown", "Please reduce your request rate."),
    FaultKind.INTERNAL: (
        "500 Internal Server Error",
        "InternalError",
        "We encountered an internal error. Please try again.",
    ),
    FaultKind.UNAVAILABLE: (
        "503 Service Unavailable",
        "ServiceUnavailable",
        "Service is unable to handle request.",
    ),
}
_QUERY_CODES = {
    FaultKind.THROTTLE: ("Sender", "Throttling", "Rate exceeded"),
    FaultKind.INTERNAL: ("Receiver", "InternalFailure", "An internal error occurred."),
    FaultKind.UNAVAILABLE: ("Receiver", "ServiceUnavailable", "Service is unavailable."),
}

Response = tuple[str, list[tuple[str, str]], bytes]


def error_response(service: str, kind: FaultKind, method: str) -> Response:
    """(status line, headers, body) of the error AWS would send for this fault."""
    request_id = str(uuid.uuid4())
    if service in JSON_SERVICES:
        code, message = _JSON[kind]
        body = json.dumps({"__type": code, "message": message}).encode()
        headers = [
            ("Content-Type", "application/x-amz-json-1.1"),
            ("x-amzn-RequestId", request_id),
            ("x-amzn-ErrorType", code),
        ]
        return _STATUS[kind], headers, body
    if service in QUERY_SERVICES:
        kind_of, code, message = _QUERY_CODES[kind]
        body = (
            "<ErrorResponse><Error>"
            f"<Type>{kind_of}</Type><Code>{code}</Code><Message>{message}</Message>"
            f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
        return _STATUS[kind], [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)], body
    status, code, message = _S3[kind]
    headers = [("x-amz-request-id", request_id[:16].upper()), ("x-amz-id-2", request_id)]
    if method == "HEAD":  # S3 answers HEAD errors with the status alone
        return status, [*headers, ("Content-Length", "0")], b""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        f"<RequestId>{request_id[:16].upper()}</RequestId><HostId>{request_id}</HostId></Error>"
    ).encode()
    return status, [*headers, ("Content-Type", "application/xml")], body
