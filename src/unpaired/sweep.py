"""`unpaired sweep`: hyperparameter search on the validation split with Optuna.

Each trial trains one configuration into OUT/trials/<params>, validating as it goes; the study
minimises the best validation FID (or KID) and prunes trials whose intermediate scores trail the
others (median rule). Studies live in an Optuna storage: a SQLite file by default
(OUT/sweep.db), or a PostgreSQL/MySQL URL that workers on several machines share. Every worker
sends heartbeats; a trial whose worker died (killed, machine lost) is marked failed after the grace
period and re-queued with the same parameters, and since its run folder is named by the
parameters, the new attempt resumes the dead one's checkpoint. At the end the best trial is scored
on the test split and a table of all trials is written.
"""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

from .config import Config, ConfigError, build_config, parse_override
from .train import Callback


def parse_params(items: list[str]) -> dict[str, list[Any]]:
    """``key=v1,v2,...`` -> {key: [v1, v2, ...]} with YAML-typed values."""
    import yaml

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


def run_sweep(model: str, data: str | Path, out: str | Path, space: dict[str, list[Any]], sampler: str = "grid",
              trials: int | None = None, storage: str | None = None, study_name: str | None = None,
              overrides: list[str] | None = None, metric: str = "fid", heartbeat: int = 60,
              seed: int = 0, show_progress: bool = False) -> dict[str, Any]:
    try:
        import optuna
    except ImportError:
        raise ConfigError("the sweep needs Optuna: pip install optuna (or 'unpaired[sweep]')") from None
    from optuna.storages import RDBStorage, RetryFailedTrialCallback

    from .evaluate import evaluate_run
    from .train import Trainer

    fixed = [("--data", {"data.root": str(data)})] + [("--set", dict([parse_override(item)])) for item in overrides or []]
    base = build_config(model, settings=fixed)
    # every trial validates (every epoch unless --set says otherwise) and is judged by `metric`
    validation = ("sweep", {"train.val_every": base.train.val_every or 1,
                            "train.val_unit": base.train.val_unit if base.train.val_every else "epoch",
                            "train.val_metric": metric})

    def trial_config(params: dict[str, Any]) -> Config:
        return build_config(model, settings=[*fixed, validation, ("--param", params)])

    trial_config({k: v[0] for k, v in space.items()})  # fail fast on unknown keys or bad values
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    url = storage or f"sqlite:///{(out / 'sweep.db').resolve()}"
    rdb = RDBStorage(url, heartbeat_interval=heartbeat, grace_period=2 * heartbeat,
                     failed_trial_callback=RetryFailedTrialCallback(max_retry=3))
    grid = {k: list(v) for k, v in space.items()}
    chosen_sampler = (optuna.samplers.GridSampler(grid, seed=seed) if sampler == "grid"
                      else optuna.samplers.TPESampler(seed=seed))
    name = study_name or f"{model}-{'-'.join(sorted(k.split('.')[-1] for k in space))}"
    study = optuna.create_study(study_name=name, storage=rdb, direction="minimize", sampler=chosen_sampler,
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0),
                                load_if_exists=True)
    grid_size = 1
    for values in grid.values():
        grid_size *= len(values)
    n_total = trials or (grid_size if sampler == "grid" else 10)

    def objective(trial: "optuna.Trial") -> float:
        params = {k: trial.suggest_categorical(k, v) for k, v in space.items()}
        run_dir = out / "trials" / trial_name(params)
        trial.set_user_attr("run_dir", str(run_dir))
        pruning = PruneOnValidation(trial, metric)
        summary = Trainer(trial_config(params), run_dir, callbacks=[pruning], show_progress=show_progress).fit()
        best = (summary.get("validation") or {}).get("best")
        if pruning.pruned:
            raise optuna.TrialPruned()
        if best is None:
            raise RuntimeError(f"trial {trial.number} produced no validation score")
        trial.set_user_attr("best_iteration", best["iteration"])
        return float(best[metric])

    def finished() -> int:
        return sum(t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
                   for t in study.get_trials(deepcopy=False))

    while finished() < n_total:
        study.optimize(objective, n_trials=1, catch=())
    result: dict[str, Any] = {"study": name, "storage": url, "metric": metric, "trials": []}
    for t in study.get_trials(deepcopy=False):
        result["trials"].append({"number": t.number, "state": t.state.name, "value": t.value, "params": t.params,
                                 "run_dir": t.user_attrs.get("run_dir")})
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    if complete:
        best = min(complete, key=lambda t: t.value)
        test = evaluate_run(best.user_attrs["run_dir"], data, "test", which="best", show_progress=show_progress)
        result["best"] = {"number": best.number, "params": best.params, f"val_{metric}": best.value,
                          "test_fid": test["fid"], "test_kid": test["kid"], "run_dir": best.user_attrs["run_dir"]}
    _write_table(result, out)
    return result


def _write_table(result: dict[str, Any], out: Path) -> None:
    keys = sorted({k for t in result["trials"] for k in t["params"]})
    lines = [f"Sweep {result['study']} ({result['storage']}), minimising validation {result['metric'].upper()}.", "",
             "| trial | state | " + " | ".join(keys) + f" | val {result['metric']} |",
             "|---|---|" + "---|" * len(keys) + "---|"]
    for t in result["trials"]:
        val = "-" if t["value"] is None else f"{t['value']:.4g}"
        lines.append(f"| {t['number']} | {t['state']} | " + " | ".join(str(t["params"].get(k, "-")) for k in keys)
                     + f" | {val} |")
    if "best" in result:
        b = result["best"]
        lines += ["", f"Best: trial {b['number']} {b['params']}: validation {result['metric'].upper()} "
                      f"{b['val_' + result['metric']]:.4g}; test FID {b['test_fid']:.2f}, KID {b['test_kid']:.4f}."]
    (out / "sweep.md").write_text("\n".join(lines) + "\n")
    with open(out / "sweep.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["trial", "state", *keys, "value"])
        for t in result["trials"]:
            w.writerow([t["number"], t["state"], *[t["params"].get(k) for k in keys], t["value"]])
    (out / "sweep.json").write_text(json.dumps(result, indent=2))
    print((out / "sweep.md").read_text(), end="", file=sys.stdout)
