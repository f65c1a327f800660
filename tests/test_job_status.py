"""JobStatus's typed fields, read the same way from both backends' documents: boto3's
Describe replies (datetimes) and the local backend's (ISO 8601 strings)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ssm_rules.backends.aws.polling import APIS, status_from_description, status_from_summary
from ssm_rules.backends.base import JobType, typed_fields
from ssm_rules.backends.local.status import to_job_status

START = datetime(2026, 1, 1, tzinfo=UTC)
TRAINING = {
    "TrainingJobName": "train-1",
    "TrainingJobStatus": "Completed",
    "SecondaryStatus": "Completed",
    "CreationTime": START - timedelta(seconds=30),
    "TrainingStartTime": START,
    "TrainingEndTime": START + timedelta(seconds=90),
    "TrainingTimeInSeconds": 90,
    "BillableTimeInSeconds": 40,  # managed spot: billed less than it trained
    "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 2, "VolumeSizeInGB": 30},
}


def _iso(doc):
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in doc.items()}


def test_a_training_description_gives_its_times_seconds_and_instances():
    status = status_from_description(APIS[JobType.TRAINING], TRAINING)
    assert (status.creation_time, status.start_time, status.end_time) == (
        START - timedelta(seconds=30),
        START,
        START + timedelta(seconds=90),
    )
    assert (status.training_seconds, status.billable_seconds) == (90, 40)
    assert status.instances == ("ml.m5.large", 2)


def test_the_local_backends_document_gives_the_same_fields():
    aws = status_from_description(APIS[JobType.TRAINING], TRAINING)
    local = to_job_status(JobType.TRAINING, _iso(TRAINING), stop_requested=False)
    assert typed_fields(JobType.TRAINING, _iso(TRAINING)) == typed_fields(
        JobType.TRAINING, TRAINING
    )
    assert local == aws  # the same name, state, times, seconds and instances


def test_a_processing_job_has_its_cluster_and_no_training_seconds():
    doc = {
        "ProcessingStartTime": "2026-01-01T00:00:00Z",
        "ProcessingEndTime": "2026-01-01T00:10:00Z",
        "ProcessingResources": {"ClusterConfig": {"InstanceType": "ml.c5.xlarge"}},
        "TrainingTimeInSeconds": 5,  # not a processing job's field: ignored
    }
    fields = typed_fields(JobType.PROCESSING, doc)
    assert fields["end_time"] - fields["start_time"] == timedelta(minutes=10)
    assert fields["instances"] == ("ml.c5.xlarge", 1) and fields["training_seconds"] is None


def test_a_list_summary_says_none_of_what_it_does_not_carry():
    summary = {k: TRAINING[k] for k in ("TrainingJobName", "TrainingJobStatus", "CreationTime")}
    status = status_from_summary(APIS[JobType.TRAINING], summary)
    assert status.creation_time == TRAINING["CreationTime"]
    assert (status.start_time, status.training_seconds, status.instances) == (None, None, None)
