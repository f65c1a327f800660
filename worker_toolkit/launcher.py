"""The in-job launcher: runs a rule's script or shell command inside a SageMaker job.

Started as ``python ssm_launch.py [hyperparameter args]`` from the root of the code bundle:

* training: sagemaker-training-toolkit runs ``sagemaker_program=ssm_launch.py`` with every
  non-``sagemaker_`` hyperparameter as ``--key value``, so the task arrives as
  ``--ssm_task <json>`` (falling back to the ``ssm_task`` key of hyperparameters.json);
* processing: the job's ContainerEntrypoint (``ssm_rules.requests.PROCESSING_ENTRYPOINT``)
  unpacks the bundle into PROCESSING_WORK_DIR and runs the same file there; the task is
  ``<PROCESSING_TASK_DIR>/task.json``.

It completes the SM_*/SSM_* environment, runs the program in its own process group (forwarding
SIGTERM/SIGINT), streams its output, writes /opt/ml/output/failure on error, and on the main
host checks the declared outputs and hands them to SageMaker's upload. Exit code = program's.
"""

from __future__ import annotations

import collections
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from types import FrameType

from . import _common as u
from . import _jobenv, _outputs
from . import contract as c
from . import hyperparameters as hp
from ._requirements import REQUIREMENTS_FILE, failing_line, install_failure_text
from .task import GroupTaskDescription, MemberTask, TaskDescription, TaskError, parse_task

TYPE_CHECKING = False  # typing is not imported on the launcher's path
if TYPE_CHECKING:
    from typing import IO, Any, TypeVar

    T = TypeVar("T", bound=TaskDescription)

__all__ = ["LaunchError", "launcher_template_path", "load_task", "main"]

TAIL_LINES = 50  # output lines kept for the failure file
DRAIN_SECONDS = 5.0  # after the program exits, wait this long for its background children's output
LAUNCH_ERROR_EXIT = 2


class LaunchError(Exception):
    """The task cannot be started (bad or missing task description)."""


def launcher_template_path() -> Path:
    """The ``ssm_launch.py`` file to copy to the root of every code bundle."""
    return Path(__file__).resolve().with_name(c.LAUNCHER_PROGRAM)


def _log(message: str) -> None:
    print(f"[ssm_launch] {message}", flush=True)


# --- the task ------------------------------------------------------------------------------
def _parse_task(value: Any) -> dict[str, Any] | None:
    """A task object from a (possibly repeatedly) JSON-encoded value.

    The client JSON-encodes the task into a string hyperparameter, and script mode JSON-encodes
    hyperparameter values once more; the toolkit decodes one level. Peel until a dict appears.
    """
    for _ in range(3):
        if isinstance(value, dict):
            return value
        if not isinstance(value, str):
            return None
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, dict) else None


def _split_argv(argv: list[str]) -> tuple[str | None, list[str]]:
    """(the --ssm_task value, the user args): every ``--ssm_*`` pair is ours, not the user's."""
    task_value: str | None = None
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--ssm_"):
            rest.append(arg)
            i += 1
            continue
        key, eq, value = arg.partition("=")
        if not eq:
            value = argv[i + 1] if i + 1 < len(argv) else ""
            i += 1
        i += 1
        if key == "--" + c.HP_TASK:
            task_value = value
    return task_value, rest


def _task_source(argv: list[str]) -> tuple[dict[str, Any] | None, str, list[str]]:
    value, rest = _split_argv(argv)
    task = _parse_task(value)
    if task is not None:
        return task, "training", rest
    hps = u.read_json(c.HYPERPARAMETERS_FILE)
    if isinstance(hps, dict) and c.HP_TASK in hps:
        return _parse_task(hps[c.HP_TASK]), "training", rest
    task = u.read_json(f"{c.TRAINING_TASK_DIR}/{c.TASK_FILE_NAME}")  # a group's training job
    if isinstance(task, dict):
        return task, "training", rest
    task = u.read_json(f"{c.PROCESSING_TASK_DIR}/{c.TASK_FILE_NAME}")
    return (task if isinstance(task, dict) else None), "processing", rest


def load_task(
    argv: list[str], root: str
) -> tuple[TaskDescription | GroupTaskDescription, list[str]]:
    """The validated task (one rule's, or a group's) with every /opt/ml path re-rooted, and
    the user's args."""
    data, job_type, rest = _task_source(argv)
    if data is None:
        raise LaunchError(
            f"no task description: expected --{c.HP_TASK} <json>, hyperparameter "
            f"{c.HP_TASK!r}, {c.TRAINING_TASK_DIR}/{c.TASK_FILE_NAME} or "
            f"{c.PROCESSING_TASK_DIR}/{c.TASK_FILE_NAME}"
        )
    try:
        task = parse_task({"job_type": job_type, **data})
    except TaskError as exc:
        raise LaunchError(str(exc)) from exc
    if isinstance(task, GroupTaskDescription):
        return _rerooted_group(task, root), rest
    if task.job_type == "processing":
        rest = hp.to_cmd_args(hp.user_hps(task.hps)) + rest
    return _rerooted(task, root), rest


def _rerooted_group(task: GroupTaskDescription, root: str) -> GroupTaskDescription:
    """A group's task (version 2) with each member's /opt/ml paths re-rooted as a task of its
    own, and its channels, links and hand-overs too."""
    members = tuple(
        _rerooted(member, root).replace(
            channels={n: u.reroot(p, root) for n, p in member.channels.items()},
            links=tuple((u.reroot(a, root), u.reroot(b, root)) for a, b in member.links),
            handoffs=tuple(
                (how, u.reroot(a, root), u.reroot(b, root)) for how, a, b in member.handoffs
            ),
        )
        for member in task.members
    )
    return task.replace(
        members=members,
        files={u.reroot(p, root): rel for p, rel in task.files.items()},
        state_dir=u.reroot(task.state_dir, root) if task.state_dir else task.state_dir,
    )


def _rerooted(task: T, root: str) -> T:
    """The task (a group's member too) with its /opt/ml paths where this container has
    /opt/ml."""
    return task.replace(
        files={u.reroot(p, root): rel for p, rel in task.files.items()},
        inputs={name: u.reroot(p, root) for name, p in task.inputs.items()},
        outputs={name: u.reroot(p, root) for name, p in task.outputs.items()},
        unpack={
            name: (u.reroot(extracted, root), u.reroot(packed, root))
            for name, (extracted, packed) in task.unpack.items()
        },
        state_dir=u.reroot(task.state_dir, root) if task.state_dir else task.state_dir,
        state_input=u.reroot(task.state_input, root) if task.state_input else task.state_input,
        command=u.reroot_text(task.command, root) if task.kind == "shell" else task.command,
    )


# --- the program ---------------------------------------------------------------------------
def build_command(task: TaskDescription, code_dir: Path, args: list[str]) -> list[str]:
    """argv of the user program (script mode semantics: hyperparameters are its args)."""
    if task.kind == "shell":
        return _jobenv.shell_argv(task.command)
    # free arguments first, as simple-sagemaker's WorkerConfig splices its external_hps
    args = [*task.args, *args]
    program = code_dir / task.program
    if not program.is_file():
        raise LaunchError(f"program {task.program!r} not found in the code dir {code_dir}")
    if program.suffix == ".py" and task.snakemake is not None:
        # a Snakemake-style script: give it the `snakemake` object (snakemake_script.py)
        return [sys.executable, "-m", "worker_toolkit.snakemake_script", str(program), *args]
    if program.suffix == ".py":
        return [sys.executable, str(program), *args]
    if program.suffix == ".sh":
        return ["/bin/sh", str(program), *args]
    return [str(program), *args]


def describe(task: TaskDescription, args: list[str]) -> str:
    """The program as a user wrote it: the shell command, or the script with its args."""
    if task.kind == "shell":
        return task.command
    return shlex.join([task.program, *args])


def _pump(stream: IO[bytes], tail: collections.deque[str]) -> None:
    """Copy the child's output to our stdout line by line, keeping the last lines."""
    out = getattr(sys.stdout, "buffer", None)
    for raw in iter(stream.readline, b""):
        if out is not None:
            out.write(raw)
            out.flush()
        else:
            sys.stdout.write(raw.decode("utf-8", "replace"))
            sys.stdout.flush()
        tail.append(raw.decode("utf-8", "replace").rstrip("\r\n"))


class _Forwarder:
    """Forwards SIGTERM/SIGINT to the child's process group.

    SageMaker stops a job (StopTrainingJob, spot interruption) with SIGTERM and SIGKILLs after a
    grace period; the program, not the launcher, must get the chance to save its state.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.pid: int | None = None
        self.received: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _Forwarder:
        for sig in self.SIGNALS:
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *_exc: object) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)

    def started(self, pid: int) -> None:
        self.pid = pid
        if self.received is not None:  # arrived between handler install and Popen
            self._forward(self.received)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.received = signum
        _log(f"received signal {signum}, forwarding to the program")
        self._forward(signum)

    def _forward(self, signum: int) -> None:
        if self.pid is not None:
            try:
                os.killpg(self.pid, signum)
            except (ProcessLookupError, PermissionError):
                pass


# Python 3.11+ puts the child in its own group without a preexec_fn, so subprocess can spawn
# it the fast way (vfork) rather than fork this process and run Python code in the child.
_OWN_GROUP: dict[str, Any] = (
    {"process_group": 0} if sys.version_info >= (3, 11) else {"preexec_fn": os.setpgrp}
)


def run_program(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, list[str]]:
    """Run cmd in its own process group; return (exit code, last output lines).

    A signal death becomes 128+signal, like a shell. When the launcher itself was signalled and
    the program still exited 0, the run is reported as interrupted (128+signal): it did not finish.
    Once the program exited, what it left running in its group is killed: a container's end
    kills everything in it.
    """
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    with _Forwarder() as forwarder:
        proc = subprocess.Popen(
            cmd,
            cwd=str(cwd),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            # own process group (signals reach the whole program), same session (the local
            # backend kills what is left of a host's session)
            **_OWN_GROUP,
        )
        forwarder.started(proc.pid)
        assert proc.stdout is not None
        reader = threading.Thread(target=_pump, args=(proc.stdout, tail), daemon=True)
        reader.start()
        rc = _wait(proc)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        _reap_orphans()
        # A child that left the group may keep the pipe open: don't wait for it forever.
        reader.join(DRAIN_SECONDS)
    if rc < 0:
        rc = 128 - rc
    if rc == 0 and forwarder.received is not None:
        rc = 128 + forwarder.received
    return rc, list(tail)


def _wait(proc: subprocess.Popen[bytes]) -> int:
    """proc's exit status. As pid 1 of a container (the local backend's pid namespace), the
    launcher is also the parent of every orphan of the job: reap those while waiting."""
    if os.getpid() != 1:
        return proc.wait()
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return proc.wait()
        if pid == proc.pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode


def _reap_orphans() -> None:
    """Collect exited orphans (pid 1 only: anywhere else our children are our own business)."""
    if os.getpid() != 1:
        return
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


# --- failure file --------------------------------------------------------------------------
def failure_text(rc: int, what: str, tail: list[str]) -> str:
    """Failure file contents: the first FAILURE_REASON_MAX chars become FailureReason.

    First line: exit code, the program and its last output line; then the most recent output
    lines that still fit in FailureReason; then the whole kept tail for the full picture.
    """
    last = next((line for line in reversed(tail) if line.strip()), "")
    head = f"ExitCode {rc}: {_shorten(what, 200)}"
    if last:
        head += f" | last line: {_shorten(last.strip(), 300)}"
    budget = c.FAILURE_REASON_MAX - len(head) - 1
    recent: list[str] = []
    for line in reversed(tail):
        budget -= len(line) + 1
        if budget < 0:
            break
        recent.insert(0, line)
    parts = [head, *recent]
    if tail and len(recent) < len(tail):
        parts += [f"--- last {len(tail)} lines ---", *tail]
    return "\n".join(parts) + "\n"


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def write_failure(root: str, text: str, overwrite: bool = False) -> None:
    """Write /opt/ml/output/failure (re-rooted), keeping one the user program wrote itself."""
    path = Path(u.reroot(c.FAILURE_FILE, root))
    if path.exists() and not overwrite:
        _log(f"keeping the failure file the program wrote: {path}")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# --- after success -------------------------------------------------------------------------
def finish(task: TaskDescription | GroupTaskDescription, root: str) -> str | None:
    """Check and hand over the declared outputs; the failure reason, or None when all is well."""
    missing = _outputs.missing_files(task.files)
    if missing:
        path, rel = missing[0]
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        return f"Missing output: the program did not write {rel!r}, expected at {path}{more}"
    if task.job_type == "processing":
        _outputs.build_carrier(task.files, task.model, task.output_data, root)
    else:
        _outputs.move_training_files(task.files, root)
    return None


def _is_main_host(env: dict[str, str]) -> bool:
    hosts = json.loads(env[c.ENV_HOSTS])
    return not hosts or env[c.ENV_CURRENT_HOST] == hosts[0]


# --- entry point ---------------------------------------------------------------------------
def _code_dir() -> Path:
    """The bundle root: ssm_launch.py and worker_toolkit/ sit there."""
    return Path(__file__).resolve().parent.parent


def _program_env(
    task: TaskDescription,
    root: str,
    code_dir: Path,
    args: list[str],
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    env = _jobenv.build_env(task, root, code_dir, os.environ if base is None else base, args)
    _jobenv.prepare_dirs(env, task, root)
    unpack_inputs(task, env)
    if task.snakemake is not None:
        from .snakemake_script import ENV_SNAKEMAKE  # runpy: only for such a script

        env[ENV_SNAKEMAKE] = json.dumps(_rerooted_snakemake(task.snakemake, root))
    return env


def _rerooted_snakemake(spec: dict[str, Any], root: str) -> dict[str, Any]:
    """The `snakemake` object's paths as this container spells them."""
    out = dict(spec)
    for key in ("input", "output", "log"):
        out[key] = [[name, u.reroot(path, root)] for name, path in spec.get(key) or []]
    return out


def unpack_inputs(task: TaskDescription, env: dict[str, str]) -> None:
    """``unpacked(...)`` inputs: extract each channel's tarball into its own directory (on
    every host) and point the channel's variables there, so the program sees the files."""
    for name, (extracted, packed) in task.unpack.items():
        from ._tarballs import extract_tarball  # tarfile, gzip: only for such inputs

        tarball = Path(packed)
        if not tarball.is_file():
            raise LaunchError(f"input {name!r}: {packed} to unpack is not in the channel")
        _log(f"unpacking input {name!r} ({tarball.name}) into {extracted}")
        extract_tarball(tarball, Path(extracted))
        env[u.channel_env_name(name)] = extracted  # SSM_INPUT_<NAME> names it already


def run_setup(task: TaskDescription, code_dir: Path, env: dict[str, str], who: str = "") -> int:
    """``job(setup=...)``: the command runs on this instance before the program, in the code
    directory, its output in the log; what it exports (or unsets) is the program's
    environment, as aws-sagemaker-remote's ``source``d configuration script gives."""
    setup = task.setup
    if not setup:
        return 0
    import tempfile  # only for a setup command

    _log(f"Running setup: {setup}")
    with tempfile.TemporaryDirectory(prefix="ssm-setup-") as tmp:
        dump = Path(tmp) / "env"
        argv = _jobenv.shell_argv(f"{setup}\nenv -0 > {shlex.quote(str(dump))}")
        rc, tail = run_program(argv, code_dir, env)
        if rc != 0:
            write_failure(u.opt_ml_root(), failure_text(rc, f"{who}setup {setup!r}", tail))
            return rc
        pairs = (item.split("=", 1) for item in dump.read_text().split("\0") if "=" in item)
        exported = {k: v for k, v in pairs if k not in _SHELL_OWN}
    env.clear()
    env.update(exported)
    return 0


_SHELL_OWN = frozenset({"_", "SHLVL", "PWD", "OLDPWD", "BASH_EXECUTION_STRING"})


def install_requirements(
    task: TaskDescription | GroupTaskDescription, code_dir: Path, env: dict[str, str]
) -> str | None:
    """Processing jobs: ``pip install -r requirements.txt`` from the code bundle, as the
    training toolkit does before a training job's entry point (on training jobs that toolkit
    already did it, so nothing is done here). The local backend sets SSM_LOCAL_BACKEND: it
    installed the file itself, before the job started, into a cached environment layered
    over this machine's Python (the one running this launcher), which must stay untouched.

    None when there was nothing to do or the install worked; else the failure file's text,
    as the toolkit's InstallRequirementsError tells it, with the line of the file at fault.
    """
    requirements = code_dir / REQUIREMENTS_FILE
    if task.job_type != "processing" or not requirements.is_file():
        return None
    if env.get("SSM_LOCAL_BACKEND"):
        _log(f"local backend: {REQUIREMENTS_FILE} was the backend's to install: {sys.executable}")
        return None
    _log(f"Installing {requirements}")
    cmd = [sys.executable, "-m", "pip", "install", "-r", REQUIREMENTS_FILE]
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    proc = subprocess.Popen(
        cmd,
        cwd=code_dir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None
    _pump(proc.stdout, tail)  # pip's output is the job's log, as in the toolkit
    rc = proc.wait()
    if rc == 0:
        return None
    output = "\n".join(tail)
    culprit = failing_line(requirements.read_text(errors="replace"), output)
    return install_failure_text(shlex.join(cmd), rc, output, culprit) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the job's task; returns the exit code for the container."""
    argv = list(sys.argv[1:] if argv is None else argv)
    root = u.opt_ml_root()
    try:
        task, args = load_task(argv, root)
        if isinstance(task, GroupTaskDescription):
            return run_group(task, root)
        env = _program_env(task, root, _code_dir(), args)
        cmd = build_command(task, _code_dir(), args)
    except (LaunchError, OSError, ValueError, KeyError) as exc:
        return _cannot_start(root, exc)
    what = describe(task, args)
    install_failure = install_requirements(task, _code_dir(), env)
    if install_failure is not None:
        write_failure(root, install_failure)
        return 1
    rc = run_setup(task, _code_dir(), env)
    if rc != 0:
        return rc
    _log(f"Invoking {task.kind} ({task.job_type} job): {shlex.join(cmd)}")
    try:
        rc, tail = run_program(cmd, _code_dir(), env)
    except OSError as exc:  # e.g. a program that is not executable: its reason, not a traceback
        return _cannot_start(root, exc)
    if rc != 0:
        _log(f"program failed with exit code {rc}")
        write_failure(root, failure_text(rc, what, tail))
        return rc
    return _hand_over(task, root, env, _shorten(what, 200))


def _hand_over(
    task: TaskDescription | GroupTaskDescription, root: str, env: dict[str, str], what: str
) -> int:
    """After the program (a group: its last member) succeeded: on the main host, put the
    outputs where SageMaker's upload takes them; a failure there fails the job, ``what``
    naming it in the failure file."""
    state_warning = _outputs.undeclared_state_warning(
        task, env[c.ENV_STATE], env[c.ENV_CURRENT_HOST]
    )
    if state_warning:  # every host's state would be lost, not only the main host's
        _log(state_warning)
    if not _is_main_host(env):
        return 0
    warning = _outputs.empty_model_warning(task, env[c.ENV_MODEL_DIR], env[c.ENV_CURRENT_HOST])
    if warning:
        _log(warning)
    try:
        reason = finish(task, root)
    except (OSError, ValueError) as exc:
        reason = f"Handing over the outputs failed: {exc}"
    if reason:
        _log(reason)
        write_failure(root, f"ExitCode 1: {what} | {reason}\n", overwrite=True)
        return 1
    return 0


def _cannot_start(root: str, exc: BaseException, who: str = "") -> int:
    _log(f"cannot start {who or 'the task'}: {exc}")
    write_failure(root, f"ExitCode {LAUNCH_ERROR_EXIT}: {who}ssm_launch: {exc}\n")
    return LAUNCH_ERROR_EXIT


# --- a group's members, one after the other -------------------------------------------------
def run_group(task: GroupTaskDescription, root: str) -> int:
    """Run a group's members in order, each as it would run alone (its channels linked in,
    the inputs other members made handed over, its own environment), stopping at the first
    failure, whose failure file names the member. The outputs are handed to SageMaker's
    upload once, after the last member."""
    code_dir = _code_dir()
    members = task.members
    try:  # as a single task's preparation: a reason in the failure file, not a traceback
        failure = install_requirements(task, code_dir, dict(os.environ))
        env = _jobenv.build_env(members[0], root, code_dir, os.environ)  # the host's SM_* values
    except (LaunchError, OSError, ValueError, KeyError) as exc:
        return _cannot_start(root, exc, f"group {task.group}: ")
    if failure is not None:
        write_failure(root, failure)
        return 1
    for i, member in enumerate(members):
        who = f"rule {member.label} (member {i + 1}/{len(members)} of group {task.group}): "
        print(f"{c.GROUP_MEMBER_MARK}{i + 1}/{len(members)}: rule {member.label}", flush=True)
        rc = _run_member(member, root, code_dir / member.code_dir, who, i)
        if rc != 0:
            return rc
    return _hand_over(task, root, env, f"group {task.group}")


def _run_member(member: MemberTask, root: str, member_dir: Path, who: str, index: int) -> int:
    args = hp.to_cmd_args(hp.user_hps(member.hps))  # its free args: build_command
    if not member_dir.is_dir():  # a shell: rule without job(source_dir=...) ships no code
        member_dir = _code_dir()
    try:
        _enter_member(member)
        env = _program_env(member, root, member_dir, args, _member_base_env(member, index))
        env.update(member.env)  # its job(environment=...)
        # worker_toolkit sits at the bundle root, the member's code below it
        env["PYTHONPATH"] = os.pathsep.join([str(member_dir), str(_code_dir()), env["PYTHONPATH"]])
        cmd = build_command(member, member_dir, args)
    except (LaunchError, OSError, ValueError, KeyError) as exc:
        return _cannot_start(root, exc, who)
    try:
        rc = run_setup(member, member_dir, env, who)
        if rc != 0:
            return rc
        what = who + describe(member, args)
        _log(f"Invoking {member.kind} ({member.job_type} job): {shlex.join(cmd)}")
        try:
            rc, tail = run_program(cmd, member_dir, env)
        except OSError as exc:
            return _cannot_start(root, exc, who)
        if rc != 0:
            _log(f"program failed with exit code {rc}")
            write_failure(root, failure_text(rc, what, tail))
            return rc
        missing = _outputs.missing_files(member.files) if _is_main_host(env) else []
        if missing:
            path, rel = missing[0]
            reason = f"Missing output: the program did not write {rel!r}, expected at {path}"
            _log(reason)
            write_failure(root, f"ExitCode 1: {_shorten(what, 200)} | {reason}\n", overwrite=True)
            return 1
        return 0
    finally:
        _leave_member(member)


def _member_base_env(member: MemberTask, index: int) -> dict[str, str]:
    """The container's environment for a member. A member that declares no model(...) (or
    no output_data(...)) gets a model (output) directory of its own: what it writes there
    would be dropped were it alone, and must not land in the model of the member that
    declares one (a job has one SM_MODEL_DIR)."""
    env = dict(os.environ)
    private = f"{c.OPT_ML}/ssm_group/{index}"
    if not member.model:
        env[c.ENV_MODEL_DIR] = f"{private}/model"
    if not member.output_data:
        env[c.ENV_OUTPUT_DATA_DIR] = f"{private}/output"
        env.pop(c.ENV_OUTPUT, None)  # SSM_OUTPUT follows SM_OUTPUT_DATA_DIR
    return env


def _enter_member(member: MemberTask) -> None:
    """The member's inputs where it reads them alone: its channel directories linked to the
    job's channels, and what other members of the group produced for it handed over."""
    for path, target in member.links:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, path, target_is_directory=True)
    for how, source, target in member.handoffs:
        if not os.path.lexists(source):
            raise LaunchError(f"the group's earlier member left no {source} for input {target}")
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        import shutil  # only for a group's hand-overs

        if how == "copy":
            shutil.copy2(source, target)
        elif how == "tar":
            _outputs.write_tar_gz(Path(source), Path(target))
        else:
            shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)


def _leave_member(member: MemberTask) -> None:
    """Undo _enter_member (and the unpacked inputs): the next member may name its own
    inputs alike."""
    dirs = [*member.channels.values(), *(extracted for extracted, _ in member.unpack.values())]
    for path in dirs:
        if os.path.islink(path):
            os.unlink(path)
        elif os.path.isdir(path):
            import shutil  # only for a group's members

            shutil.rmtree(path)
