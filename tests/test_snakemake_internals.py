"""Guards ssm_rules/_snakemake_internals.py: every Snakemake internal it relies on exists, with
the shape it expects, on the installed Snakemake. A Snakemake release that renames or reshapes
one fails here, naming it, before any workflow fails in a way that is hard to read."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
from pathlib import Path
from typing import Any

import pytest

import ssm_rules._snakemake_internals as internals

# (owner, attribute): an attribute of a class (a property, a method, a slot, or one its own
# methods assign), or a module-level name. What each is used for is in _snakemake_internals.
ATTRIBUTES = [
    ("snakemake.io", "flag"),
    ("snakemake.io", "directory"),
    ("snakemake.io._IOFile", "flags"),
    ("snakemake.io._IOFile", "is_storage"),
    ("snakemake.io._IOFile", "storage_object"),
    ("snakemake.iocontainers.Namedlist", "_names"),
    ("snakemake.iocontainers.Namedlist", "_set_name"),
    ("snakemake.iocontainers", "InputFiles"),
    ("snakemake.iocontainers", "OutputFiles"),
    ("snakemake.iocontainers", "Log"),
    ("snakemake.iocontainers", "Params"),
    ("snakemake.path_modifier", "PATH_MODIFIER_FLAG"),
    ("snakemake.path_modifier.PathModifier", "modify"),
    ("snakemake.path_modifier.PathModifier", "apply_default_storage"),
    ("snakemake.rules.Rule", "shellcmd"),
    ("snakemake.rules.Rule", "script"),
    ("snakemake.rules.Rule", "notebook"),
    ("snakemake.rules.Rule", "wrapper"),
    ("snakemake.rules.Rule", "norun"),
    ("snakemake.rules.Rule", "is_template_engine"),
    ("snakemake.rules.Rule", "group"),
    ("snakemake.rules.Rule", "workflow"),
    ("snakemake.jobs.Job", "rule"),
    ("snakemake.jobs.Job", "dag"),
    ("snakemake.jobs.Job", "params"),
    ("snakemake.jobs.Job", "wildcards_dict"),
    ("snakemake.jobs.Job", "format_wildcards"),
    ("snakemake.dag.DAG", "needrun_jobs"),
    ("snakemake.dag.DAG", "toposorted"),
    ("snakemake.dag.DAG", "jobs"),
    ("snakemake.dag.DAG", "dependencies"),
    ("snakemake.dag.DAG", "reason"),
    ("snakemake.dag.DAG", "forcerules"),
    ("snakemake.dag.DAG", "omitforce"),
    ("snakemake.dag.DAG", "targetfiles"),
    ("snakemake.dag.DAG", "workflow"),
    ("snakemake.dag.ScriptProcessor", "process_job"),
    ("snakemake.dag.DAGProcessorBase", "process"),
    ("snakemake.workflow.Workflow", "_localrules"),
    ("snakemake.workflow.Workflow", "_executor_plugin"),
    ("snakemake.workflow.Workflow", "global_resources"),
    ("snakemake.workflow.Workflow", "dag_settings"),
    ("snakemake.workflow.Workflow", "modifier"),
    ("snakemake.workflow.Workflow", "is_rule"),
    ("snakemake.workflow.Workflow", "dryrun"),
    ("snakemake.workflow.Workflow", "remote_execution_settings"),
    ("snakemake.settings.types.PreemptibleRules", "is_preemptible"),
    ("snakemake.logging", "logger"),
    ("snakemake.common", "get_appdirs"),
    ("snakemake_storage_plugin_s3.StorageObject", "_is_dir"),
]

# callables whose leading parameters we pass by position
SIGNATURES = [
    ("snakemake.io", "flag", ["value", "flag_type", "flag_value"]),
    ("snakemake.iocontainers.Namedlist", "_set_name", ["self", "name", "index", "end"]),
    ("snakemake.dag.DAG", "toposorted", ["self", "jobs"]),
    ("snakemake.dag.DAG", "needrun_jobs", ["self"]),
    ("snakemake.dag.DAG", "reason", ["self", "job"]),
    ("snakemake.dag.ScriptProcessor", "process_job", ["self", "job"]),
    ("snakemake.path_modifier.PathModifier", "apply_default_storage", ["self", "path"]),
    ("snakemake.settings.types.PreemptibleRules", "is_preemptible", ["self", "rulename"]),
]

# settings dataclasses and the fields read off them
FIELDS = [
    ("snakemake.settings.types.DAGSettings", ["forcerun", "forcetargets", "target_jobs"]),
    ("snakemake.settings.types.DAGSettings", ["target_files_omit_workdir_adjustment"]),
    ("snakemake.settings.types.RemoteExecutionSettings", ["preemptible_rules"]),
    ("snakemake.settings.types.RemoteExecutionSettings", ["preemptible_retries"]),
]


def _version() -> str:
    import snakemake

    return getattr(snakemake, "__version__", "?")


def _changed(what: str) -> str:
    return (
        f"Snakemake {_version()} no longer has {what} as ssm_rules/_snakemake_internals.py "
        "uses it: adapt that module (the only one reading Snakemake internals) to this release"
    )


def _resolve(dotted: str) -> Any:
    """A module, or a class inside one (``snakemake.dag.DAG``)."""
    import snakemake.api  # noqa: F401 — first: snakemake.dag alone is a circular import

    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            owner: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            owner = getattr(owner, name)
        return owner
    raise ImportError(dotted)


def _assigned_by_its_methods(cls: type, name: str) -> bool:
    """``self.<name> = ...`` in a method of the class or a base (attributes made per instance)."""
    for klass in cls.__mro__:
        try:
            tree = ast.parse(inspect.getsource(klass))
        except (OSError, TypeError, SyntaxError):
            continue
        for node in ast.walk(tree):
            targets = (
                node.targets
                if isinstance(node, ast.Assign)
                else [node.target]
                if isinstance(node, ast.AnnAssign)
                else []
            )
            for target in targets:
                if (
                    isinstance(target, ast.Attribute)
                    and target.attr == name
                    and isinstance(target.value, ast.Name)
                    and target.value.id == "self"
                ):
                    return True
    return False


@pytest.mark.parametrize(("owner", "name"), ATTRIBUTES, ids=[f"{o}.{n}" for o, n in ATTRIBUTES])
def test_the_attribute_is_there(owner: str, name: str) -> None:
    try:
        where = _resolve(owner)
    except (ImportError, AttributeError):
        pytest.fail(_changed(owner))
    present = hasattr(where, name) or (
        inspect.isclass(where) and _assigned_by_its_methods(where, name)
    )
    assert present, _changed(f"{owner}.{name}")


@pytest.mark.parametrize(
    ("owner", "name", "params"), SIGNATURES, ids=[f"{o}.{n}" for o, n, _ in SIGNATURES]
)
def test_the_callable_takes_what_we_pass(owner: str, name: str, params: list[str]) -> None:
    function = getattr(_resolve(owner), name, None)
    assert callable(function), _changed(f"{owner}.{name}")
    found = list(inspect.signature(function).parameters)[: len(params)]
    assert found == params, _changed(f"{owner}.{name}({', '.join(params)}, ...): it is {found}")


@pytest.mark.parametrize(("owner", "names"), FIELDS, ids=[o + str(n) for o, n in FIELDS])
def test_the_settings_have_the_fields(owner: str, names: list[str]) -> None:
    present = {f.name for f in dataclasses.fields(_resolve(owner))}
    missing = [n for n in names if n not in present]
    assert not missing, _changed(f"{owner}.{', '.join(missing)}")


def test_a_dry_runs_executor_is_where_dry_run_target_reads_it() -> None:
    """dry_run_target reads the executor asked for off the stack: up to 9.20 locals of
    ``DAGApi.execute_workflow``; from 9.21 ``args_to_api``'s ``args`` and ``parser``, called
    by ``main`` with its ``argv``, after it replaced ``args.executor`` by "dryrun"."""
    code = _resolve("snakemake.api.DAGApi").execute_workflow.__code__
    if "pseudo_executor" in code.co_varnames:
        for local in ("executor", "executor_settings"):
            assert local in code.co_varnames, _changed(f"DAGApi.execute_workflow's {local!r}")
        return
    cli = importlib.import_module("snakemake.cli")
    to_api = cli.args_to_api
    assert list(inspect.signature(to_api).parameters)[:2] == ["args", "parser"], _changed(
        "snakemake.cli.args_to_api(args, parser)"
    )
    assert 'args.executor = "dryrun"' in inspect.getsource(to_api), _changed(
        "args_to_api's dry run executor"
    )
    main = inspect.getsource(cli.main)
    assert "args_to_api(args, parser)" in main and "argv" in cli.main.__code__.co_varnames, (
        _changed("snakemake.cli.main(argv) calling args_to_api(args, parser)")
    )


def test_the_path_modifier_leaves_a_flagged_path_alone() -> None:
    """keep_local_path relies on PathModifier.modify returning a pre-flagged path as it is."""
    source = inspect.getsource(_resolve("snakemake.path_modifier.PathModifier").modify)
    assert "get_flag_value(path, PATH_MODIFIER_FLAG)" in source, _changed(
        "PathModifier.modify's early return for paths flagged PATH_MODIFIER_FLAG"
    )


def test_only_the_internals_module_imports_snakemake() -> None:
    """Outside _snakemake_internals.py ssm_rules imports only the plugin interfaces."""
    root = Path(internals.__file__).resolve().parent.parent
    offenders = []
    for package in (
        "ssm_rules",
        "snakemake_executor_plugin_sagemaker",
        "snakemake_logger_plugin_sagemaker",
    ):
        for path in sorted((root / package).rglob("*.py")):
            if path.name == "_snakemake_internals.py":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                names = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else []
                )
                if any(n == "snakemake" or n.startswith("snakemake.") for n in names):
                    offenders.append(f"{path.relative_to(root)}:{node.lineno}")
    assert not offenders, f"Snakemake internals imported outside the internals module: {offenders}"
