"""A job's identity parts, and what differs between two of them in the user's words."""

from __future__ import annotations

import json

from ssm_rules.identity import differences, identity, identity_of, identity_parts
from tests.test_spec import spec_of


def parts(tmp_path, **params):
    spec = spec_of(tmp_path, params=tuple(params.items()))
    return spec, identity_parts(spec, "code-sha", {"data": "v1"})


def test_the_identity_is_the_hash_of_its_parts(tmp_path):
    spec, p = parts(tmp_path, lr=0.1)
    assert identity_of(p) == identity(spec, "code-sha", {"data": "v1"})


def test_differences_name_params_with_both_values_inputs_and_code(tmp_path):
    _, before = parts(tmp_path, lr=0.1, epochs=3)
    _, now = parts(tmp_path, lr=0.2, epochs=3, batch=8)
    before = json.loads(json.dumps(before))  # as read back from the record beside the state
    now["code"] = "other-sha"
    now["inputs"] = [("data", "v2")]
    assert differences(before, now) == [
        "param batch: None then, 8 now",
        "param lr: 0.1 then, 0.2 now",
        "input data",
        "code (source_dir, dependencies, script)",
    ]
    assert differences(before, json.loads(json.dumps(before))) == []
