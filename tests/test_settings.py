"""--sagemaker-* settings through Snakemake's own plugin registry: what argparse refuses (the
field metadata's choices) and what parse_func turns the strings into."""

from __future__ import annotations

import argparse

import pytest
from snakemake_interface_executor_plugins.registry import ExecutorPluginRegistry

from ssm_rules.settings import ExecutorSettings


def _parser() -> tuple[argparse.ArgumentParser, object]:
    plugin = ExecutorPluginRegistry().get_plugin("sagemaker")
    parser = argparse.ArgumentParser(prog="snakemake")
    plugin.register_cli_args(parser, "executor")
    return parser, plugin


def test_a_backend_that_does_not_exist_is_refused_by_the_command_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser, _ = _parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["--sagemaker-backend", "sagemaker"])
    assert "invalid choice: 'sagemaker' (choose from 'local', 'aws')" in capsys.readouterr().err


def test_comma_separated_ids_become_tuples_and_back() -> None:
    parser, plugin = _parser()
    args = parser.parse_args(
        ["--sagemaker-subnets", "subnet-1, subnet-2,", "--sagemaker-security-group-ids", "sg-1"]
    )
    settings = plugin.get_settings(args)  # type: ignore[attr-defined]
    assert settings.subnets == ("subnet-1", "subnet-2") and settings.security_group_ids == ("sg-1",)
    assert (settings.subnet_list, settings.security_group_list) == (
        ["subnet-1", "subnet-2"],
        ["sg-1"],
    )
    field = next(f for f in ExecutorSettings.__dataclass_fields__.values() if f.name == "subnets")
    assert field.metadata["unparse_func"](settings.subnets) == "subnet-1,subnet-2"
    assert plugin.get_settings(parser.parse_args([])).subnets is None  # type: ignore[attr-defined]


def test_settings_made_in_python_take_the_same_strings() -> None:
    settings = ExecutorSettings(subnets="subnet-1,subnet-2", security_group_ids="sg-1")
    assert settings.subnet_list == ["subnet-1", "subnet-2"] and settings.security_group_list == [
        "sg-1"
    ]
