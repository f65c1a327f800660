"""Bytes and PutObject calls it costs to stage a job's code and local inputs, first and again.

Run from the repository root (starts its own moto server on 127.0.0.1; no AWS needed)::

    .venv/bin/python benchmarks/staging_uploads.py

Stages the code bundle and the local input directory of ``Snakefile.example``'s train rule (plus
a 20 MB data file, so that a re-upload would show) through the same functions the executor
uses (``staging.upload_code``, ``staging.sync_local_input``) and ``S3Objects``, three times:

- ``first``: an empty bucket;
- ``unchanged``: nothing changed since (content-addressed code, SHA-256-synced inputs);
- ``one file changed``: one small input file edited.

Bytes are counted from the Content-Length of every PUT/POST request botocore sends.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from poll_calls import start_moto  # noqa: E402  (after the path setup)

REPO = Path(__file__).resolve().parents[1]
BUCKET = "ssm-bench"


def main() -> None:
    server, _endpoint = start_moto()
    try:
        run()
    finally:
        server.stop()


def run() -> None:
    from ssm_rules import staging
    from ssm_rules.aws_clients import client
    from ssm_rules.objects import S3Objects
    from ssm_rules.rules import job
    from ssm_rules.spec import build_spec
    from tests.jobviews import view

    s3 = client("s3")
    s3.create_bucket(Bucket=BUCKET)
    calls: Counter[str] = Counter()
    sent: Counter[str] = Counter()

    def count_call(model, **_kwargs):  # botocore before-call: one per API operation
        calls[model.name] += 1

    def count_bytes(request, **_kwargs):  # botocore before-send: what goes over the wire
        if request.method in ("PUT", "POST"):
            sent["bytes"] += int(request.headers.get("Content-Length", 0) or 0)

    s3.meta.events.register("before-call.s3", count_call)
    s3.meta.events.register("before-send.s3", count_bytes)
    store = S3Objects(client=s3)
    root = f"s3://{BUCKET}/ssm-rules/"

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = work / "data"
        data.mkdir()
        for f in (REPO / "example/data/train").iterdir():
            (data / f.name).write_bytes(f.read_bytes())
        (data / "big.bin").write_bytes(os.urandom(20 * 1024 * 1024))
        spec = build_spec(
            view(
                REPO,
                body="script",
                script="example/code/train.py",
                params=(
                    ("sm", job(source_dir="example/code", dependencies=["example/textstats"])),
                ),
            ),
            backend="aws",
            default_instance_type="ml.m5.large",
        )

        def stage() -> tuple[int, int]:
            calls.clear()
            sent.clear()
            staging.upload_code(store, root, staging.code_bundle(spec))
            staging.sync_local_input(store, data, staging.input_prefix(root, data))
            return calls["PutObject"] + calls["CreateMultipartUpload"], sent["bytes"]

        rows = [("first", *stage()), ("unchanged", *stage())]
        (data / "part-1.txt").write_text("changed\n")
        rows.append(("one file changed", *stage()))

    print(f"{'round':<18}{'uploads':>8}{'bytes sent':>14}")
    for name, uploads, nbytes in rows:
        print(f"{name:<18}{uploads:>8}{nbytes:>14,}")


if __name__ == "__main__":
    main()
