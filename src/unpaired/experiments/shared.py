"""`unpaired experiment FILE --storage URL`: one experiment shared by any number of processes, on any
machines that see OUT (a shared file system) and the database.

The runs (one per row, or per row and seed) are the points of an Optuna grid (``GridSampler`` over
one parameter, ``run``: the run folder relative to OUT) in a study of the storage, named after the
experiment, its scale, OUT's name and its runs. Each process takes one run at a time through
``study.optimize``: Optuna hands out grid points no process has started, and sends heartbeats while
a run trains. A run whose process died (kill -9, a lost machine) is failed once its heartbeats have
been missing for the grace period, by whichever process looks next, and re-queued with the same run
(``RetryFailedTrialCallback``); the process that takes it resumes the run folder's last checkpoint.
A process with nothing left to start waits for the runs of the others (checking for dead ones), so
every run is trained once. When every run is finished, the processes race to create a claim file
with ``O_EXCL``: exactly one writes OUT/report, the others say who does. OUT/experiment.json lets
``unpaired report OUT`` write the report again by hand.

A run that fails (a bad setting, a bug: not a dead process) is recorded on its trial and not
retried in that session; the other runs go on, and the command ends with the failures listed. Any
process started later tries each failed run once more.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

from ..config import ConfigError
from ..runs import RunFolder
from .experiment import (
    ExperimentPlan,
    plan_experiment,
    report_inputs,
    resume_point,
    run_label,
    run_row,
    save_report_inputs,
    write_experiment_report,
)
from .jobs import JobsFailed, run_dir_lock
from .storage import (
    first_line,
    heartbeat_errors_as_one_line,
    is_storage_error,
    open_storage,
    process_name,
    storage_lost,
    yield_if_taken,
)

POLL_SECONDS = 2.0  # how often a process with nothing to start looks at the others' runs


class RunFailed(Exception):
    """A run's training or scoring failed (recorded on its trial; the process goes on with others)."""


def study_name(plan: ExperimentPlan, keys: list[str]) -> str:
    """``experiment-<name>-<scale>-<OUT's name>-<hash of the runs>``: the same on every machine that
    runs the same command (OUT may be mounted at other paths), another for other rows or seeds."""
    name = str(plan.spec.get("name", plan.path.stem))
    digest = hashlib.sha1(json.dumps(keys).encode()).hexdigest()[:8]
    return f"experiment-{name}-{plan.scale}-{plan.out.resolve().name}-{digest}"


def run_shared_experiment(
    path: str | Path,
    data: str | Path,
    out: str | Path,
    url: str,
    scale: str = "full",
    only: list[str] | None = None,
    device: str = "auto",
    show_progress: bool = True,
    seeds: list[int] | None = None,
    heartbeat: int = 60,
    grace: int | None = None,
    retries: int = 3,
    poll: float = POLL_SECONDS,
) -> dict[str, Path] | None:
    """Take runs of the experiment from the study in ``url`` until every run is finished, then write
    OUT/report unless another process does (then None)."""
    try:
        import optuna  # noqa: PLC0415, F401 - optional (the sweep extra): said at once when missing
    except ImportError:
        raise ConfigError("--storage needs Optuna: pip install optuna (or 'unpaired[sweep]')") from None
    plan = plan_experiment(path, data, out, scale, only, device, seeds)
    storage = open_storage(url, heartbeat, grace, retries, "experiment")
    save_report_inputs(plan)
    try:
        with heartbeat_errors_as_one_line(url, "experiment"):
            return _take_runs(plan, storage, show_progress, poll)
    except Exception as e:
        if not is_storage_error(e):
            raise
        raise storage_lost(
            e,
            url,
            "experiment",
            "run the same command again once the database is back; finished runs are kept, and a run that "
            "was training is retried after the grace period, resuming its last checkpoint",
        ) from None


def _take_runs(plan: ExperimentPlan, storage, show_progress: bool, poll: float) -> dict[str, Path] | None:
    import optuna  # noqa: PLC0415 - optional (the sweep extra)
    from optuna.storages import fail_stale_trials  # noqa: PLC0415 - optional

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # no lines per trial: the runs print their own
    keys = [str(plan.run_dir(row, seed).relative_to(plan.out)) for row, seed in plan.runs]
    by_key = dict(zip(keys, zip(plan.runs, plan.configs)))
    name = study_name(plan, keys)
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        sampler=optuna.samplers.GridSampler({"run": keys}, seed=0),
        direction="minimize",
        load_if_exists=True,
    )
    print(f"experiment: study {name!r}, {len(keys)} runs, this process {process_name()}", file=sys.stderr)
    for key in [k for k, s in run_states(study, keys).items() if s == "failed"]:  # failed before: once more
        study.enqueue_trial({"run": key}, user_attrs={"rerun": True})

    current: dict[str, Any] = {}  # the trial this process runs

    def objective(trial: optuna.Trial) -> float:
        current["trial"] = trial
        key = trial.suggest_categorical("run", keys)
        (row, seed), cfg = by_key[key]
        label, run_dir = run_label(row["name"], seed), plan.run_dir(row, seed)
        trial.set_user_attr("process", process_name())  # who runs it (a retry inherits the dead one's attrs)
        trial.set_user_attr("resumed_from", None)
        trial.set_user_attr("error", None)

        def same_run(t) -> bool:
            return t.params.get("run") == key

        yield_if_taken(study, trial, same_run)  # two processes were handed the same run at once
        with run_dir_lock(run_dir, f"trial {trial.number}"):
            yield_if_taken(study, trial, same_run)
            resumed = resume_point(run_dir)
            trial.set_user_attr("resumed_from", resumed)  # the checkpoint's iteration (None: fresh)
            prefix = f"[{keys.index(key) + 1}/{len(keys)}] trial {trial.number}: "
            try:
                run_row(label, cfg, run_dir, plan.data, plan.resolved_device, prefix, show_progress)
            except Exception as e:
                if is_storage_error(e):
                    raise
                trial.set_user_attr("error", first_line(e, None))
                log = RunFolder(run_dir).error_log  # the traceback, for a bug: the trial keeps one line
                log.parent.mkdir(parents=True, exist_ok=True)
                with open(log, "a") as f:
                    f.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} trial {trial.number} ({process_name()})\n")
                    f.write("".join(traceback.format_exception(e)))
                print(f"{prefix}{label} failed: {first_line(e, None)} (traceback in {log})", file=sys.stderr)
                raise RunFailed(str(e)) from e
            try:
                trial.set_user_attr("finished", True)  # before the lock is released: a duplicate sees it
            except optuna.exceptions.UpdateFinishedTrialError:
                pass  # failed as stale meanwhile (late heartbeats): see the loop below
        return 0.0

    while True:
        states = run_states(study, keys)
        left = [k for k, s in states.items() if s not in ("done", "failed")]
        if not left:
            break
        if any(states[k] in ("todo", "waiting") for k in left):
            current.clear()
            try:
                with warnings.catch_warnings():  # GridSampler's note on a re-evaluated point: a duplicate yields
                    warnings.simplefilter("ignore")
                    study.optimize(objective, n_trials=1, catch=(RunFailed,))
            except KeyboardInterrupt:  # Ctrl-C: the run saved a checkpoint; re-queue it for any process
                _requeue(study, current.get("trial"))
                raise
            except ValueError as e:
                if not str(e).startswith("Cannot tell a"):
                    raise
                # this process's heartbeats were late (an overloaded machine, a paused process): its trial
                # was failed and re-queued while it trained; the run is on disk, and whoever takes the
                # re-queued trial finds it finished
                print(
                    f"experiment: trial {current['trial'].number} was given to another process while this one "
                    "ran it (heartbeats later than --grace); its run is kept, that process records it",
                    file=sys.stderr,
                )
            continue
        with warnings.catch_warnings():  # the rest are running elsewhere: fail those whose process died
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            fail_stale_trials(study)  # (and re-queue them: the storage's RetryFailedTrialCallback)
        time.sleep(poll)

    failed = [k for k, s in states.items() if s == "failed"]
    if failed:
        errors = _errors(study)
        raise JobsFailed(
            f"{len(failed)} of {len(keys)} runs failed: "
            + "; ".join(f"{k}: {errors.get(k, 'its process died more often than --retries allows')}" for k in failed)
            + "; the others are finished. Fix the cause and run the same command again: it retries the failed runs "
            f"(tracebacks: error.log in their run folders under {plan.out})"
        )
    return _report_once(plan, name)


def run_states(study, keys: list[str]) -> dict[str, str]:
    """Each run's state in the study: done (a trial finished it), running, waiting (re-queued),
    failed (only failed trials: an error, or a process that died more often than allowed), todo."""
    found: dict[str, set[str]] = {k: set() for k in keys}
    for t in study.get_trials(deepcopy=False):
        # a WAITING (re-queued) trial has its run only among its fixed parameters until it is taken
        key = t.params.get("run") or (t.system_attrs.get("fixed_params") or {}).get("run")
        if key not in found:
            continue
        if t.state.name == "COMPLETE" or t.user_attrs.get("finished"):
            found[key].add("done")
        elif t.state.name in ("RUNNING", "WAITING"):
            found[key].add(t.state.name.lower())
        elif t.state.name == "FAIL":
            found[key].add("failed")
    order = ("done", "running", "waiting", "failed")
    return {k: next((s for s in order if s in states), "todo") for k, states in found.items()}


def _requeue(study, trial) -> None:
    """Put a trial stopped by Ctrl-C back in the queue (its run resumes from its checkpoint)."""
    if trial is None:
        return
    from optuna.storages import RetryFailedTrialCallback  # noqa: PLC0415 - optional (the sweep extra)

    frozen = study._storage.get_trial(trial._trial_id)
    if frozen.state.name == "FAIL" and frozen.params:
        with warnings.catch_warnings():  # deprecated name in Optuna 4.9+, the only one in 3.x
            warnings.simplefilter("ignore")
            RetryFailedTrialCallback(max_retry=None)(study, frozen)


def _errors(study) -> dict[str, str]:
    """The last recorded error of each run."""
    errors = {}
    for t in study.get_trials(deepcopy=False):
        if t.user_attrs.get("error") and "run" in t.params:
            errors[t.params["run"]] = t.user_attrs["error"]
    return errors


def _report_once(plan: ExperimentPlan, name: str) -> dict[str, Path] | None:
    """Write OUT/report if no other process of this study has claimed it (a claim file created with
    O_EXCL, atomic on local and NFS file systems); otherwise say who did and return None."""
    claim = plan.out / f".report-{hashlib.sha1(name.encode()).hexdigest()[:12]}.claim"
    try:
        fd = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        try:
            who = claim.read_text().strip() or "another process"
        except OSError:
            who = "another process"
        print(
            f"experiment: every run is finished; {plan.out / 'report'} is written by {who} "
            f"('unpaired report {plan.out}' writes it again)",
            file=sys.stderr,
        )
        return None
    with os.fdopen(fd, "w") as f:
        f.write(process_name() + "\n")
    try:
        return write_experiment_report(*report_inputs(plan), plan.out / "report")
    except BaseException:
        claim.unlink(missing_ok=True)  # let another process, or a rerun, write it
        raise
