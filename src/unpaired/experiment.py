"""`unpaired experiment`: train, evaluate and tabulate every row of an experiment file.

An experiment file (see configs/thesis_table51.yaml) lists rows (a preset plus ``set`` overrides)
and scales (overrides applied to every row). Each row trains into OUT/<row>, resuming an
interrupted run and skipping a finished one, is scored on the test split with its best-by-validation
checkpoint, and the report (table, plots, gallery) goes to OUT/report. With ``jobs`` > 1 up to that
many rows run at once, each as ``unpaired experiment ... --only ROW --row-process`` in its own
process (:mod:`unpaired.jobs`), and the parent writes the same report.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

from .config import Config, ConfigError, build_config, load_yaml


def load_experiment(path: str | Path) -> dict[str, Any]:
    spec = load_yaml(path)
    rows = spec.get("rows") if isinstance(spec, dict) else None
    if not rows or not all(isinstance(r, dict) and "name" in r and "model" in r for r in rows):
        raise ConfigError(f"{path}: expected 'rows:', a list of entries with 'name' and 'model'")
    names = [r["name"] for r in rows]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: row names must be unique, got {names}")
    return spec


def row_config(spec: dict[str, Any], row: dict[str, Any], scale: str, data: str | Path, device: str) -> Config:
    scales = spec.get("scales", {})
    if scale not in scales:
        raise ConfigError(f"scale {scale!r} is not defined; the file defines: {', '.join(scales) or 'none'}")
    return build_config(row["model"], settings=[
        (f"scale {scale}", scales[scale].get("set") or {}), (f"row {row['name']}", row.get("set") or {}),
        ("experiment", {"data.root": str(data), "train.device": device})])


def _row_state(run_dir: Path) -> tuple[bool, bool]:
    """(trained to the end, scored on the test split) for a row's run folder."""
    summary_path = run_dir / "summary.json"
    finished = summary_path.is_file() and bool(json.loads(summary_path.read_text()).get("finished"))
    return finished, (run_dir / "eval" / "test.json").is_file()


def run_experiment(path: str | Path, data: str | Path, out: str | Path, scale: str = "full",
                   only: list[str] | None = None, device: str = "auto", show_progress: bool = True,
                   jobs: int = 1, report: bool = True) -> dict[str, Path]:
    """Train and score every row (or the ``only`` ones), then write OUT/report.

    ``jobs`` > 1 runs up to that many rows at once, each in its own process (see
    :mod:`unpaired.jobs`) logging to OUT/<row>/experiment.log; ``report=False`` skips the report
    (a row process of such a run)."""
    from .report import write_report
    from .train import select_device

    spec = load_experiment(path)
    rows = spec["rows"]
    if only:
        unknown = sorted(set(only) - {r["name"] for r in rows})
        if unknown:
            raise ConfigError(f"--only: no row named {', '.join(unknown)}; rows: {', '.join(r['name'] for r in rows)}")
        rows = [r for r in rows if r["name"] in only]
    if jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {jobs}")
    out = Path(out)
    dev = str(select_device(device))
    configs = [row_config(spec, row, scale, data, device) for row in rows]  # every row's settings, before any trains
    if jobs > 1:
        _run_rows_in_processes(path, data, out, scale, rows, device, jobs, show_progress)
    else:
        for i, (row, cfg) in enumerate(zip(rows, configs), 1):
            _run_row(row["name"], cfg, out / row["name"], data, dev, f"[{i}/{len(rows)}] ", show_progress)
    if not report:
        return {}
    thesis = {r["name"]: r["thesis"] for r in spec["rows"] if "thesis" in r}
    note = (f"Experiment {spec.get('name', Path(path).stem)}, scale **{scale}** "
            f"({yaml.safe_dump(spec['scales'][scale].get('set', {}), default_flow_style=True).strip()}), data {data}.")
    return write_report([out / r["name"] for r in rows], out / "report", note=note, reference=thesis)


def _run_row(name: str, cfg: Config, run_dir: Path, data: str | Path, device: str, prefix: str,
             show_progress: bool) -> None:
    """Train one row (resuming; skipped when finished) and score it on the test split."""
    from .evaluate import evaluate_run
    from .train import Trainer

    finished, scored = _row_state(run_dir)
    print(f"{prefix}{name}: " + ("finished, skipping training" if finished else
          "resuming" if (run_dir / "checkpoints" / "latest.pt").is_file() else "training"), file=sys.stderr)
    if not finished:
        summary = Trainer(cfg, run_dir, show_progress=show_progress).fit()
        if summary.get("stop_reason") == "interrupted":  # Ctrl-C: stop here, the rerun resumes this row
            raise KeyboardInterrupt(f"row {name} stopped at iteration {summary['iteration']} of "
                                    f"{summary['total_iterations']}; the same command resumes it")
    if not finished or not scored:  # fresh training, or a finished row never scored
        r = evaluate_run(run_dir, data, "test", which="best", device=device, show_progress=show_progress)
        print(f"{prefix}{name}: test FID {r['fid']:.2f}, KID {r['kid']:.4f} ({r['checkpoint']}, iteration "
              f"{r['iteration']})", file=sys.stderr)


def _run_rows_in_processes(path: str | Path, data: str | Path, out: Path, scale: str, rows: list[dict[str, Any]],
                           device: str, jobs: int, show_progress: bool) -> None:
    """Run each unfinished row as ``unpaired experiment ... --only ROW --row-process`` in its own
    process, at most ``jobs`` at a time; raise :class:`JobsFailed` naming the rows that failed."""
    from tqdm.auto import tqdm

    from .jobs import Job, JobPool, JobsFailed, failure_report, package_command

    todo = []
    for i, row in enumerate(rows, 1):
        run_dir = out / row["name"]
        if all(_row_state(run_dir)):
            print(f"[{i}/{len(rows)}] {row['name']}: finished and scored, skipping", file=sys.stderr)
            continue
        cmd = package_command("experiment", str(path), "--data", str(data), "--out", str(out), "--scale", scale,
                              "--only", row["name"], "--device", device, "--quiet", "--row-process")
        todo.append(Job(row["name"], cmd, run_dir / "experiment.log"))
    if not todo:
        return
    pool = JobPool(min(jobs, len(todo)), device)
    print(f"running {len(todo)} row(s), {pool.jobs} at a time, {pool.threads} CPU thread(s) each"
          + (f", on GPUs {','.join(pool.gpus)}" if pool.gpus else "")
          + f"; logs in {out}/<row>/experiment.log", file=sys.stderr)
    bar = tqdm(total=len(rows), initial=len(rows) - len(todo), desc="rows", unit="row",
               disable=not show_progress, dynamic_ncols=True)

    def ended(job: Job) -> None:
        bar.update(1)
        tqdm.write(job.describe(), file=sys.stderr)

    try:
        with pool:
            done = pool.run(todo, on_end=ended)
    finally:
        bar.close()
    failed = [j for j in done if not j.ok]
    if pool.interrupted:
        raise KeyboardInterrupt(f"{len(done) - len(failed)} of {len(todo)} row(s) completed; the stopped "
                                f"ones saved a checkpoint, and the same command resumes them")
    if failed:
        raise JobsFailed(failure_report(failed, "rows", len(todo)))
