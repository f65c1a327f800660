"""ssm_rules: Snakemake rules that run as Amazon SageMaker jobs.

In a Snakefile::

    from ssm_rules import model, output_data, state, sharded, unpacked, local_input, job,
    extract
"""

from ssm_rules.rules import (
    extract,
    job,
    local_input,
    model,
    output_data,
    sharded,
    state,
    tensorboard,
    unpacked,
)

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
