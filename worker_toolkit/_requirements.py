"""requirements.txt failures, told as sagemaker-training-toolkit tells them.

Shared by the launcher (processing jobs on SageMaker install the bundle's requirements.txt
themselves) and the local backend (which installs it for every job): standard library only.
"""

from __future__ import annotations

import re

__all__ = ["REQUIREMENTS_FILE", "failing_line", "install_failure_text"]

REQUIREMENTS_FILE = "requirements.txt"
ERROR_LINES_KEPT = 8  # of pip's ERROR lines, the last ones (FailureReason keeps 1024 chars)

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()  # PEP 503


def failing_line(requirements: str, error_output: str) -> str | None:
    """``requirements.txt line N: <line>`` for the first requirement pip's errors name.

    pip names the requirement it could not satisfy or build ("No matching distribution found
    for nosuchpkg==2.0", "Failed to build 'x'"), not always its line: find it in the file.
    """
    errors = _normalized(" ".join(ln for ln in error_output.splitlines() if "error" in ln.lower()))
    words = set(re.split(r"[^a-z0-9-]+", errors))
    for number, raw in enumerate(requirements.splitlines(), start=1):
        line = raw.split(" #", 1)[0].strip()
        match = _NAME.match(line)
        if not line or line.startswith(("#", "-")) or match is None:
            continue
        if _normalized(match.group(1)) in words:
            return f"{REQUIREMENTS_FILE} line {number}: {line}"
    return None


def install_failure_text(command: str, exit_code: int, output: str, culprit: str | None) -> str:
    """The toolkit's ``InstallRequirementsError`` message (errors._CalledProcessError): pip's
    error lines as ErrorMessage, the requirement found at fault as ExtraInfo."""
    lines = [ln for ln in output.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.lstrip().upper().startswith("ERROR")] or lines[-5:]
    errors = errors[-ERROR_LINES_KEPT:]
    extra = f'\nExtraInfo "{culprit}"' if culprit else ""
    return (
        f'InstallRequirementsError:\nExitCode {exit_code}\nErrorMessage "{chr(10).join(errors)}"'
        f'{extra}\nCommand "{command}"'
    )
