"""`unpaired experiment`: train, evaluate and tabulate every row of an experiment file.

An experiment file (see configs/thesis_table51.yaml) lists rows (a preset plus ``set`` overrides)
and scales (overrides applied to every row), and optionally ``seeds``. Each run trains into its run
folder, resuming an interrupted run and skipping a finished one, is scored on the test split with
its best-by-validation checkpoint, and the report (table, plots, gallery) goes to OUT/report.

Without seeds a row is one run, OUT/<row>, with the seed its configuration has (as before seeds
existed). With seeds (``--seeds 0 1 2`` or ``seeds: [0, 1, 2]`` in the file; the flag wins) a row is
one run per seed, OUT/<row>/seed<k>, whose configuration has ``train.seed = k`` (``k + seed_offset``
for a row with ``seed_offset``: the same method again with other seeds, an A/A check the report
compares with its twin). With ``jobs`` > 1 up
to that many runs go at once, each as ``unpaired experiment ... --only ROW [--seeds K] --row-process``
in its own process (:mod:`unpaired.jobs`), and the parent writes the same report.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from .. import checkpoint as ckpt_io
from ..config import Config, ConfigError, load_yaml
from ..devices import select_device
from ..files import make_dir, write_text
from ..inference.evaluation import evaluate_run
from ..methods import build_config
from ..runs import RunFolder
from ..training.trainer import Trainer
from .document import Bold
from .jobs import Job, JobPool, JobsFailed, failure_report, package_command
from .report import write_report


def check_seeds(seeds: Any, where: str) -> list[int] | None:
    """``seeds`` as a list of distinct integers (None stays None: one run per row, the config's seed)."""
    if seeds is None:
        return None
    if (
        not isinstance(seeds, (list, tuple))
        or not seeds
        or not all(isinstance(k, int) and not isinstance(k, bool) and 0 <= k < 2**32 for k in seeds)
    ):
        raise ConfigError(
            f"{where}: expected a non-empty list of integer seeds in [0, 2**32), e.g. [0, 1, 2], got {seeds!r}"
        )
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"{where}: seeds must be distinct, got {list(seeds)}")
    return list(seeds)


def load_experiment(path: str | Path) -> dict[str, Any]:
    spec = load_yaml(path)
    rows = spec.get("rows") if isinstance(spec, dict) else None
    if not rows or not all(isinstance(r, dict) and "name" in r and "model" in r for r in rows):
        raise ConfigError(f"{path}: expected 'rows:', a list of entries with 'name' and 'model'")
    names = [r["name"] for r in rows]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: row names must be unique, got {names}")
    for r in rows:
        offset = r.get("seed_offset", 0)
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            raise ConfigError(
                f"{path}: row {r['name']}: 'seed_offset' must be a non-negative integer (the row trains with "
                f"train.seed = seed + offset), got {offset!r}"
            )
        if not isinstance(r.get("set", {}) or {}, dict):
            raise ConfigError(
                f"{path}: row {r['name']}: 'set' must map settings to values "
                f"(e.g. set: {{model.ngf: 32}}), got {r['set']!r}"
            )
    scales = spec.get("scales", {})
    if not isinstance(scales, dict) or not all(
        isinstance(v, dict) and isinstance(v.get("set", {}) or {}, dict) for v in scales.values()
    ):
        raise ConfigError(f"{path}: 'scales' must map scale names to entries with 'set: {{setting: value}}'")
    check_seeds(spec.get("seeds"), f"{path}: seeds")
    return spec


def row_config(
    spec: dict[str, Any], row: dict[str, Any], scale: str, data: str | Path, device: str, seed: int | None = None
) -> Config:
    """A row's configuration; ``seed`` (one of the experiment's seeds, plus the row's ``seed_offset``)
    sets ``train.seed`` last."""
    scales = spec.get("scales", {})
    if scale not in scales:
        raise ConfigError(f"scale {scale!r} is not defined; the file defines: {', '.join(scales) or 'none'}")
    settings = [
        (f"scale {scale}", scales[scale].get("set") or {}),
        (f"row {row['name']}", row.get("set") or {}),
        ("experiment", {"data.root": str(data), "train.device": device}),
    ]
    if seed is not None:
        offset = row.get("seed_offset", 0)
        settings.append(
            (f"seed {seed}" + (f" + seed_offset {offset}" if offset else ""), {"train.seed": seed + offset})
        )
    return build_config(row["model"], settings=settings)


def run_dir_of(out: str | Path, row: str, seed: int | None) -> Path:
    """OUT/<row> without seeds, OUT/<row>/seed<k> with them."""
    return Path(out) / row if seed is None else Path(out) / row / f"seed{seed}"


def run_label(row: str, seed: int | None) -> str:
    """'cut-ce' or 'cut-ce seed 1' in progress lines and job names."""
    return row if seed is None else f"{row} seed {seed}"


def _check_layout(out: Path, rows: list[dict[str, Any]], seeds: list[int] | None) -> None:
    """Refuse to mix the two layouts in one OUT: a row folder that is a run (no seeds) cannot also
    hold seed<k> runs, and the other way round."""
    for row in rows:
        row_dir = out / row["name"]
        if seeds is not None and RunFolder(row_dir).is_run():
            raise ConfigError(
                f"{row_dir} holds a run without seeds (an experiment run without --seeds); with seeds each "
                f"row's runs go to {row_dir}/seed<k>/. Use another --out, or move that run's files into "
                f"{row_dir}/seed<k>/ for the seed in its config.yaml"
            )
        if seeds is None and any(RunFolder(p).is_run() for p in row_dir.glob("seed*")):
            raise ConfigError(
                f"{row_dir} holds runs of an experiment with seeds ({row_dir}/seed<k>/); give the same "
                f"--seeds (or the file's seeds:) again, or use another --out"
            )


def resume_point(run_dir: Path) -> int | None:
    """The iteration of the run folder's latest checkpoint (where its training resumes), None
    without one."""
    path = RunFolder(run_dir).latest
    if not path.is_file():
        return None
    return int(ckpt_io.load(path)["progress"]["iteration"])


def _row_state(run_dir: Path) -> tuple[bool, bool]:
    """(trained to the end, scored on the test split) for a row's run folder."""
    run = RunFolder(run_dir)
    finished = bool((run.read_summary() or {}).get("finished"))
    return finished, run.eval_scores("test").is_file()


@dataclass
class ExperimentPlan:
    """What one invocation of an experiment does: its file, rows (after --only), seeds and runs (one
    (row, seed) pair per run, rows in file order, each row's seeds in the given order) with their
    configurations, all checked before anything trains."""

    path: Path
    spec: dict[str, Any]
    rows: list[dict[str, Any]]
    seeds: list[int] | None
    runs: list[tuple[dict[str, Any], int | None]]
    configs: list[Config]
    data: str | Path
    out: Path
    scale: str
    device: str  # as given (auto, cpu, cuda, ...)
    resolved_device: str  # what auto became on this machine

    def run_dir(self, row: dict[str, Any], seed: int | None) -> Path:
        return run_dir_of(self.out, row["name"], seed)


def plan_experiment(
    path: str | Path,
    data: str | Path,
    out: str | Path,
    scale: str = "full",
    only: list[str] | None = None,
    device: str = "auto",
    seeds: list[int] | None = None,
) -> ExperimentPlan:
    """Read and check the experiment file, the rows chosen with ``only``, the seeds (``seeds``, else the
    file's) and every run's configuration; create OUT (an unwritable --out fails before anything trains)."""
    spec = load_experiment(path)
    rows = spec["rows"]
    if only:
        unknown = sorted(set(only) - {r["name"] for r in rows})
        if unknown:
            raise ConfigError(f"--only: no row named {', '.join(unknown)}; rows: {', '.join(r['name'] for r in rows)}")
        rows = [r for r in rows if r["name"] in only]
    seeds = check_seeds(seeds, "--seeds") if seeds is not None else check_seeds(spec.get("seeds"), f"{path}: seeds")
    out = Path(out)
    _check_layout(out, rows, seeds)
    dev = str(select_device(device))
    runs = [(row, seed) for row in rows for seed in (seeds if seeds is not None else [None])]
    configs = [row_config(spec, row, scale, data, device, seed) for row, seed in runs]  # all, before any trains
    make_dir(out, "experiment folder")
    return ExperimentPlan(Path(path), spec, rows, seeds, runs, configs, data, out, scale, device, dev)


def run_experiment(
    path: str | Path,
    data: str | Path,
    out: str | Path,
    scale: str = "full",
    only: list[str] | None = None,
    device: str = "auto",
    show_progress: bool = True,
    jobs: int = 1,
    report: bool = True,
    seeds: list[int] | None = None,
) -> dict[str, Path]:
    """Train and score every row (or the ``only`` ones), then write OUT/report.

    ``seeds`` (default: the file's ``seeds:``, else none): one run per row and seed in
    OUT/<row>/seed<k> with ``train.seed = k``; without seeds one run per row in OUT/<row>.
    ``jobs`` > 1 runs up to that many runs at once, each in its own process (see
    :mod:`unpaired.jobs`) logging to <run folder>/experiment.log; ``report=False`` skips the report
    (a row process of such a run). The report gets {row name: [its run folders]}."""
    if jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {jobs}")
    plan = plan_experiment(path, data, out, scale, only, device, seeds)
    runs, out = plan.runs, plan.out
    if jobs > 1:
        _run_rows_in_processes(path, data, out, scale, runs, device, jobs, show_progress, plan.seeds is not None)
    else:
        for i, ((row, seed), cfg) in enumerate(zip(runs, plan.configs), 1):
            run_row(
                run_label(row["name"], seed),
                cfg,
                plan.run_dir(row, seed),
                data,
                plan.resolved_device,
                f"[{i}/{len(runs)}] ",
                show_progress,
            )
    if not report:
        return {}
    return write_experiment_report(*report_inputs(plan), out / "report")


def report_inputs(plan: ExperimentPlan) -> tuple[dict[str, list[Path]], list[Any], dict[str, Any]]:
    """The report's rows ({row name: [its run folders]}), its heading and the published figures."""
    spec, seeds, scale = plan.spec, plan.seeds, plan.scale
    thesis = {r["name"]: r["thesis"] for r in spec["rows"] if "thesis" in r}
    overrides = spec["scales"][scale].get("set") or {}
    note = [
        "Experiment ",
        Bold(str(spec.get("name", plan.path.stem))),
        ", scale ",
        Bold(scale),
        f" ({', '.join(f'{k} = {v}' for k, v in overrides.items()) or 'no overrides'}), data {plan.data}"
        + (f", seeds {', '.join(map(str, seeds))} (one run per row and seed)." if seeds is not None else "."),
    ]
    groups = {
        row["name"]: [plan.run_dir(row, seed) for seed in (seeds if seeds is not None else [None])] for row in plan.rows
    }
    return groups, note, thesis


REPORT_INPUTS = "experiment.json"  # in OUT: what `unpaired report OUT` needs to write OUT/report again


def save_report_inputs(plan: ExperimentPlan) -> Path:
    """Write OUT/experiment.json (the report's rows as folders relative to OUT, heading, figures), so
    that ``unpaired report OUT`` can write OUT/report by hand on any machine that sees OUT."""
    groups, note, reference = report_inputs(plan)
    record = {
        "experiment": str(plan.path),
        "groups": {row: [str(d.relative_to(plan.out)) for d in dirs] for row, dirs in groups.items()},
        "note": [{"bold": n.text} if isinstance(n, Bold) else n for n in note],
        "reference": reference,
    }
    write_text(plan.out / REPORT_INPUTS, json.dumps(record, indent=2) + "\n")
    return plan.out / REPORT_INPUTS


def load_report_inputs(out: str | Path) -> tuple[dict[str, list[Path]], list[Any], dict[str, Any]] | None:
    """The report inputs an experiment left in OUT/experiment.json (None without that file)."""
    path = Path(out) / REPORT_INPUTS
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        groups = {row: [Path(out) / d for d in dirs] for row, dirs in record["groups"].items()}
        note = [Bold(n["bold"]) if isinstance(n, dict) else n for n in record["note"]]
        return groups, note, record.get("reference") or {}
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{path} is damaged ({e}); run the experiment command again to rewrite it") from None


def write_experiment_report(
    groups: dict[str, list[Path]], note: list[Any], reference: dict[str, Any], out: Path, **options: Any
) -> dict[str, Path]:
    """OUT/report of an experiment (``options``: write_report's gallery_limit, worst, compare)."""
    return write_report(groups, out, note=note, reference=reference, **options)


def run_row(
    name: str, cfg: Config, run_dir: Path, data: str | Path, device: str, prefix: str, show_progress: bool
) -> None:
    """Train one run, a row or one seed of a row (resuming; skipped when finished), and score it
    on the test split. ``name``: its label in progress lines ('cut-ce' or 'cut-ce seed 1')."""
    finished, scored = _row_state(run_dir)
    print(
        f"{prefix}{name}: "
        + (
            "finished, skipping training"
            if finished
            else "resuming"
            if RunFolder(run_dir).latest.is_file()
            else "training"
        ),
        file=sys.stderr,
    )
    if not finished:
        summary = Trainer(cfg, run_dir, show_progress=show_progress).fit()
        if summary.get("stop_reason") == "interrupted":  # Ctrl-C: stop here, the rerun resumes this run
            raise KeyboardInterrupt(
                f"{name} stopped at iteration {summary['iteration']} of "
                f"{summary['total_iterations']}; the same command resumes it"
            )
    if not finished or not scored:  # fresh training, or a finished row never scored
        r = evaluate_run(run_dir, data, "test", which="best", device=device, show_progress=show_progress)
        print(
            f"{prefix}{name}: test FID {r['fid']:.2f}, KID {r['kid']:.4f} ({r['checkpoint']}, iteration "
            f"{r['iteration']})",
            file=sys.stderr,
        )


def _run_rows_in_processes(
    path: str | Path,
    data: str | Path,
    out: Path,
    scale: str,
    runs: list[tuple[dict[str, Any], int | None]],
    device: str,
    jobs: int,
    show_progress: bool,
    with_seeds: bool,
) -> None:
    """Run each unfinished (row, seed) as ``unpaired experiment ... --only ROW [--seeds K]
    --row-process`` in its own process, at most ``jobs`` at a time; raise :class:`JobsFailed`
    naming the runs that failed."""
    what = "runs" if with_seeds else "rows"
    todo = []
    for i, (row, seed) in enumerate(runs, 1):
        run_dir, label = run_dir_of(out, row["name"], seed), run_label(row["name"], seed)
        if all(_row_state(run_dir)):
            print(f"[{i}/{len(runs)}] {label}: finished and scored, skipping", file=sys.stderr)
            continue
        cmd = package_command(
            "experiment",
            str(path),
            "--data",
            str(data),
            "--out",
            str(out),
            "--scale",
            scale,
            "--only",
            row["name"],
            *(["--seeds", str(seed)] if seed is not None else []),
            "--device",
            device,
            "--quiet",
            "--row-process",
        )
        todo.append(Job(label, cmd, run_dir / "experiment.log"))
    if not todo:
        return
    pool = JobPool(min(jobs, len(todo)), device)
    print(
        f"running {len(todo)} {what[:-1]}(s), {pool.jobs} at a time, {pool.threads} CPU thread(s) each"
        + (f", on GPUs {','.join(pool.gpus)}" if pool.gpus else "")
        + f"; logs in {out}/<row>{'/seed<k>' if with_seeds else ''}/experiment.log",
        file=sys.stderr,
    )
    bar = tqdm(
        total=len(runs),
        initial=len(runs) - len(todo),
        desc=what,
        unit=what[:-1],
        disable=not show_progress,
        dynamic_ncols=True,
    )

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
        raise KeyboardInterrupt(
            f"{len(done) - len(failed)} of {len(todo)} {what[:-1]}(s) completed; the stopped "
            f"ones saved a checkpoint, and the same command resumes them"
        )
    if failed:
        raise JobsFailed(failure_report(failed, what, len(todo)))
