"""The jobs' IAM role: a policy of least privilege built from the plan's requests, kept in a
role ssm_rules manages (a new policy version when a workflow needs more), and a role the user
names read, never changed, with what it lacks named."""

from __future__ import annotations

import json

import pytest

from ssm_rules.backends.aws import iam
from ssm_rules.backends.aws.errors import AwsSetupError

ACCOUNT = "123456789012"
BASE = iam.Access("eu-west-1", ACCOUNT, "aws", frozenset(), frozenset({"s3://stage/ssm-rules/"}))
TRAINING = {
    "AlgorithmSpecification": {
        "TrainingImage": "763104351884.dkr.ecr.eu-west-1.amazonaws.com/pytorch-training:2.8-cpu-py312"
    },
    "InputDataConfig": [
        {"DataSource": {"S3DataSource": {"S3Uri": "s3://data/wf/runs/prepare/stats.json"}}},
        {"DataSource": {"S3DataSource": {"S3Uri": "s3://stage/ssm-rules/inputs/ab/train/"}}},
    ],
    "CheckpointConfig": {"S3Uri": "s3://data/wf/runs/train/state/"},
    "OutputDataConfig": {"S3OutputPath": "s3://stage/ssm-rules/jobs"},
}


def _statements(doc):
    return {st["Sid"]: st for st in doc["Statement"]}


def test_the_policy_names_every_resource_of_the_plan_and_nothing_else():
    access = iam.access_of([TRAINING], BASE, also_read=["s3://data/wf/listed/a.csv"])
    st = _statements(iam.policy_document(access))
    assert st["S3Read"]["Resource"] == [
        "arn:aws:s3:::data/wf/listed/a.csv*",
        "arn:aws:s3:::data/wf/runs/prepare/stats.json*",
    ]
    assert st["S3ReadWrite"]["Resource"] == [
        "arn:aws:s3:::data/wf/runs/train/state/*",
        "arn:aws:s3:::stage/ssm-rules/*",  # the staged input is under it: not listed again
    ]
    assert "s3:PutObject" in st["S3ReadWrite"]["Action"] and st["S3Read"]["Action"] == [
        "s3:GetObject"
    ]
    lists = [s for sid, s in st.items() if sid.startswith("S3List")]
    assert {s["Resource"][0]: s["Condition"]["StringLike"]["s3:prefix"] for s in lists} == {
        "arn:aws:s3:::data": [
            "wf/listed/a.csv*",
            "wf/runs/prepare/stats.json*",
            "wf/runs/train/state/*",
        ],
        "arn:aws:s3:::stage": ["ssm-rules/*"],
    }
    assert st["EcrPull"]["Resource"] == [
        "arn:aws:ecr:eu-west-1:763104351884:repository/pytorch-training"
    ]
    assert (
        st["Logs"]["Resource"][0] == f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:/aws/sagemaker/*"
    )
    assert "Kms" not in st and "Vpc" not in st
    resources = [r for s in st.values() for r in s["Resource"]]
    # "*" only where IAM has no resource-level permission (ECR token, metrics)
    assert sorted(s["Sid"] for s in st.values() if s["Resource"] == ["*"]) == [
        "EcrToken",
        "Metrics",
    ]
    assert all(r == "*" or ACCOUNT in r or ":s3:::" in r or "763104351884" in r for r in resources)


def test_merging_keeps_what_either_grants_and_is_stable():
    a = iam.policy_document(iam.access_of([TRAINING], BASE))
    other = dict(TRAINING, CheckpointConfig={"S3Uri": "s3://data/wf/runs/other/state/"})
    b = iam.policy_document(iam.access_of([other], BASE))
    merged = iam.merge(a, b)
    rw = _statements(merged)["S3ReadWrite"]["Resource"]
    assert "arn:aws:s3:::data/wf/runs/train/state/*" in rw
    assert "arn:aws:s3:::data/wf/runs/other/state/*" in rw
    assert iam.merge(merged, a) == merged


def test_a_named_roles_gaps_are_named():
    docs = [
        {
            "Statement": [
                {"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::*sagemaker*"}
            ]
        }
    ]
    access = iam.access_of([TRAINING], BASE)
    missing = iam.lacking(docs, iam.needed_grants(access))
    assert (
        "s3:GetObject",
        "arn:aws:s3:::data/wf/runs/prepare/stats.jsonssm-rules-sample",
    ) in missing
    assert ("s3:PutObject", "arn:aws:s3:::data/wf/runs/train/state/ssm-rules-sample") in missing
    everything = [{"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}]
    assert iam.lacking(everything, iam.needed_grants(access)) == []
    denied = everything + [
        {"Statement": [{"Effect": "Deny", "Action": "s3:PutObject", "Resource": "*"}]}
    ]
    assert {a for a, _ in iam.lacking(denied, iam.needed_grants(access))} == {"s3:PutObject"}


def test_managed_role_is_created_then_widened_by_a_new_version(aws):
    client = aws.client("iam")
    first = iam.policy_document(iam.access_of([TRAINING], BASE))
    arn = iam.ensure_role(client, "ssm-rules-test", first)
    assert arn.endswith(":role/ssm-rules-test")
    trust = client.get_role(RoleName="ssm-rules-test")["Role"]["AssumeRolePolicyDocument"]
    assert trust["Statement"][0]["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    policy_arn = client.list_attached_role_policies(RoleName="ssm-rules-test")["AttachedPolicies"][
        0
    ]["PolicyArn"]
    assert len(client.list_policy_versions(PolicyArn=policy_arn)["Versions"]) == 1
    iam.ensure_role(client, "ssm-rules-test", first)  # the same plan: nothing new
    assert len(client.list_policy_versions(PolicyArn=policy_arn)["Versions"]) == 1
    more = dict(TRAINING, CheckpointConfig={"S3Uri": "s3://data/wf/runs/other/state/"})
    for i in range(6):  # IAM keeps five versions: the oldest goes
        more = dict(more, CheckpointConfig={"S3Uri": f"s3://data/wf/runs/r{i}/state/"})
        iam.ensure_role(client, "ssm-rules-test", iam.policy_document(iam.access_of([more], BASE)))
    versions = client.list_policy_versions(PolicyArn=policy_arn)["Versions"]
    assert len(versions) == 5
    default = next(v for v in versions if v["IsDefaultVersion"])
    doc = client.get_policy_version(PolicyArn=policy_arn, VersionId=default["VersionId"])
    rw = _statements(doc["PolicyVersion"]["Document"])["S3ReadWrite"]["Resource"]
    assert (
        "arn:aws:s3:::data/wf/runs/train/state/*" in rw
        and "arn:aws:s3:::data/wf/runs/r5/state/*" in rw
    )


def test_a_role_ssm_rules_did_not_make_is_never_changed(aws):
    client = aws.client("iam")
    client.create_role(RoleName="theirs", AssumeRolePolicyDocument=json.dumps(iam.TRUST_POLICY))
    with pytest.raises(
        AwsSetupError, match="was not made by ssm_rules: pass it as --sagemaker-role theirs"
    ):
        iam.ensure_role(client, "theirs", iam.policy_document(iam.access_of([TRAINING], BASE)))
    assert client.list_attached_role_policies(RoleName="theirs")["AttachedPolicies"] == []


def test_a_named_role_is_read_inline_and_attached_and_its_gaps_named(aws):
    client = aws.client("iam")
    client.create_role(RoleName="full", AssumeRolePolicyDocument=json.dumps(iam.TRUST_POLICY))
    # the S3 statement of AmazonSageMakerFullAccess: buckets named *sagemaker* only
    s3_like_full_access = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket"],
                "Resource": [
                    "arn:aws:s3:::*SageMaker*",
                    "arn:aws:s3:::*Sagemaker*",
                    "arn:aws:s3:::*sagemaker*",
                ],
            }
        ],
    }
    policy = client.create_policy(
        PolicyName="like-full", PolicyDocument=json.dumps(s3_like_full_access)
    )
    client.attach_role_policy(RoleName="full", PolicyArn=policy["Policy"]["Arn"])
    logs = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "logs:*", "Resource": "*"}],
    }
    client.put_role_policy(RoleName="full", PolicyName="logs", PolicyDocument=json.dumps(logs))
    access = iam.access_of([TRAINING], BASE)
    missing = iam.lacking(iam.role_documents(client, "full"), iam.needed_grants(access))
    assert {r.split(":::")[1].split("/")[0] for a, r in missing if a.startswith("s3:")} == {
        "data",
        "stage",
    }
    assert not [a for a, _ in missing if a.startswith("logs:")]
    assert client.list_attached_role_policies(RoleName="full")["AttachedPolicies"] == [
        {"PolicyName": "like-full", "PolicyArn": policy["Policy"]["Arn"]}
    ]  # read, never changed
