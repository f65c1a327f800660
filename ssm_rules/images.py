"""Image URIs from framework/version/py_version, through the SageMaker SDK (no hand-written table).

``sagemaker.core.image_uris.retrieve`` works offline from the JSON tables shipped with
sagemaker-core; it is heavy to import, so only done when a job needs an image.
"""

from __future__ import annotations

import difflib
import functools
from pathlib import Path
from typing import Any

from ssm_rules.backends.base import JobType
from ssm_rules.rules import JobOptions
from ssm_rules.spec import SpecError

DEFAULT_VERSIONS = {"pytorch": ("2.8", "py312"), "tensorflow": ("2.19", "py312")}


def image_uri(
    options: JobOptions, rule: str, region: str, instance_type: str, job_type: JobType
) -> str:
    if options.image_uri:
        return options.image_uri
    framework = options.framework
    version, py = DEFAULT_VERSIONS.get(framework, (None, None))
    return _retrieve(
        rule,
        framework,
        options.framework_version or version,
        options.py_version or py,
        region,
        instance_type,
    )


@functools.cache
def _retrieve(
    rule: str,
    framework: str,
    version: str | None,
    py_version: str | None,
    region: str,
    instance_type: str,
) -> str:
    try:
        from sagemaker.core import image_uris
    except ImportError as e:  # pragma: no cover - sagemaker-core is a dependency
        raise SpecError(
            f"rule {rule}: resolving the {framework} image needs sagemaker-core "
            "(pip install sagemaker-core), or give job(image_uri=...)"
        ) from e
    frameworks = _frameworks(image_uris)
    if frameworks and framework not in frameworks:
        # retrieve() opens image_uri_config/<framework>.json: a raw FileNotFoundError otherwise
        close = difflib.get_close_matches(framework, frameworks, n=3, cutoff=0.6)
        hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
        raise SpecError(
            f"rule {rule}: job(framework={framework!r}) is not a framework the SageMaker SDK "
            f"has images for: {hint}write e.g. framework='pytorch', 'tensorflow', "
            f"'huggingface', 'sklearn' or 'xgboost' ({len(frameworks)} known), or give "
            "job(image_uri=...)"
        )
    try:
        # script-mode processing runs on the framework's training image, as the SDK's
        # FrameworkProcessor does
        return image_uris.retrieve(
            framework,
            region=region,
            version=version,
            py_version=py_version,
            instance_type=instance_type,
            image_scope="training",
        )
    except ValueError as e:
        if "region" in str(e).lower():
            raise SpecError(
                f"rule {rule}: the SageMaker SDK has no {framework} image in region {region!r}: "
                "pass --sagemaker-region <a SageMaker region> (or set AWS_DEFAULT_REGION), "
                "or give job(image_uri=...)"
            ) from e
        raise SpecError(
            f"rule {rule}: no SageMaker image for framework={framework!r} "
            f"framework_version={version!r} py_version={py_version!r} on "
            f"{instance_type} in {region}: {e}. Fix job(framework=..., "
            "framework_version=..., py_version=...) or give job(image_uri=...)"
        ) from e


def _frameworks(image_uris: Any) -> list[str]:
    """The frameworks sagemaker-core has image tables for (its image_uri_config/*.json)."""
    config = Path(image_uris.__file__).parent / "image_uri_config"
    return sorted(p.stem for p in config.glob("*.json") if p.stem != "instance_gpu_info")
