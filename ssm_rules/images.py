"""Image URIs from framework/version/py_version, through the SageMaker SDK (no hand-written table).

``sagemaker.core.image_uris.retrieve`` works offline from the JSON tables shipped with
sagemaker-core; it is heavy to import (about 6 s on a loaded machine, most of the time
before a large plan's first job), so a resolved URI is kept on disk in the user's cache
directory (``$XDG_CACHE_HOME/ssm_rules/image-uris.json``, beside the price cache) and a run
that already knows it never imports sagemaker-core. The key holds what ``retrieve`` reads:
framework, version, py_version, region, the instance family (the SDK picks cpu / gpu /
graviton / neuron images from the family, never from the size) and the image scope, plus
the installed sagemaker-core version (a newer SDK may name newer images).
"""

from __future__ import annotations

import difflib
import functools
import importlib.metadata
import json
import logging
import threading
from pathlib import Path
from typing import Any

from ssm_rules.backends.base import JobType
from ssm_rules.pricing import cache_dir
from ssm_rules.rules import JobOptions
from ssm_rules.spec import SpecError

log = logging.getLogger(__name__)

DEFAULT_VERSIONS = {"pytorch": ("2.8", "py312"), "tensorflow": ("2.19", "py312")}
# script-mode processing runs on the framework's training image, as the SDK's
# FrameworkProcessor does: the scope is the same for both job types
IMAGE_SCOPE = "training"
_cache_lock = threading.Lock()


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


def cache_file() -> Path:
    return cache_dir() / "image-uris.json"


def cache_key(
    framework: str, version: str | None, py_version: str | None, region: str, instance_type: str
) -> str:
    family = instance_type.rsplit(".", 1)[0]  # ml.g5.xlarge -> ml.g5
    sdk = _sdk_version()
    return "|".join(map(str, (sdk, framework, version, py_version, region, family, IMAGE_SCOPE)))


@functools.cache
def _sdk_version() -> str:
    try:
        return importlib.metadata.version("sagemaker-core")
    except importlib.metadata.PackageNotFoundError:
        return "none"


def _read_cache() -> dict[str, str]:
    try:
        data = json.loads(cache_file().read_text())
    except (OSError, ValueError):
        return {}  # missing or unreadable: resolved again, and rewritten
    return data if isinstance(data, dict) else {}


def _write_cache(key: str, uri: str) -> None:
    from ssm_rules.objects import write_text_atomic

    path = cache_file()
    with _cache_lock:
        try:
            data = {**_read_cache(), key: uri}
            write_text_atomic(path, json.dumps(data, indent=1, sort_keys=True))
        except OSError as e:  # a cache that cannot be written only costs time
            log.debug("could not cache the image URI in %s: %s", path, e)


def _retrieve(
    rule: str,
    framework: str,
    version: str | None,
    py_version: str | None,
    region: str,
    instance_type: str,
) -> str:
    key = cache_key(framework, version, py_version, region, instance_type)
    uri = _known.get(key) or _read_cache().get(key)
    if not uri:
        uri = _resolve(rule, framework, version, py_version, region, instance_type)
        _write_cache(key, uri)
    _known[key] = uri
    return uri


_known: dict[str, str] = {}  # this process's resolved URIs by cache key


def _resolve(
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
        uri: str = image_uris.retrieve(
            framework,
            region=region,
            version=version,
            py_version=py_version,
            instance_type=instance_type,
            image_scope=IMAGE_SCOPE,
        )
        return uri
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
