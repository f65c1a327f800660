"""The one place that leans on Snakemake internals (guarded by tests/test_snakemake_internals.py).

Under ``--default-storage-provider`` Snakemake rewrites every relative path to a storage
object, except paths already flagged ``path_modified`` (``PathModifier.modify`` returns
them untouched). ``local()`` would keep the path too, but a job with a ``local()`` file is
always run on the local machine when there is no shared file system, never submitted.
"""

from __future__ import annotations

from typing import Any


def keep_local_path(path: Any) -> Any:
    from snakemake.io import flag
    from snakemake.path_modifier import PATH_MODIFIER_FLAG

    return flag(path, PATH_MODIFIER_FLAG, True)
