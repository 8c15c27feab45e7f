"""`unpaired experiment`: train, evaluate and tabulate every row of an experiment file.

An experiment file (see configs/thesis_table51.yaml) lists rows (a preset plus ``set`` overrides)
and scales (overrides applied to every row). Each row trains into OUT/<row>, resuming an
interrupted run and skipping a finished one, is scored on the test split with its best-by-validation
checkpoint, and the report (table, plots, gallery) goes to OUT/report.
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


def run_experiment(path: str | Path, data: str | Path, out: str | Path, scale: str = "full",
                   only: list[str] | None = None, device: str = "auto", show_progress: bool = True) -> dict[str, Path]:
    from .evaluate import evaluate_run
    from .report import write_report
    from .train import Trainer, select_device

    spec = load_experiment(path)
    rows = spec["rows"]
    if only:
        unknown = sorted(set(only) - {r["name"] for r in rows})
        if unknown:
            raise ConfigError(f"--only: no row named {', '.join(unknown)}; rows: {', '.join(r['name'] for r in rows)}")
        rows = [r for r in rows if r["name"] in only]
    out = Path(out)
    dev = str(select_device(device))
    run_dirs = []
    for i, row in enumerate(rows, 1):
        cfg = row_config(spec, row, scale, data, device)
        run_dir = out / row["name"]
        run_dirs.append(run_dir)
        summary_path, test_path = run_dir / "summary.json", run_dir / "eval" / "test.json"
        finished = summary_path.is_file() and json.loads(summary_path.read_text()).get("finished")
        print(f"[{i}/{len(rows)}] {row['name']}: " + ("finished, skipping training" if finished else
              "resuming" if (run_dir / "checkpoints" / "latest.pt").is_file() else "training"), file=sys.stderr)
        if not finished:
            Trainer(cfg, run_dir, show_progress=show_progress).fit()
        if not finished or not test_path.is_file():  # fresh training, or a finished row never scored
            evaluate_run(run_dir, data, "test", which="best", device=dev, show_progress=show_progress)
    thesis = {r["name"]: r["thesis"] for r in spec["rows"] if "thesis" in r}
    note = (f"Experiment {spec.get('name', Path(path).stem)}, scale **{scale}** "
            f"({yaml.safe_dump(spec['scales'][scale].get('set', {}), default_flow_style=True).strip()}), data {data}.")
    return write_report(run_dirs, out / "report", note=note, reference=thesis)
