"""Evaluation step: chained on the training job's model.tar.gz (channel "model")."""

import json
import os
import pathlib
import tarfile

model_tar = pathlib.Path(os.environ["SM_CHANNEL_MODEL"]) / "model.tar.gz"
weights: dict[str, float] = {}
with tarfile.open(model_tar) as tar:
    for member in tar.getmembers():
        if member.isfile() and member.name.endswith(".json"):
            for word, w in json.load(tar.extractfile(member)).items():
                weights[word] = weights.get(word, 0.0) + w

test = pathlib.Path(os.environ["SM_CHANNEL_TEST"])
words = [w for f in sorted(test.rglob("*.txt")) for w in f.read_text().split()]
known = sum(1 for w in words if w in weights)
report = {
    "test_words": len(words),
    "known": known,
    "coverage": round(known / max(len(words), 1), 3),
    "model_members": sorted(weights)[:5],
}
out = pathlib.Path(os.environ["SSM_OUTPUT_REPORT"])
out.parent.mkdir(parents=True, exist_ok=True)
out.write_text(json.dumps(report, indent=1))
print("coverage", report["coverage"])
