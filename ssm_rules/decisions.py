"""What to do when a SageMaker job ends: a pure function of its status and of the facts of
the Snakemake job it belongs to. No I/O here: the executor carries a decision out.

The decisions, and what the executor does for each:

- :class:`Promote`: the job completed; put its outputs in place, then start the group's
  next member (``next_member``) or report the Snakemake job a success.
- :class:`RetrySpot`: no spot capacity (or spot waited past MaxWaitTimeInSeconds); submit
  the same task on spot again.
- :class:`OnDemand`: the same, with the spot retries used up: submit it on-demand.
- :class:`Fail`: report the Snakemake job an error, saying why the job ended.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ssm_rules.backends.base import JobState, JobStatus, JobType
from ssm_rules.outcomes import Outcome, classify, why_it_ended
from ssm_rules.spec import Instance, TaskSpec


@dataclass(frozen=True)
class JobFacts:
    """What a decision reads of the Snakemake job besides the ended job's status."""

    job_type: JobType
    instance: Instance  # the ended job's (on-demand once the spot retries are used up)
    capacity_failures: int = 0  # jobs of this Snakemake job that got no spot capacity so far
    members_left: int = 0  # group members still to run after this one


@dataclass(frozen=True)
class Promote:
    next_member: bool  # a group member follows (else: the Snakemake job succeeded)


@dataclass(frozen=True)
class RetrySpot:
    attempt: int  # the capacity failures so far, this one included
    retries: int  # spot_retries: how many spot attempts follow the first
    reason: str  # the FailureReason (or SecondaryStatus) that says there was no capacity


@dataclass(frozen=True)
class OnDemand:
    attempt: int
    reason: str


@dataclass(frozen=True)
class Fail:
    why: str  # why the job ended, in the user's words (ssm_rules.outcomes.why_it_ended)


Decision = Promote | RetrySpot | OnDemand | Fail
Retry = RetrySpot | OnDemand


def decide(status: JobStatus, facts: JobFacts) -> Decision:
    """What to do about a job that ended. Capacity is retried only for a spot job: a
    failure of the user's code is never retried as if it were capacity (outcomes.classify),
    and an on-demand job without capacity fails with SageMaker's reason."""
    if classify(status) is Outcome.CAPACITY and facts.instance.spot:
        attempt = facts.capacity_failures + 1
        reason = status.failure_reason or status.secondary
        if attempt > facts.instance.spot_retries:
            return OnDemand(attempt, reason)
        return RetrySpot(attempt, facts.instance.spot_retries, reason)
    if status.state is not JobState.COMPLETED:
        return Fail(why_it_ended(status, facts.job_type, facts.instance))
    return Promote(next_member=facts.members_left > 0)


def retry_spec(spec: TaskSpec, decision: Retry) -> TaskSpec:
    """The task a retry submits. It resumes from what the interrupted job saved in the task
    state (same prefix): never wipe it again."""
    spec = replace(spec, clean_state=False)
    if isinstance(decision, OnDemand):
        spec = replace(spec, instance=spec.instance.on_demand())
    return spec


def retry_message(rule: str, job: str, decision: Retry) -> str:
    how = (
        "on-demand"
        if isinstance(decision, OnDemand)
        else f"spot again ({decision.attempt}/{decision.retries})"
    )
    return f"rule {rule}: job {job} got no spot capacity ({decision.reason}); retrying {how}"


def failure_message(
    rule: str, job_type: JobType, job: str, why: str, tail: str, logs: tuple[str, ...]
) -> str:
    """The error Snakemake prints for a job that ended without success: why, then the last
    log lines (once)."""
    return f"rule {rule}: SageMaker {job_type} job {job} {why}\n" + log_tail(why, tail, logs)


def log_tail(why: str, tail: str, logs: tuple[str, ...]) -> str:
    """The job's last log lines, once: a FailureReason that already quotes them (the
    launcher's failure file ends with the program's last lines, as SageMaker's AlgorithmError
    does) is not followed by the same lines again."""
    quoted = [line for line in why.splitlines()[1:] if line.strip()]
    if quoted and set(quoted) <= set(tail.splitlines()):
        return f"The whole log: {', '.join(logs)}\n" if logs else ""
    return f"Last log lines:\n{tail}\n" if tail else ""
