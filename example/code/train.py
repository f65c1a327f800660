"""Training step, written as a simple-sagemaker worker (worker_toolkit.WorkerConfig).

Each of the instances gets its shard of the training files (ShardedByS3Key), counts the
known words, and keeps an epoch counter in its task state: run it again and it resumes.
"""

import json
import logging
import os
import pathlib
import sys

from textstats import count_words

from worker_toolkit import worker_lib

logging.basicConfig(stream=sys.stdout, level=logging.INFO)
log = logging.getLogger("train")

config = worker_lib.WorkerConfig(per_instance_state=True)
epochs = int(config.hps["epochs"])
lr = float(config.hps["lr"])
vocab = set(json.loads((pathlib.Path(config.channel_stats) / "stats.json").read_text())["vocab"])

state_file = pathlib.Path(config.instance_state) / "progress.json"
done = json.loads(state_file.read_text())["epochs"] if state_file.exists() else 0
files = sorted(p for p in pathlib.Path(config.channel_data).rglob("*") if p.is_file())
log.info(
    "host %s of %s: %d files, resuming after %d epochs",
    config.current_host,
    config.hosts,
    len(files),
    done,
)

counts = count_words(line for f in files for line in f.read_text().splitlines())
weights = {w: round(lr * n * epochs, 4) for w, n in counts.items() if w in vocab}
for epoch in range(done + 1, done + epochs + 1):
    print(f"epoch={epoch}; loss={1.0 / epoch:.3f};")
state_file.write_text(json.dumps({"epochs": done + epochs}))

model_dir = pathlib.Path(config.model_dir)
(model_dir / f"weights-{config.current_host}.json").write_text(json.dumps(weights, sort_keys=True))
(pathlib.Path(config.output_data_dir) / f"files-{config.current_host}.txt").write_text(
    "\n".join(f.name for f in files)
)
if config.current_host == config.hosts[0]:
    metrics = {"hosts": len(config.hosts), "epochs_total": done + epochs, "words": len(weights)}
    # a plain rule output: ssm_rules tells the script where it goes as SSM_OUTPUT_<NAME>
    out = pathlib.Path(os.environ["SSM_OUTPUT_METRICS"])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(metrics))
