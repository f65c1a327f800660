"""The status document: what DescribeTrainingJob / DescribeProcessingJob would return.

The document is the request body plus the fields SageMaker adds (status, times, ARN,
artifacts). Training jobs carry SageMaker's SecondaryStatus and SecondaryStatusTransitions
(Starting -> Downloading -> Training -> Uploading -> Completed | Failed | Stopped; a stop
goes through Stopping; a job over StoppingCondition.MaxRuntimeInSeconds ends Stopped with
SecondaryStatus MaxRuntimeExceeded, as the DescribeTrainingJob reference documents).
Processing jobs have no secondary status in Describe; they get ProcessingStartTime/EndTime
and ExitMessage.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ssm_rules.backends.base import JobState, JobStatus, JobType, typed_fields
from ssm_rules.backends.local.jobdir import now_iso

ACCOUNT = "000000000000"
REGION = "local"

# SecondaryStatus values (DescribeTrainingJob) and the messages SageMaker shows with them.
STARTING = "Starting"
DOWNLOADING = "Downloading"
TRAINING = "Training"
UPLOADING = "Uploading"
COMPLETED = "Completed"
FAILED = "Failed"
STOPPING = "Stopping"
STOPPED = "Stopped"
MAX_RUNTIME_EXCEEDED = "MaxRuntimeExceeded"
MAX_WAIT_TIME_EXCEEDED = "MaxWaitTimeExceeded"  # managed spot: MaxWaitTimeInSeconds ran out
INTERRUPTED = "Interrupted"  # managed spot: the instance was reclaimed; the job restarts

_MESSAGES = {
    STARTING: "Launching requested ML instances",
    DOWNLOADING: "Downloading input data",
    TRAINING: "Training image download completed. Training in progress.",
    UPLOADING: "Uploading generated training model",
    COMPLETED: "Training job completed",
    FAILED: "Training job failed",
    STOPPING: "Stopping the training job",
    STOPPED: "Training job stopped",
    MAX_RUNTIME_EXCEEDED: "Job stopped because it exceeded the maximum allowed runtime",
    MAX_WAIT_TIME_EXCEEDED: "Job stopped because it exceeded the maximum allowed wait time",
    INTERRUPTED: "Spot instance was interrupted; the job restarts from its checkpoints",
}


def status_key(job_type: JobType) -> str:
    return "TrainingJobStatus" if job_type is JobType.TRAINING else "ProcessingJobStatus"


def arn(job_type: JobType, name: str) -> str:
    kind = "training-job" if job_type is JobType.TRAINING else "processing-job"
    # SageMaker lower-cases the name in the ARN.
    return f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:{kind}/{name.lower()}"


def initial(job_type: JobType, body: dict[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(body)
    doc.pop("Tags", None)  # Describe* does not return tags (ListTags does)
    t = now_iso()
    if job_type is JobType.TRAINING:
        doc["TrainingJobArn"] = arn(job_type, body["TrainingJobName"])
        doc["SecondaryStatus"] = STARTING
        doc["SecondaryStatusTransitions"] = [
            {"Status": STARTING, "StartTime": t, "StatusMessage": _MESSAGES[STARTING]}
        ]
        doc.setdefault("EnableManagedSpotTraining", False)
    else:
        doc["ProcessingJobArn"] = arn(job_type, body["ProcessingJobName"])
    doc[status_key(job_type)] = JobState.IN_PROGRESS.value
    doc["CreationTime"] = t
    doc["LastModifiedTime"] = t
    return doc


@dataclass
class StatusDoc:
    """The runner's in-memory copy of status.json; every change goes through a method."""

    job_type: JobType
    doc: dict[str, Any]

    @property
    def state(self) -> JobState:
        return JobState(self.doc[status_key(self.job_type)])

    def secondary(self, status: str) -> None:
        """Enter a SecondaryStatus (training) — closes the previous transition."""
        t = now_iso()
        self.doc["LastModifiedTime"] = t
        if self.job_type is not JobType.TRAINING:
            return
        transitions = self.doc.setdefault("SecondaryStatusTransitions", [])
        if transitions and transitions[-1]["Status"] == status:
            return
        if transitions:
            transitions[-1].setdefault("EndTime", t)
        transitions.append({"Status": status, "StartTime": t, "StatusMessage": _MESSAGES[status]})
        self.doc["SecondaryStatus"] = status

    def started(self) -> None:
        key = "TrainingStartTime" if self.job_type is JobType.TRAINING else "ProcessingStartTime"
        self.doc.setdefault(key, now_iso())

    def stopping(self) -> None:
        self.doc[status_key(self.job_type)] = JobState.STOPPING.value
        self.secondary(STOPPING)

    def model_artifacts(self, uri: str) -> None:
        self.doc["ModelArtifacts"] = {"S3ModelArtifacts": uri}

    def finish(
        self, state: JobState, failure_reason: str | None = None, secondary: str = ""
    ) -> None:
        t = now_iso()
        self.doc[status_key(self.job_type)] = state.value
        if failure_reason is not None:
            self.doc["FailureReason"] = failure_reason
            if self.job_type is JobType.PROCESSING:
                self.doc["ExitMessage"] = failure_reason
        if self.job_type is JobType.TRAINING:
            self.secondary(secondary or state.value)
            self.doc["SecondaryStatusTransitions"][-1]["EndTime"] = t
            self.doc.setdefault("TrainingStartTime", t)
            self.doc["TrainingEndTime"] = t
            start = _seconds(self.doc["TrainingStartTime"])
            self.doc["TrainingTimeInSeconds"] = max(1, int(_seconds(t) - start))
            self.doc["BillableTimeInSeconds"] = self.doc["TrainingTimeInSeconds"]
        else:
            self.doc.setdefault("ProcessingStartTime", t)
            self.doc["ProcessingEndTime"] = t
        self.doc["LastModifiedTime"] = t


def _seconds(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def to_job_status(job_type: JobType, doc: dict[str, Any], stop_requested: bool) -> JobStatus:
    name_key = "TrainingJobName" if job_type is JobType.TRAINING else "ProcessingJobName"
    state = JobState(doc[status_key(job_type)])
    secondary = doc.get("SecondaryStatus", "")
    # stop() leaves a marker and signals the runner; until the runner writes Stopping
    # itself, report what DescribeTrainingJob shows right after StopTrainingJob.
    if stop_requested and state is JobState.IN_PROGRESS:
        state = JobState.STOPPING
        secondary = STOPPING if job_type is JobType.TRAINING else ""
    artifacts = doc.get("ModelArtifacts", {}).get("S3ModelArtifacts")
    return JobStatus(
        name=doc[name_key],
        state=state,
        secondary=secondary,
        failure_reason=doc.get("FailureReason"),
        model_artifacts=artifacts,
        **typed_fields(job_type, doc),
        extra=doc,
    )
