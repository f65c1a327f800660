"""Resolved image URIs are cached on disk: a run that knows them never imports sagemaker-core."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ssm_rules import images
from ssm_rules.backends.base import JobType
from ssm_rules.rules import job
from tests.e2e import REPO

RESOLVE = """
import sys
from ssm_rules.images import image_uri
from ssm_rules.rules import job
from ssm_rules.backends.base import JobType
print(image_uri(job(framework="pytorch"), "train", "us-east-1", sys.argv[1], JobType.TRAINING))
print("sagemaker.core" in sys.modules)
"""


def resolve_in_a_new_process(instance_type: str, cache: Path) -> tuple[str, bool]:
    out = subprocess.run(
        [sys.executable, "-c", RESOLVE, instance_type],
        env={"XDG_CACHE_HOME": str(cache), "PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return out[0], out[1] == "True"


def test_a_known_uri_is_read_from_the_cache_without_importing_the_sdk(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    uri, imported = resolve_in_a_new_process("ml.g5.xlarge", cache)
    assert imported and uri.endswith("/pytorch-training:2.8-gpu-py312")
    assert (cache / "ssm_rules" / "image-uris.json").is_file()
    # the same family, another size: the same image, from the cache
    assert resolve_in_a_new_process("ml.g5.2xlarge", cache) == (uri, False)
    # another family is another image: resolved, not taken from the cache
    cpu, imported = resolve_in_a_new_process("ml.m5.large", cache)
    assert imported and cpu.endswith("/pytorch-training:2.8-cpu-py312")


def test_an_unreadable_cache_is_resolved_again_and_rewritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(images, "_known", {})
    images.cache_file().parent.mkdir(parents=True)
    images.cache_file().write_text("{not json")
    uri = images.image_uri(
        job(framework="pytorch"), "t", "eu-west-1", "ml.m5.large", JobType.TRAINING
    )
    assert uri.startswith("763104351884.dkr.ecr.eu-west-1.amazonaws.com/pytorch-training:2.8-cpu")
    key = images.cache_key("pytorch", "2.8", "py312", "eu-west-1", "ml.m5.large")
    assert json.loads(images.cache_file().read_text()) == {key: uri}


def test_a_refused_framework_is_not_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(images.SpecError, match="pytorh"):
        images.image_uri(job(framework="pytorh"), "t", "us-east-1", "ml.m5.large", JobType.TRAINING)
    assert not images.cache_file().exists()
