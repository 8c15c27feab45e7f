"""``unpaired experiment``, ``sweep``, ``report`` and ``demo``: many runs, and tables of them."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..config import VAL_METRICS, ConfigError
from ..experiments.demo import run_demo
from ..experiments.experiment import load_report_inputs, run_experiment, write_experiment_report
from ..experiments.report import write_report
from ..experiments.shared import run_shared_experiment
from ..experiments.storage import STORAGE_ENV, storage_url
from ..experiments.sweep import SAMPLERS, parse_params, run_sweep
from . import options


def cmd_report(args: argparse.Namespace) -> int:
    experiment = load_report_inputs(args.run_dirs[0]) if len(args.run_dirs) == 1 else None
    if args.out is None and experiment is None:
        raise ConfigError(
            "report: give --out DIR for the report of these run folders (only an experiment's OUT, which "
            "holds experiment.json, needs none: its report goes to OUT/report)"
        )
    options = {"gallery_limit": args.gallery_limit, "worst": args.worst, "compare": not args.no_compare}
    try:
        if experiment is not None:  # `unpaired report OUT` of an experiment: the report its command writes
            files = write_experiment_report(*experiment, Path(args.out or Path(args.run_dirs[0]) / "report"), **options)
        else:
            files = write_report(args.run_dirs, args.out, **options)
    except FileNotFoundError as e:
        raise ConfigError(str(e)) from None
    print(Path(files["markdown"]).read_text(), end="")
    print("wrote " + ", ".join(str(p) for p in files.values()))
    return 0


def cmd_experiment(args: argparse.Namespace) -> int:
    url = None if args.row_process else storage_url(args.storage)  # a --jobs row process: never shared
    if url:
        if args.jobs != 1:
            raise ConfigError(
                "--jobs with --storage (or UNPAIRED_STORAGE): start the same command once per process you "
                "want instead (on this machine or others); each takes runs from the shared study"
            )
        files = run_shared_experiment(
            args.config,
            args.data,
            args.out,
            url,
            args.scale,
            args.only,
            args.device,
            show_progress=not args.quiet,
            seeds=args.seeds,
            heartbeat=args.heartbeat,
            grace=args.grace,
            retries=args.retries,
        )
        if files is None:  # another process writes the report
            return 0
        print(Path(files["markdown"]).read_text(), end="")
        print("wrote " + ", ".join(str(p) for p in files.values()))
        return 0
    files = run_experiment(
        args.config,
        args.data,
        args.out,
        args.scale,
        args.only,
        args.device,
        show_progress=not args.quiet,
        jobs=args.jobs,
        report=not args.row_process,
        seeds=args.seeds,
    )
    if args.row_process:
        return 0
    print(Path(files["markdown"]).read_text(), end="")
    print("wrote " + ", ".join(str(p) for p in files.values()))
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    space = json.loads(args.space) if args.space else parse_params(args.param or [])
    result = run_sweep(
        args.model,
        args.data,
        args.out,
        space,
        args.sampler,
        args.trials,
        args.storage,
        args.study_name,
        args.set,
        args.metric,
        args.heartbeat,
        args.seed,
        show_progress=not args.quiet,
        jobs=args.jobs,
        worker=args.worker,
        seeds=args.seeds,
        grace=args.grace,
        retries=args.retries,
    )
    if result is not None:
        print(f"wrote {Path(args.out) / 'sweep.md'}, sweep.csv, sweep.json")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    return run_demo(args.out, iters=args.iters, device=args.device, quiet=args.quiet)


def add_storage_options(p: argparse.ArgumentParser, what: str) -> None:
    """--storage, --heartbeat, --grace and --retries of a sweep or a shared experiment."""
    if what == "sweep":
        default = "default: the environment variable UNPAIRED_STORAGE, else sqlite:///OUT/sweep.db"
        unit = "trial"
    else:
        default = (
            "default: the environment variable UNPAIRED_STORAGE, else none: this process trains every run. "
            "With a URL, any number of processes, on machines that see OUT and the database, run the same "
            "command and take the runs one at a time; each run trains once, and exactly one process "
            "writes OUT/report when all are finished"
        )
        unit = "run"
    p.add_argument(
        "--storage",
        metavar="URL",
        help=f"Optuna storage shared by the processes ({default}); e.g. postgresql://user:pw@host/db. Its "
        f"password is masked in every file and log; give the URL in {STORAGE_ENV} to keep it off command lines",
    )
    p.add_argument(
        "--heartbeat",
        type=int,
        default=60,
        metavar="SECONDS",
        help=f"each process records a heartbeat for its {unit} every SECONDS (default 60)",
    )
    p.add_argument(
        "--grace",
        type=int,
        metavar="SECONDS",
        help=f"a {unit} whose heartbeat has been silent this long (its process was killed, its machine lost) "
        f"is failed by the next process that looks and given to another, which resumes its run's last "
        f"checkpoint (default twice --heartbeat). Every process must use the same value",
    )
    p.add_argument(
        "--retries",
        type=int,
        default=3,
        metavar="N",
        help=f"how often a {unit} whose process died is given to another process (default 3)",
    )


def add_parser(sub: argparse._SubParsersAction) -> None:
    rp = sub.add_parser(
        "report",
        help="table (Markdown, CSV), curves and an HTML gallery of runs",
        description="Thesis-style table (method, test FID/KID with intervals, paired metrics, "
        "sec/iter, memory, best epoch, collapse), paired comparisons of rows that differ "
        "only in loss settings, loss / validation-FID / PatchNCE-positive plots, and a "
        "self-contained HTML gallery of test triptychs and the worst translations. "
        "Folders named seed<k> under one parent form one row (mean ± std over seeds).",
    )
    rp.add_argument(
        "run_dirs",
        nargs="+",
        metavar="RUN_DIR",
        help="run folders; or one experiment's OUT (it holds experiment.json when the experiment ran with "
        "--storage): its report, as the experiment command writes it, goes to OUT/report",
    )
    rp.add_argument("--out", metavar="DIR", help="report folder (required unless RUN_DIR is an experiment's OUT)")
    rp.add_argument("--gallery-limit", type=int, default=24, help="triptychs per run in the gallery (default 24)")
    rp.add_argument(
        "--worst",
        type=int,
        default=8,
        metavar="N",
        help="worst test translations shown per row, ranked by paired L1 or feature distance (default 8)",
    )
    rp.add_argument(
        "--no-compare",
        action="store_true",
        help="skip the paired comparisons of rows (they need each run's eval/test_features.npy)",
    )
    rp.set_defaults(func=cmd_report)

    ex = sub.add_parser(
        "experiment",
        help="train, evaluate and tabulate every row of an experiment file",
        description="Train every row of CONFIG (resuming interrupted rows, skipping finished ones), "
        "score each on the test split with its best-by-validation checkpoint, and write "
        "OUT/report (table, plots, gallery). One seed cannot carry a comparison: use "
        "--seeds (or seeds: in the file) for one run per row and seed. See "
        "configs/thesis_table51.yaml.",
    )
    ex.add_argument("config", metavar="CONFIG", help="experiment YAML with rows:, scales: and optionally seeds:")
    ex.add_argument(
        "--data", required=True, metavar="DIR", help="dataset with train/val/test splits (unpaired data split)"
    )
    ex.add_argument("--out", required=True, metavar="DIR", help="one run folder per row, and report/")
    ex.add_argument("--scale", default="full", help="a scale defined in CONFIG (thesis_table51: full, small)")
    ex.add_argument("--only", nargs="+", metavar="ROW", help="run only these rows")
    ex.add_argument(
        "--seeds",
        nargs="+",
        type=int,
        metavar="K",
        help="train every row once per seed (train.seed = K) into OUT/<row>/seed<K>/ (default: the "
        "file's seeds:, else one run per row in OUT/<row>/ with the configured seed); "
        "finished runs are skipped, so adding a seed later trains only the new runs",
    )
    options.add_device(ex)
    ex.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="run up to N rows (with --seeds: row x seed runs) at once, one process per run logging "
        "to its run folder's experiment.log (default 1: one after the other in this process); with "
        "--device cuda/auto and several GPUs the runs are spread over them, and each process gets "
        "CPUs/N threads",
    )
    add_storage_options(ex, "experiment")
    options.add_quiet(ex, help="no progress bars")
    ex.add_argument("--row-process", action="store_true", help=argparse.SUPPRESS)  # one row of a --jobs run: no report
    ex.set_defaults(func=cmd_experiment)

    sw = sub.add_parser(
        "sweep",
        help="hyperparameter search on the validation split (Optuna)",
        description="Minimise validation FID (or KID) over a grid or with TPE, pruning trials whose "
        "intermediate validation trails the median. Resumable: run the same command again "
        "(or on several machines with a shared --storage URL). The best trial is scored "
        "on the test split; OUT/sweep.md, .csv and .json list every trial.",
    )
    options.add_model(sw, required=True)
    sw.add_argument("--data", required=True, metavar="DIR", help="dataset with train/val/test splits")
    sw.add_argument(
        "--out", default="runs/sweep", metavar="DIR", help="trial run folders and tables (default runs/sweep)"
    )
    sw.add_argument(
        "--param",
        action="append",
        metavar="KEY=V1,V2,...",
        help="a searched setting and its values, e.g. --param focal_gamma=0,1,2,3 (repeatable; at least one)",
    )
    sw.add_argument("--sampler", choices=SAMPLERS, default="grid")
    sw.add_argument("--trials", type=int, help="finished trials to reach (default: the grid size; 10 for tpe)")
    sw.add_argument("--study-name", help="default: MODEL-PARAMS")
    sw.add_argument("--metric", choices=VAL_METRICS, default="fid")
    add_storage_options(sw, "sweep")
    sw.add_argument("--seed", type=int, default=0, help="sampler seed")
    sw.add_argument(
        "--seeds",
        nargs="+",
        type=int,
        metavar="K",
        help="training seeds: every trial trains once per seed (train.seed = K) into "
        "OUT/trials/<params>/seed<K>/; its value is the mean over seeds of the best validation "
        "score, the pruner sees the first seed's validation scores, and the best trial's test score "
        "is the mean over its seeds (default: one run per trial, the configured train.seed)",
    )
    options.add_set(sw, help="fixed overrides for every trial")
    sw.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="run N trials at once: this process and N-1 worker processes on the same study, logging "
        "to OUT/workers/ (default 1); with train.device cuda/auto and several GPUs the workers are "
        "spread over them, and each process gets CPUs/N threads",
    )
    options.add_quiet(sw, help="no progress bars")
    # a worker process of a --jobs run: the search space as JSON, and its index (it only runs trials)
    sw.add_argument("--space", help=argparse.SUPPRESS)
    sw.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)
    sw.set_defaults(func=cmd_sweep)

    d = sub.add_parser(
        "demo",
        help="train FastCUT briefly on built-in images and translate a test set",
        description="A few-minute CPU demo on images shipped with scikit-image "
        "(pip install 'unpaired[demo]'): colour photos -> stone/grass textures.",
    )
    d.add_argument("--out", default="runs/demo", help="demo folder (default runs/demo)")
    d.add_argument("--iters", type=int, default=600, help="training iterations (default 600, ~4 min on 2 CPU cores)")
    options.add_device(d)
    options.add_quiet(d)
    d.set_defaults(func=cmd_demo)
