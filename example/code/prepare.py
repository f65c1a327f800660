"""Processing step: vocabulary statistics of the raw corpus.

Runs as a SageMaker processing job; the raw data arrives at SM_CHANNEL_RAW (set by the
ssm_rules launcher from the processing inputs) and the result goes to the path given on the
command line (a plain rule output).
"""

import argparse
import json
import os
import pathlib

from textstats import count_words

parser = argparse.ArgumentParser()
parser.add_argument("--out", required=True)
parser.add_argument("--min_count", type=int, default=1)
args = parser.parse_args()

raw = pathlib.Path(os.environ["SM_CHANNEL_RAW"])
counts = count_words(
    line for f in sorted(raw.rglob("*.txt")) for line in f.read_text().splitlines()
)
vocab = sorted(w for w, n in counts.items() if n >= args.min_count)
pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
pathlib.Path(args.out).write_text(
    json.dumps({"vocab": vocab, "files": len(list(raw.rglob("*.txt")))})
)
print(f"vocabulary of {len(vocab)} words")
