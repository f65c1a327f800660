"""``python -m ssm_rules install-profile``: install a profile where ``--profile <name>`` finds it.

Snakemake 9 looks up ``--profile sagemaker`` as ``./sagemaker``, then
``$XDG_CONFIG_HOME/snakemake/sagemaker`` (``~/.config/snakemake/sagemaker``), then
``/etc/xdg/snakemake/sagemaker`` — never ``./profiles/sagemaker`` (that is where
``--workflow-profile`` looks). This copies ``profiles/<name>/config.yaml`` to the user location,
optionally filling in the storage prefix and the ``--sagemaker-*`` settings.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path

PROFILES = ("sagemaker", "local")
PROFILE_FILE = "config.yaml"


def user_profile_dir(name: str) -> Path:
    """Where ``snakemake --profile <name>`` looks after the current directory."""
    from ssm_rules._snakemake_internals import user_config_dir

    return user_config_dir() / name


def source_profile(name: str) -> Path:
    """The profile shipped with ssm_rules: in the wheel (``ssm_rules/_profiles``, when
    packaged) or in the source checkout / editable install (``profiles/``)."""
    package = Path(__file__).resolve().parent
    for candidate in (package / "_profiles" / name, package.parent / "profiles" / name):
        if (candidate / PROFILE_FILE).is_file():
            return candidate / PROFILE_FILE
    raise SystemExit(
        f"error: profile {name!r} is not in this installation ({package}): install ssm_rules "
        "from its source checkout (pip install -e .) or copy profiles/<name>/ yourself"
    )


def set_key(text: str, key: str, value: str) -> str:
    """Set ``key: value``, replacing the key's line (also a commented-out one) or appending."""
    line = f"{key}: {json.dumps(value)}"  # a JSON string is a YAML string
    pattern = re.compile(rf"^#?\s*{re.escape(key)}:.*$", re.MULTILINE)
    if pattern.search(text):
        return pattern.sub(lambda _: line, text, count=1)
    return text.rstrip("\n") + "\n" + line + "\n"


def render(text: str, args: argparse.Namespace) -> str:
    if args.storage_prefix:
        if not re.fullmatch(r"s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?", args.storage_prefix):
            raise SystemExit(
                f"error: --storage-prefix {args.storage_prefix!r} is not an S3 prefix: "
                "write s3://<bucket>/<prefix>"
            )
        text = set_key(text, "default-storage-prefix", args.storage_prefix.rstrip("/"))
    for key in ("role", "region", "bucket"):
        value = getattr(args, key)
        if value:
            text = set_key(text, f"sagemaker-{key}", value)
    return text


def install_profile(args: argparse.Namespace) -> int:
    source = source_profile(args.name)
    dest_dir = Path(args.dest).expanduser() if args.dest else user_profile_dir(args.name)
    dest = dest_dir / PROFILE_FILE
    if dest.exists() and not args.force:
        print(
            f"error: {dest} exists: pass --force to overwrite it (or --dest <dir>)",
            file=sys.stderr,
        )
        return 1
    text = render(source.read_text(), args)
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest.write_text(text)
    print(f"installed profile {args.name!r} at {dest}")
    if args.name == "sagemaker" and "s3://your-bucket/" in text:
        print(
            "note: default-storage-prefix is still the placeholder s3://your-bucket/...: "
            f"edit {dest} or rerun with --storage-prefix s3://<bucket>/<prefix>"
        )
    use = args.name if args.dest is None else str(dest_dir)
    print(f"use it with: snakemake --profile {use}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ssm_rules",
        description="ssm_rules: install a profile; a run's plan, status, bill (report); stop an "
        "earlier run's jobs; clean old records and staged objects.",
    )
    commands = p.add_subparsers(dest="command", required=True)
    install = commands.add_parser(
        "install-profile",
        help="copy a Snakemake profile to where --profile <name> finds it",
        description="Copy profiles/<name>/config.yaml to $XDG_CONFIG_HOME/snakemake/<name>/.",
    )
    install.add_argument("name", nargs="?", default="sagemaker", choices=PROFILES)
    install.add_argument("--dest", help="profile directory (default: Snakemake's user location)")
    install.add_argument("--storage-prefix", help="default-storage-prefix, s3://<bucket>/<prefix>")
    install.add_argument("--role", help="sagemaker-role: IAM role name or ARN for the jobs")
    install.add_argument("--region", help="sagemaker-region")
    install.add_argument("--bucket", help="sagemaker-bucket: staging bucket of your account")
    install.add_argument("--force", action="store_true", help="overwrite an existing profile")
    install.set_defaults(run=install_profile)
    from ssm_rules.commands import add_commands

    add_commands(commands)  # plan, status, report, stop, clean
    return p


def main(argv: Sequence[str] | None = None) -> int:
    p = parser()
    args, rest = p.parse_known_args(argv)
    if rest and args.command != "plan":
        p.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "plan":  # the rest is snakemake's
        args.snakemake_args = rest
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
