"""`unpaired sweep`: hyperparameter search on the validation split with Optuna.

Each trial trains one configuration into OUT/trials/<params>, validating as it goes; the study
minimises the best validation FID (or KID) and prunes trials whose intermediate scores trail the
others (median rule). Studies live in an Optuna storage: a SQLite file by default
(OUT/sweep.db), or a PostgreSQL/MySQL URL that workers on several machines share. Every worker
sends heartbeats; a trial whose worker died (killed, machine lost) is marked failed after the grace
period and re-queued with the same parameters, and since its run folder is named by the
parameters, the new attempt resumes the dead one's checkpoint. At the end the best trial is scored
on the test split and a table of all trials is written.

With training seeds (``--seeds 0 1 2``) a trial trains its configuration once per seed, into
OUT/trials/<params>/seed<k> with ``train.seed = k``, one seed after the other. Its value is the mean
over seeds of each run's best validation score. Only the first seed's validation scores are
reported to the pruner (as intermediate values at that run's iterations), so the median rule
compares first seeds with first seeds, and a pruned trial trains no further seeds. The best trial
is scored on the test split with each seed's best checkpoint, and its test FID/KID are the means
over its seeds; the tables give each trial's mean and sample standard deviation over seeds.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
import yaml

from ..config import Config, ConfigError, parse_override
from ..files import make_dir, write_text
from ..inference.evaluation import evaluate_run
from ..methods import build_config
from ..training.trainer import Callback, Trainer, TrainingDiverged
from .experiment import check_seeds, resume_point, run_dir_of
from .jobs import (
    ForwardInterrupt,
    Job,
    JobPool,
    JobsFailed,
    failure_report,
    package_command,
    run_dir_lock,
)
from .storage import (
    child_env,
    heartbeat_errors_as_one_line,
    is_storage_error,
    mask_url,
    open_storage,
    process_name,
    storage_lost,
    storage_url,
    yield_if_taken,
)

SAMPLERS = ("grid", "tpe")  # Optuna's GridSampler, TPESampler


def parse_params(items: list[str]) -> dict[str, list[Any]]:
    """``key=v1,v2,...`` -> {key: [v1, v2, ...]} with YAML-typed values."""
    space: dict[str, list[Any]] = {}
    for item in items:
        key, _ = parse_override(item)
        raw = item.split("=", 1)[1]
        values = [yaml.safe_load(v) for v in raw.split(",") if v.strip()]
        if not values:
            raise ConfigError(f"--param {item}: give at least one value, e.g. --param focal_gamma=0,1,2")
        space[key] = values
    if not space:
        raise ConfigError("give at least one --param KEY=V1,V2,...")
    return space


def trial_name(params: dict[str, Any]) -> str:
    return ",".join(f"{k.split('.')[-1]}={v}" for k, v in sorted(params.items()))


def mean_std(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (n - 1; None for fewer than two values)."""
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


class PruneOnValidation(Callback):
    """Reports each validation score to an Optuna trial and stops the run when the pruner says so."""

    def __init__(self, trial, metric: str):
        self.trial, self.metric = trial, metric
        self.pruned = False

    def on_validation(self, trainer, entry: dict[str, Any]) -> None:
        self.trial.report(entry[self.metric], entry["iteration"])
        if self.trial.should_prune():
            self.pruned = True
            trainer.request_stop("pruned")


@dataclass
class SweepPlan:
    """What the phases of one sweep process share: the command's settings, and the study's storage
    URL, name and target number of finished trials once :func:`open_study` has them."""

    model: str
    data: str | Path
    out: Path
    space: dict[str, list[Any]]
    sampler: str
    metric: str
    heartbeat: int
    seed: int
    overrides: list[str]
    seeds: list[int] | None
    show_progress: bool
    grace: int | None = None
    retries: int = 3
    url: str = ""
    name: str = ""
    n_total: int = 0


def run_sweep(
    model: str,
    data: str | Path,
    out: str | Path,
    space: dict[str, list[Any]],
    sampler: str = "grid",
    trials: int | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    overrides: list[str] | None = None,
    metric: str = "fid",
    heartbeat: int = 60,
    seed: int = 0,
    show_progress: bool = False,
    jobs: int = 1,
    worker: int = 0,
    seeds: list[int] | None = None,
    grace: int | None = None,
    retries: int = 3,
) -> dict[str, Any]:
    """Run trials until the study has ``trials`` finished (complete or pruned) ones, then score the
    best on the test split and write OUT/sweep.md, .csv and .json.

    ``seed`` seeds the sampler; ``seeds`` are training seeds: each trial trains once per seed (see
    the module's description; default: one run per trial with the configured ``train.seed``).
    ``jobs`` > 1 starts ``jobs - 1`` worker processes on the same study (``worker`` = their index,
    1, 2, ...; a worker only runs trials and returns None) besides this one, spread over the GPUs
    and sharing the CPU threads as :mod:`unpaired.jobs` describes. Each process runs whole trials
    (all their seeds)."""
    try:
        import optuna  # noqa: PLC0415, F401 - optional (the sweep extra): said at once when missing
    except ImportError:
        raise ConfigError("the sweep needs Optuna: pip install optuna (or 'unpaired[sweep]')") from None

    if jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {jobs}")
    seeds = check_seeds(seeds, "--seeds")
    if seeds is not None and any(k in ("seed", "train.seed") for k in space):
        raise ConfigError("--seeds sets train.seed of every trial's runs; do not also search it with --param")
    trial_config, base = trial_configs(model, data, overrides, metric)
    trial_config({k: v[0] for k, v in space.items()})  # fail fast on unknown keys or bad values
    plan = SweepPlan(
        model=model,
        data=data,
        out=make_dir(out, "sweep folder"),
        space=space,
        sampler=sampler,
        metric=metric,
        heartbeat=heartbeat,
        seed=seed,
        overrides=overrides or [],
        seeds=seeds,
        show_progress=show_progress,
        grace=grace,
        retries=retries,
    )
    try:
        study = open_study(plan, storage, study_name, trials, worker)
        with heartbeat_errors_as_one_line(plan.url, "sweep"):
            pool = run_all_trials(study, plan, trial_config, jobs if worker == 0 else 1, base.train.device)
        if worker:
            return None
        result = collect_results(study, plan)
    except Exception as e:
        if not is_storage_error(e):
            raise
        raise storage_lost(
            e,
            plan.url,
            "sweep",
            "run the same command again once the database is back; finished trials are kept, and a trial "
            "that was running is retried after the grace period, resuming its run's last checkpoint",
        ) from None
    _write_table(result, plan.out)
    failed = [j for j in pool.finished if not j.ok] if pool else []
    if failed:
        raise JobsFailed(
            failure_report(failed, "worker processes", len(pool.finished))
            + f"\n(the tables in {plan.out} list every trial of the study)"
        )
    return result


def trial_configs(
    model: str, data: str | Path, overrides: list[str] | None, metric: str
) -> tuple[Callable[..., Config], Config]:
    """``trial_config(params, train_seed=None)``, the configuration of one trial's run, and the base
    configuration (the preset with --data and --set): every trial validates (every epoch unless --set
    says otherwise) and is judged by ``metric``."""
    fixed = [("--data", {"data.root": str(data)})] + [
        ("--set", dict([parse_override(item)])) for item in overrides or []
    ]
    base = build_config(model, settings=fixed)
    validation = (
        "sweep",
        {
            "train.val_every": base.train.val_every or 1,
            "train.val_unit": base.train.val_unit if base.train.val_every else "epoch",
            "train.val_metric": metric,
        },
    )

    def trial_config(params: dict[str, Any], train_seed: int | None = None) -> Config:
        extra = [] if train_seed is None else [("--seeds", {"train.seed": train_seed})]
        return build_config(model, settings=[*fixed, validation, ("--param", params), *extra])

    return trial_config, base


def open_study(plan: SweepPlan, storage: str | None, study_name: str | None, trials: int | None, worker: int):
    """Open the study (creating it on first use) in its storage, with heartbeats and retries of trials
    whose process died; check its training seeds; set ``plan.url``, ``.name`` and ``.n_total``."""
    import optuna  # noqa: PLC0415 - optional (the sweep extra)

    plan.url = storage_url(storage) or f"sqlite:///{(plan.out / 'sweep.db').resolve()}"
    rdb = open_storage(plan.url, plan.heartbeat, plan.grace, plan.retries, "sweep")
    grid = {k: list(v) for k, v in plan.space.items()}
    # grid: every worker needs the same seed (GridSampler numbers its shuffled grid by trial number);
    # TPE: workers with one seed would draw the same first points
    chosen_sampler = (
        optuna.samplers.GridSampler(grid, seed=plan.seed)
        if plan.sampler == "grid"
        else optuna.samplers.TPESampler(seed=plan.seed + worker)
    )
    plan.name = study_name or f"{plan.model}-{'-'.join(sorted(k.split('.')[-1] for k in plan.space))}"
    study = optuna.create_study(
        study_name=plan.name,
        storage=rdb,
        direction="minimize",
        sampler=chosen_sampler,
        pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0),
        load_if_exists=True,
    )
    _check_study_seeds(study, plan.seeds)
    grid_size = 1
    for values in grid.values():
        grid_size *= len(values)
    plan.n_total = trials or (grid_size if plan.sampler == "grid" else 10)
    return study


def make_objective(plan: SweepPlan, trial_config, current: dict[str, Any], extra_callbacks: list):
    """The study's objective: train the trial's configuration once per training seed (the first
    seed's validation scores go to the pruner) and return the mean of the runs' best scores. It
    puts the trial it runs in ``current``."""
    import optuna  # noqa: PLC0415 - optional (the sweep extra)

    space, out, seeds, metric, show_progress = plan.space, plan.out, plan.seeds, plan.metric, plan.show_progress

    def objective(trial: "optuna.Trial") -> float:
        current["trial"] = trial
        params = {k: trial.suggest_categorical(k, v) for k, v in space.items()}
        trial_dir = out / "trials" / trial_name(params)
        trial.set_user_attr("run_dir", str(trial_dir))
        trial.set_user_attr("process", process_name())  # who runs it (host:pid)
        resumed_runs: dict[str, int] = {}  # run folder -> the checkpoint's iteration it resumed from
        trial.set_user_attr("resumed_from", resumed_runs)  # (a retried trial inherits the dead one's attrs)
        # (train seed, run folder): the trial folder itself without seeds, else one seed<k> folder per seed
        runs = [(k, run_dir_of(trial_dir.parent, trial_dir.name, k)) for k in (seeds if seeds is not None else [None])]
        values: list[float] = []
        iterations: list[int] = []

        # a grid point runs once: two processes can be handed the same one at once (TPE may suggest a
        # point again by its own choice: that trial reruns nothing, it resumes the finished run folder)
        def same_point(t) -> bool:
            return plan.sampler == "grid" and t.params == params

        yield_if_taken(trial.study, trial, same_point)
        with run_dir_lock(trial_dir, f"trial {trial.number}"):
            yield_if_taken(trial.study, trial, same_point)
            for i, (train_seed, run_dir) in enumerate(runs):
                # only the first seed reports to the pruner: its intermediate values are comparable
                # with the other trials' first seeds at the same iteration
                pruning = PruneOnValidation(trial, metric) if i == 0 else None
                which = f"trial {trial.number}" + ("" if train_seed is None else f" seed {train_seed}")
                resumed = resume_point(run_dir)
                if resumed:  # a retried trial of a process that died, or a rerun after Ctrl-C
                    print(f"sweep: {which}: resuming {run_dir} from iteration {resumed}", file=sys.stderr)
                    resumed_runs[run_dir.name] = resumed
                    trial.set_user_attr("resumed_from", resumed_runs)
                try:
                    summary = Trainer(
                        trial_config(params, train_seed),
                        run_dir,
                        callbacks=[*([pruning] if pruning else []), *extra_callbacks],
                        show_progress=show_progress,
                    ).fit()
                except TrainingDiverged as e:
                    # a result of the search, not a failure of the sweep (a learning rate too high):
                    # recorded, never retried (it would diverge again), and the sweep goes on
                    trial.set_user_attr("diverged", str(e))
                    print(f"sweep: {which} diverged; recorded as DIVERGED, the sweep goes on ({e})", file=sys.stderr)
                    raise optuna.TrialPruned() from None
                if summary.get("stop_reason") == "interrupted":  # Ctrl-C: not a result; the trial is re-queued
                    raise KeyboardInterrupt(f"{which} stopped at iteration {summary['iteration']}")
                best = (summary.get("validation") or {}).get("best")
                if pruning is not None and pruning.pruned:
                    raise optuna.TrialPruned()
                if best is None:
                    raise RuntimeError(f"{which} produced no validation score")
                values.append(float(best[metric]))
                iterations.append(best["iteration"])
                if seeds is not None:  # after each seed, so a trial in progress shows what it has
                    trial.set_user_attr("seeds", seeds[: i + 1])
                    trial.set_user_attr("seed_values", values)
                    trial.set_user_attr("best_iterations", iterations)
        trial.set_user_attr("best_iteration", iterations[0])
        return statistics.fmean(values)

    return objective


def study_counts(study) -> dict[str, int]:
    """How many of the study's trials are in each state that matters for starting another (a
    duplicate, which yielded its grid point to another trial, counts for nothing)."""
    states = [t.state.name for t in study.get_trials(deepcopy=False) if not t.user_attrs.get("duplicate")]
    return {k: states.count(k) for k in ("COMPLETE", "PRUNED", "RUNNING", "WAITING")}


def run_all_trials(study, plan: SweepPlan, trial_config, jobs: int, device: str):
    """Run trials until ``plan.n_total`` are finished: in this process alone, or (``jobs`` > 1) with
    ``jobs - 1`` worker processes on the same study (no more than trials are left), which this
    process waits for. Returns the job pool, or None without workers. This process's failure stops
    the workers; Ctrl-C reaches them through the pool."""
    counts = partial(study_counts, study)
    pool, extra_callbacks, threads = None, [], None
    if jobs > 1:
        c = counts()
        children = min(jobs, plan.n_total - c["COMPLETE"] - c["PRUNED"]) - 1  # no more processes than trials left
        if children > 0:
            pool = JobPool(children + 1, device, raise_interrupt=True, parent_gpu=True)
            extra_callbacks = [ForwardInterrupt(pool)]
            if "OMP_NUM_THREADS" not in os.environ:  # this process trains too: its share of the CPUs
                threads = torch.get_num_threads()
                torch.set_num_threads(pool.threads)
            print(
                f"sweep: this process and {children} worker process(es), {pool.threads} CPU thread(s) each"
                + (f", on GPUs {','.join(pool.gpus)}" if pool.gpus else "")
                + f"; workers log to {plan.out / 'workers'}/",
                file=sys.stderr,
            )
    current: dict[str, Any] = {}  # the trial this process is running
    objective = make_objective(plan, trial_config, current, extra_callbacks)
    try:
        with pool or contextlib.nullcontext():
            for i in range(1, pool.jobs if pool else 0):
                pool.start(
                    Job(
                        f"worker {i}",
                        worker_command(plan, i),
                        plan.out / "workers" / f"worker{i}.log",
                        env=child_env(plan.url),  # the real URL: not on the command line
                    )
                )
            _run_trials(study, objective, counts, plan.n_total, current, poll=1.0)
            if pool:
                pool.wait()
    except BaseException as e:
        if pool is not None:
            if not isinstance(e, KeyboardInterrupt):  # this process failed: stop the workers too
                pool.interrupt()
            pool.wait()
        raise
    finally:
        if threads is not None:
            torch.set_num_threads(threads)
    return pool


def worker_command(plan: SweepPlan, i: int) -> list[str]:
    """The command of worker process ``i``: the same study, search space and settings; it only runs
    trials. The storage URL is not on it (``ps`` shows command lines to every user): the worker gets
    it through the environment (:func:`unpaired.experiments.storage.child_env`)."""
    args = [
        "sweep",
        "--model",
        plan.model,
        "--data",
        str(plan.data),
        "--out",
        str(plan.out),
        "--space",
        json.dumps(plan.space),
        "--sampler",
        plan.sampler,
        "--trials",
        str(plan.n_total),
        "--study-name",
        plan.name,
        "--metric",
        plan.metric,
        "--heartbeat",
        str(plan.heartbeat),
        *(["--grace", str(plan.grace)] if plan.grace else []),
        "--retries",
        str(plan.retries),
        "--seed",
        str(plan.seed),
        "--quiet",
        "--worker",
        str(i),
        *(["--seeds", *map(str, plan.seeds)] if plan.seeds is not None else []),
    ]
    for item in plan.overrides:
        args += ["--set", item]
    return package_command(*args)


def collect_results(study, plan: SweepPlan) -> dict[str, Any]:
    """Every trial of the study (with seeds: the values per seed and their std), and the best
    complete trial scored on the test split with each seed's best-by-validation checkpoint."""
    import optuna  # noqa: PLC0415 - optional (the sweep extra)

    seeds, metric = plan.seeds, plan.metric
    result: dict[str, Any] = {
        "study": plan.name,
        "storage": mask_url(plan.url),
        "metric": metric,
        "seeds": seeds,
        "trials": [],
    }
    for t in study.get_trials(deepcopy=False):
        if t.user_attrs.get("duplicate"):  # handed a grid point another trial had: it ran nothing
            continue
        diverged = t.user_attrs.get("diverged")
        entry = {
            "number": t.number,
            "state": "DIVERGED" if diverged else t.state.name,
            "value": t.value,
            "params": t.params,
            "run_dir": t.user_attrs.get("run_dir"),
            **({"diverged": diverged} if diverged else {}),
        }
        if seeds is not None:  # value: the mean over seeds (a pruned trial's: its first seed's last score)
            per_seed = t.user_attrs.get("seed_values") or []
            entry.update(
                seed_values=dict(zip(map(str, t.user_attrs.get("seeds") or []), per_seed)),
                std=mean_std(per_seed)[1] if t.state.name == "COMPLETE" else None,
            )
        result["trials"].append(entry)
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    if complete:
        result["best"] = score_best(min(complete, key=lambda t: t.value), plan)
    return result


def score_best(best, plan: SweepPlan) -> dict[str, Any]:
    """The best trial's entry: its validation value and its test FID/KID (with seeds: the means over
    the seeds' runs, their std, and each seed's scores)."""
    seeds, metric = plan.seeds, plan.metric
    best_dir = Path(best.user_attrs["run_dir"])
    dirs = [run_dir_of(best_dir.parent, best_dir.name, k) for k in (seeds if seeds is not None else [None])]
    tests = [evaluate_run(d, plan.data, "test", which="best", show_progress=plan.show_progress) for d in dirs]
    entry = {
        "number": best.number,
        "params": best.params,
        f"val_{metric}": best.value,
        "run_dir": str(best_dir),
    }
    for key in ("fid", "kid"):  # with seeds: the mean over the seeds' test scores, and their std
        entry[f"test_{key}"], std = mean_std([r[key] for r in tests])
        if seeds is not None:
            entry[f"test_{key}_std"] = std
    if seeds is not None:
        entry[f"val_{metric}_std"] = mean_std(best.user_attrs.get("seed_values") or [])[1]
        entry["seeds"] = [
            {
                "seed": k,
                "run_dir": str(d),
                "test_fid": r["fid"],
                "test_kid": r["kid"],
                "checkpoint": r["checkpoint"],
                "iteration": r["iteration"],
            }
            for k, d, r in zip(seeds, dirs, tests)
        ]
    return entry


def _run_trials(study, objective, counts, n_total: int, current: dict[str, Any], poll: float) -> None:
    """Start trials while fewer than ``n_total`` are finished or running. When the rest are running
    in other processes, wait: one whose process dies is failed after the heartbeat grace period and
    re-queued (WAITING), and then this process takes it. A trial stopped by Ctrl-C is re-queued with
    the same parameters (its run folder resumes) before the interrupt goes on."""
    import optuna  # noqa: PLC0415 - optional (the sweep extra)
    from optuna.storages import RetryFailedTrialCallback, fail_stale_trials  # noqa: PLC0415

    while True:
        c = counts()
        done = c["COMPLETE"] + c["PRUNED"]
        if done >= n_total:
            return
        if done + c["RUNNING"] >= n_total and not c["WAITING"]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                fail_stale_trials(study)
            time.sleep(poll)
            continue
        current.clear()
        try:
            study.optimize(objective, n_trials=1, catch=())
        except KeyboardInterrupt:
            trial = current.get("trial")
            if trial is not None:
                frozen = study._storage.get_trial(trial._trial_id)
                if frozen.state == optuna.trial.TrialState.FAIL and frozen.params:
                    with warnings.catch_warnings():  # deprecated name in Optuna 4.9+, the only one in 3.x
                        warnings.simplefilter("ignore")
                        RetryFailedTrialCallback(max_retry=None)(study, frozen)
            raise


def _check_study_seeds(study, seeds: list[int] | None) -> None:
    """A study's trial values are means over one set of training seeds: record the seeds in a new
    study, and refuse to continue a study with other seeds (a study without the record and with
    trials is from before --seeds: one run per trial)."""
    key = "train_seeds"
    attrs = study.user_attrs
    if key in attrs:
        recorded = attrs[key]
    elif study.get_trials(deepcopy=False):
        recorded = None
    else:
        study.set_user_attr(key, seeds)
        recorded = seeds
    if recorded != seeds:

        def say(s):
            return "no --seeds" if s is None else "--seeds " + " ".join(map(str, s))

        raise ConfigError(
            f"study {study.study_name!r} was run with {say(recorded)}, this command has {say(seeds)}: "
            f"give the same seeds, or start another study (--study-name, or another --out/--storage)"
        )


def _write_table(result: dict[str, Any], out: Path) -> None:
    keys = sorted({k for t in result["trials"] for k in t["params"]})
    seeds, metric = result.get("seeds"), result["metric"]

    def num(v, spec=".4g"):
        return "-" if v is None else format(v, spec)

    if seeds is None:
        head, extra_cols = f" | val {metric} |", 1
    else:
        head, extra_cols = (
            f" | val {metric} mean | std | " + " | ".join(f"seed {k}" for k in seeds) + " |",
            2 + len(seeds),
        )
    lines = [
        f"Sweep {result['study']} ({result['storage']}), minimising validation {metric.upper()}"
        + (
            "."
            if seeds is None
            else f" averaged over training seeds {', '.join(map(str, seeds))} (each trial trains every seed; "
            f"std: sample standard deviation over seeds; a pruned trial shows its first seed's last "
            f"validation score)."
        ),
        "",
        "| trial | state | " + " | ".join(keys) + head,
        "|---|---|" + "---|" * (len(keys) + extra_cols),
    ]
    for t in result["trials"]:
        row = f"| {t['number']} | {t['state']} | " + " | ".join(str(t["params"].get(k, "-")) for k in keys)
        row += f" | {num(t['value'])} |"
        if seeds is not None:
            row += f" {num(t['std'])} | " + " | ".join(num(t["seed_values"].get(str(k))) for k in seeds) + " |"
        lines.append(row)
    if "best" in result:
        b = result["best"]
        if seeds is None:
            lines += [
                "",
                f"Best: trial {b['number']} {b['params']}: validation {metric.upper()} "
                f"{b['val_' + metric]:.4g}; test FID {b['test_fid']:.2f}, KID {b['test_kid']:.4f}.",
            ]
        else:
            pm = {
                k: "" if b.get(k + "_std") is None else f" ± {b[k + '_std']:{s}}"
                for k, s in (("val_" + metric, ".4g"), ("test_fid", ".2f"), ("test_kid", ".4f"))
            }
            lines += [
                "",
                f"Best: trial {b['number']} {b['params']}: validation {metric.upper()} "
                f"{b['val_' + metric]:.4g}{pm['val_' + metric]}; test FID {b['test_fid']:.2f}{pm['test_fid']}, "
                f"KID {b['test_kid']:.4f}{pm['test_kid']} (mean ± std over seeds "
                f"{', '.join(map(str, seeds))}, each seed's best-by-validation checkpoint: "
                + ", ".join(f"seed {e['seed']} FID {e['test_fid']:.2f}" for e in b["seeds"])
                + ").",
            ]
    write_text(out / "sweep.md", "\n".join(lines) + "\n")
    table = io.StringIO(newline="")
    w = csv.writer(table)
    w.writerow(["trial", "state", *keys, "value", *(["std", *(f"seed{k}" for k in seeds)] if seeds else [])])
    for t in result["trials"]:
        w.writerow(
            [
                t["number"],
                t["state"],
                *[t["params"].get(k) for k in keys],
                t["value"],
                *([t["std"], *(t["seed_values"].get(str(k)) for k in seeds)] if seeds else []),
            ]
        )
    write_text(out / "sweep.csv", table.getvalue())
    write_text(out / "sweep.json", json.dumps(result, indent=2))
    print((out / "sweep.md").read_text(), end="", file=sys.stdout)
