"""ssm_rules: Snakemake rules that run as Amazon SageMaker jobs.

In a Snakefile::

    from ssm_rules import model, output_data, state, sharded, unpacked, local_input, job,
    extract

The helpers come from :mod:`ssm_rules.rules`, imported on first use: a process that needs
another part of the package (a local job's runner, the executor plugin) does not pay for
them.
"""

from __future__ import annotations

__all__ = [
    "extract",
    "job",
    "local_input",
    "model",
    "output_data",
    "sharded",
    "state",
    "tensorboard",
    "unpacked",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    if name in __all__:
        from ssm_rules import rules

        return getattr(rules, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
