"""Run a rule's Python ``script:`` with the ``snakemake`` object Snakemake scripts expect.

Snakemake runs a ``script:`` with a global ``snakemake`` (``snakemake.input[0]``,
``snakemake.output.model``, ``snakemake.params.lr``, ``snakemake.wildcards.sample``,
``snakemake.log[0]``, ``snakemake.threads``). Inside a SageMaker job there is no Snakemake,
so the launcher runs the script through this module, which builds a small stand-in from the
task description, with every path already the job's own path. Scripts written for SageMaker
script mode (argparse over the hyperparameters, ``WorkerConfig``) run unchanged too: the
hyperparameters stay on the command line.

Usage (by the launcher): ``python -m worker_toolkit.snakemake_script <script.py> [args...]``
with the description in the environment variable ``SSM_SNAKEMAKE`` (JSON).
"""

from __future__ import annotations

import json
import os
import runpy
import sys
from typing import Any

ENV_SNAKEMAKE = "SSM_SNAKEMAKE"


class Namedlist(list):  # type: ignore[type-arg]
    """A list whose items can also be reached by name, as Snakemake's Namedlist."""

    def __init__(self, items: list[list[Any]] | None = None) -> None:
        super().__init__()
        self._names: dict[str, tuple[int, int]] = {}
        spans: dict[str, list[int]] = {}
        for i, (name, value) in enumerate(items or []):
            self.append(value)
            if name:
                spans.setdefault(name, []).append(i)
        for name, idx in spans.items():
            self._names[name] = (idx[0], idx[-1] + 1)

    def __getattr__(self, name: str) -> Any:
        try:
            start, end = self.__dict__["_names"][name]
        except KeyError:
            raise AttributeError(name) from None
        if end - start == 1:
            return self[start]
        return Namedlist([[None, v] for v in self[start:end]])

    def get(self, name: str, default: Any = None) -> Any:
        try:
            return getattr(self, name)
        except AttributeError:
            return default

    def keys(self) -> list[str]:
        return list(self._names)

    def items(self) -> list[tuple[str, Any]]:
        return [(n, getattr(self, n)) for n in self._names]

    def __str__(self) -> str:
        return " ".join(map(str, self))


class Snakemake:
    """What a Snakemake script sees as ``snakemake``."""

    def __init__(self, spec: dict[str, Any], hps: dict[str, Any]) -> None:
        self.input = Namedlist(spec.get("input"))
        self.output = Namedlist(spec.get("output"))
        self.log = Namedlist(spec.get("log"))
        self.params = Namedlist([[n, hps.get(n)] for n in spec.get("params", [])])
        self.wildcards = Namedlist([[k, v] for k, v in (spec.get("wildcards") or {}).items()])
        self.threads = int(spec.get("threads") or os.cpu_count() or 1)
        self.resources = Namedlist([[k, v] for k, v in (spec.get("resources") or {}).items()])
        self.config: dict[str, Any] = dict(spec.get("config") or {})
        self.rule = spec.get("rule", "")
        self.bench_iteration = None
        self.scriptdir = os.path.dirname(os.path.abspath(sys.argv[0])) if sys.argv else ""

    def log_fmt_shell(self, stdout: bool = True, stderr: bool = True, append: bool = False) -> str:
        """As Snakemake's: redirect a shell command's output to the rule's log."""
        if not self.log:
            return ""
        target = str(self.log[0])
        op = ">>" if append else ">"
        if stdout and stderr:
            return f" {op} {target} 2>&1"
        return f" {op} {target}" if stdout else f" 2{op} {target}"


def main(argv: list[str]) -> None:
    script, args = argv[0], argv[1:]
    spec = json.loads(os.environ.get(ENV_SNAKEMAKE) or "{}")
    hps = json.loads(os.environ.get("SM_HPS") or "{}")  # already decoded by the toolkit
    sys.argv = [script, *args]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))  # as `python script.py` does
    runpy.run_path(script, init_globals={"snakemake": Snakemake(spec, hps)}, run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
