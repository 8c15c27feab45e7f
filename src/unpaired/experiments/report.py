"""Reports over run folders: the thesis-style table with uncertainty (Markdown, CSV), comparisons
with a verdict, curves (PNG), and a self-contained HTML page with the same tables and the
translations, best and worst.

Runs are grouped into rows (a method's configuration): an experiment passes {row: [run folders of
its seeds]}; on the command line, folders named ``seed<k>`` are grouped under their parent's name.
A row with several seeds is reported as mean ± std over seeds with a 95% Student-t interval of the
mean; a row with one run as its value with a 95% bootstrap interval over the test images. Two rows
whose configurations differ only in the PatchNCE loss (or in at most two model options, or in
nothing: an A/A check) are compared on every metric the runs have (FID, KID and, where the split
keeps pairs, L1, PSNR, SSIM, pixel accuracy) with intervals over seeds and test images
(:mod:`unpaired.metrics.uncertainty`).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import sys
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import yaml
from PIL import Image

from ..config import own_model_options
from ..data.images import list_images, load_image
from ..errors import UnpairedError
from ..evaluate import run_features
from ..files import atomic_path, make_dir, write_text
from ..methods import METHODS
from ..metrics.uncertainty import HIGHER_IS_BETTER, paired_difference, paired_metric_difference, seeds_summary
from ..runs import RunFolder
from .document import (
    Bold,
    Code,
    Document,
    Figure,
    Grid,
    Heading,
    Paragraph,
    Table,
    Text,
)


class ReportError(UnpairedError, ValueError):
    """A run folder the report cannot read; the message names the file and what to do."""


RunDirs = Sequence[str | Path] | Mapping[str, Sequence[str | Path]]


def method_name(cfg: dict[str, Any]) -> str:
    """'CUT - CE', 'FastCUT - Focal (gamma 2, alpha 0.25)', ... as in the thesis's table."""
    m = cfg["model"]
    method = METHODS.get(m["name"])
    if method is None:  # a run of a method registered in another program
        return m["name"]
    # configs saved before the per-method options held every method's fields
    return method.label(own_model_options(m["name"], m))


def load_run(run_dir: str | Path, row: str | None = None) -> dict[str, Any]:
    """A run folder's config, summary, test scores and logs. ``row``: the experiment row (group) the
    run belongs to, default the folder's name; ``name`` is the row, or ``row/folder`` when the folder
    is named otherwise (OUT/cut-ce/seed1 -> 'cut-ce/seed1'); ``seed`` is its ``train.seed``."""
    run = RunFolder(run_dir)
    run_dir = run.path
    if not run.is_run():
        raise FileNotFoundError(
            f"{run_dir} is not a run folder (no config.yaml); pass folders written by 'unpaired train'"
        )
    try:
        cfg = run.read_config()
        summary = run.read_summary() or {}
        test = run.read_eval("test")
        log = run.read_metrics()
    except (ValueError, yaml.YAMLError) as e:  # JSONDecodeError is a ValueError
        raise ReportError(
            f"{run_dir}: a damaged file ({type(e).__name__}: {e}); restore it, or score the run "
            f"again with 'unpaired evaluate run' (summary.json is rewritten by resuming training)"
        ) from None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("train"), dict) or not isinstance(cfg.get("model"), dict):
        raise ReportError(f"{run_dir}/config.yaml is not a run configuration; pass folders written by 'unpaired train'")
    total_epochs = cfg["train"]["epochs"] + cfg["train"]["epochs_decay"]
    per_epoch = (summary.get("total_iterations") or 0) / total_epochs if total_epochs else 0
    row = row or run_dir.name
    return {
        "dir": run_dir,
        "name": row if run_dir.name == row else f"{row}/{run_dir.name}",
        "row": row,
        "seed": cfg["train"].get("seed"),
        "method": method_name(cfg),
        "config": cfg,
        "summary": summary,
        "test": test,
        "losses": [r for r in log if "loss" in r],
        "val": [r for r in log if "val" in r],
        "iters_per_epoch": per_epoch,
    }


def group_runs(run_dirs: RunDirs) -> list[tuple[str, list[Path]]]:
    """``write_report``'s input as (row name, [run folders]) pairs in order: a mapping (an
    experiment's rows, each with the run folders of its seeds) gives its items; in a plain list,
    folders named ``seed<k>`` with the same parent form one row named after the parent, any other
    folder is a row of its own."""
    if isinstance(run_dirs, Mapping):
        return [(str(row), [Path(d) for d in dirs]) for row, dirs in run_dirs.items()]
    groups: dict[str, list[Path]] = {}
    for d in map(Path, run_dirs):
        key = str(d.parent.resolve()) if re.fullmatch(r"seed\d+", d.name) else str(d.resolve())
        groups.setdefault(key, []).append(d)
    return [
        (dirs[0].parent.name if re.fullmatch(r"seed\d+", dirs[0].name) else dirs[0].name, dirs)
        for dirs in groups.values()
    ]


# ------------------------------------------------------------------------------------ numbers
def _num(v: float | None, digits: int = 2) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def _epoch(v: float | None) -> str:
    """Epochs as a person writes them: 8, not 8.00; 7.5 when validation ran mid-epoch."""
    if v is None:
        return "-"
    return str(int(round(v))) if abs(v - round(v)) < 0.05 else f"{v:.1f}"


def _ci(ci: Any, digits: int) -> str:
    if not ci:
        return "-"
    low, high = (ci["low"], ci["high"]) if isinstance(ci, dict) else ci
    return f"[{low:.{digits}f}, {high:.{digits}f}]"


def _best(run: dict[str, Any]) -> dict[str, Any]:
    return ((run["summary"].get("validation") or {}).get("best")) or {}


def _collapsed(run: dict[str, Any]) -> str:
    """Its restarts (--on-collapse restart), then when validation found the run collapsed, else
    whether its test translations look collapsed."""
    restarts = "; ".join(
        f"restarted: collapsed at iteration {r['collapsed_at']}, back to {r['resumed_from']}"
        for r in run["summary"].get("restarts") or []
    )
    c = run["summary"].get("collapse") or {}
    test = (run["test"] or {}).get("collapse") or {}
    if c.get("collapsed_at") is not None:
        state = f"at iteration {c['collapsed_at']}"
    elif test.get("collapsed"):
        state = f"at test (iteration {run['test'].get('iteration')})"
    else:
        state = "no" if c or "collapsed" in test else "-"
    if not restarts:
        return state
    return f"{restarts}; then {state}" if state.startswith("at") else restarts


def run_row(r: dict[str, Any]) -> dict[str, Any]:
    """One run's figures (the CSV has one line per run)."""
    s, t = r["summary"], r["test"] or {}
    best, mem = _best(r), s.get("peak_memory_bytes")
    paired = t.get("paired") or {}
    return {
        "row": r["row"],
        "run": r["name"],
        "seed": r["seed"],
        "method": r["method"],
        "FID": t.get("fid"),
        "FID_ci_low": (t.get("fid_ci") or {}).get("low"),
        "FID_ci_high": (t.get("fid_ci") or {}).get("high"),
        "KID": t.get("kid"),
        "KID_std": t.get("kid_std"),
        "KID_ci_low": (t.get("kid_ci") or {}).get("low"),
        "KID_ci_high": (t.get("kid_ci") or {}).get("high"),
        "L1": paired.get("l1"),
        "PSNR": paired.get("psnr"),
        "SSIM": paired.get("ssim"),
        "pixel_acc": paired.get("pixel_acc"),
        "val_FID_best": best.get("fid"),
        # epochs as a fraction (validation may run mid-epoch): best iteration / iterations per epoch
        "best_epoch": best["iteration"] / r["iters_per_epoch"] if best and r["iters_per_epoch"] else None,
        "best_iter": best.get("iteration"),
        "collapsed_at": (s.get("collapse") or {}).get("collapsed_at"),
        "sec_per_iter": s.get("sec_per_iter"),
        "memory_GiB": mem / 2**30 if mem else None,
        "device": s.get("device"),
        "iterations": s.get("iteration"),
        "test_checkpoint": t.get("checkpoint"),
        "n_test": t.get("n_fake"),
    }


def table_rows(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [run_row(r) for r in runs]


def summarize_row(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """A row's test FID/KID over its seeds (mean, std, interval) or its one run's (value, interval)."""
    scored = [r for r in runs if r["test"]]
    out: dict[str, Any] = {"n_seeds": len(scored)}
    for key in ("fid", "kid"):
        values = [r["test"][key] for r in scored if r["test"].get(key) is not None]
        if len(values) >= 2:
            out[key] = seeds_summary(values)
        elif values:
            t = scored[0]["test"]
            out[key] = {
                "n": 1,
                "mean": values[0],
                "std": t.get("kid_std") if key == "kid" else None,
                "ci": t.get(f"{key}_ci"),
            }
    return out


def _value(stat: dict[str, Any] | None, digits: int) -> str:
    if not stat:
        return "-"
    if stat["n"] >= 2:
        return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"
    return f"{stat['mean']:.{digits}f}" + (f" ± {stat['std']:.{digits}f}" if stat.get("std") is not None else "")


def _row_ci(stat: dict[str, Any] | None, digits: int, multi: bool) -> str:
    """A row's interval: over seeds (Student-t) with 2 or more, "too few seeds" with one in a report
    with seeds, the test-image bootstrap interval of a single run otherwise."""
    if stat and multi and stat["n"] < 2:
        return "too few seeds"
    return _ci((stat or {}).get("ci"), digits)


def _mean(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [v for v in (run_row(r)[key] for r in runs) if v is not None]
    return float(np.mean(values)) if values else None


# ------------------------------------------------------------------------------------ comparisons
def comparable_pairs(
    rows: list[tuple[str, list[dict[str, Any]]]], max_keys: int = 2
) -> list[tuple[int, int, list[str]]]:
    """Pairs of rows (a, b) of one method family whose configurations differ only in at most
    ``max_keys`` model options (CE vs focal PatchNCE differs in focal_gamma and focal_alpha), with
    the differing keys; the runtime settings (seed, device, ...) do not count. Two rows with the
    same configuration (an A/A check: one method twice, other seeds) are a pair with no keys."""

    def signature(runs):
        cfg = runs[0]["config"]
        flat = {f"{s}.{k}": v for s, section in cfg.items() for k, v in section.items()}
        for k in (
            "train.seed",
            "train.device",
            "train.iters",
            "train.compile",
            "data.num_workers",
            "data.root",
            "train.log_every",
            "train.sample_every",
            "train.save_every",
            "model.name",
        ):
            flat.pop(k, None)
        return flat

    out = []
    for i in range(len(rows)):
        for j in range(i + 1, len(rows)):
            a, b = signature(rows[i][1]), signature(rows[j][1])
            if rows[i][1][0]["method"].split(" - ")[0] != rows[j][1][0]["method"].split(" - ")[0]:
                continue
            keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
            if len(keys) <= max_keys and all(k.startswith("model.") for k in keys):
                out.append((i, j, keys))
    return out


PAIRED_METRICS = ("l1", "psnr", "ssim", "pixel_acc")
METRIC_LABELS = {"fid": "FID", "kid": "KID", "l1": "L1", "psnr": "PSNR", "ssim": "SSIM", "pixel_acc": "pixel acc."}
METRIC_DIGITS = {"fid": 2, "kid": 4, "l1": 4, "psnr": 2, "ssim": 4, "pixel_acc": 4}


def _seed_pairs(runs_a: list[dict[str, Any]], runs_b: list[dict[str, Any]]) -> tuple[list[tuple], str | None]:
    """(seed label, run of A, run of B): by equal seeds, or, when the rows share no seed (an A/A row
    trained with other seeds), by position in seed order."""
    by_seed_a = {r["seed"]: r for r in runs_a if r["test"]}
    by_seed_b = {r["seed"]: r for r in runs_b if r["test"]}
    common = sorted(set(by_seed_a) & set(by_seed_b), key=str)
    if common:
        return [(s, by_seed_a[s], by_seed_b[s]) for s in common], None
    sa, sb = sorted(by_seed_a, key=str), sorted(by_seed_b, key=str)
    pairs = [(f"{x}/{y}", by_seed_a[x], by_seed_b[y]) for x, y in zip(sa, sb)]
    return pairs, ("no seed in common: runs paired in seed order (A seed/B seed)" if pairs else None)


def compare_rows(runs_a: list[dict[str, Any]], runs_b: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Paired differences B - A over the seeds both rows have (in seed order when they share none):
    test FID and KID from the saved features, and L1, PSNR, SSIM and pixel accuracy from the
    per-image values where the split keeps pairs (images paired by input name), each with its
    two-level interval and verdict (:mod:`unpaired.metrics.uncertainty`). None when there is
    nothing to compare."""
    pairs, note = _seed_pairs(runs_a, runs_b)
    if not pairs:
        return None
    result: dict[str, Any] = {"seeds": [p[0] for p in pairs]}
    if note:
        result["note"] = note
    try:
        feats = [(run_features(ra["dir"]), run_features(rb["dir"])) for _, ra, rb in pairs]
    except (FileNotFoundError, KeyError) as e:
        print(
            f"report: no FID/KID comparison of {runs_a[0]['row']} and {runs_b[0]['row']}: {e} "
            f"(score the runs again with 'unpaired evaluate run')",
            file=sys.stderr,
        )
        feats = None
    if feats:
        real = feats[0][0][0]
        for metric in ("fid", "kid"):
            result[metric] = paired_difference([f[0][1] for f in feats], [f[1][1] for f in feats], real, metric=metric)
            result[metric]["seeds"] = result["seeds"]

    def per_image(run: dict[str, Any], metric: str) -> dict[str, float] | None:
        values = ((run["test"] or {}).get("paired") or {}).get("per_image") or {}
        out = {name: v[metric] for name, v in values.items() if v.get(metric) is not None}
        return out or None

    for metric in PAIRED_METRICS:
        a = [per_image(ra, metric) for _, ra, _ in pairs]
        b = [per_image(rb, metric) for _, _, rb in pairs]
        if all(a) and all(b):
            try:
                result[metric] = paired_metric_difference(a, b, metric=metric)
            except ValueError as e:  # fewer than 2 images in common
                print(
                    f"report: no {metric} comparison of {runs_a[0]['row']} and {runs_b[0]['row']}: {e}", file=sys.stderr
                )
                continue
            result[metric]["seeds"] = result["seeds"]
    return result if any(m in result for m in METRIC_LABELS) else None


# ------------------------------------------------------------------------------------ plots
def row_curves(runs: list[dict[str, Any]], value: Callable[[dict[str, Any]], list[tuple[float, float]]]) -> list[dict]:
    """One curve per row: ``value(run)`` gives a run's (x, y) points; a row of several seeds gets
    the mean over the seeds that have a point at each x, with their min and max (the band the plots
    shade). Each curve: label, x, mean, lo, hi, seeds (how many runs it averages)."""
    by_row: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        by_row.setdefault(r["row"], []).append(r)
    curves = []
    for row, members in by_row.items():
        points: dict[float, list[float]] = {}
        for r in members:
            for x, y in value(r):
                points.setdefault(x, []).append(y)
        if not points:
            continue
        xs = sorted(points)
        single = len(members) == 1
        curves.append(
            {
                "label": f"{members[0]['method']} ({members[0]['name'] if single else row})",
                "x": xs,
                "mean": [float(np.mean(points[x])) for x in xs],
                "lo": [float(np.min(points[x])) for x in xs],
                "hi": [float(np.max(points[x])) for x in xs],
                "seeds": len(members),
            }
        )
    return curves


def _draw(ax, curves: list[dict], **style) -> None:
    """Mean lines; a shaded min-max band where a curve averages several seeds."""
    for c in curves:
        (line,) = ax.plot(
            c["x"], c["mean"], label=c["label"] + (f", mean of {c['seeds']} seeds" if c["seeds"] > 1 else ""), **style
        )
        if c["seeds"] > 1:
            ax.fill_between(c["x"], c["lo"], c["hi"], color=line.get_color(), alpha=0.15, lw=0)


def plot_curves(runs: list[dict[str, Any]], out: Path) -> list[Path]:
    """losses.png (every loss term over iterations), fid.png (validation FID over epochs) and
    nce_positive.png (per tapped layer, the mean softmax probability of the PatchNCE positive: the
    quantity the focal loss reweights). A row of several seeds is drawn as its mean over the seeds
    with the min-max band shaded (:func:`row_curves`); a row of one run as that run."""
    import matplotlib  # noqa: PLC0415 - heavy, only when a report draws curves

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415 - see above

    written = []

    def save(fig, name):
        fig.tight_layout()
        with atomic_path(out / name) as tmp:
            fig.savefig(tmp, dpi=100, format="png")
        plt.close(fig)
        written.append(out / name)

    def logged(key: str, field: str) -> Callable[[dict[str, Any]], list[tuple[float, float]]]:
        return lambda r: [(rec["iter"], rec[field][key]) for rec in r["losses"] if key in rec.get(field, {})]

    keys = sorted({k for r in runs for rec in r["losses"] for k in rec["loss"]})
    if keys:
        cols = min(3, len(keys))
        nrows = -(-len(keys) // cols)
        fig, axes = plt.subplots(nrows, cols, figsize=(4.5 * cols, 3.2 * nrows), squeeze=False)
        for ax, key in zip(axes.flat, keys):
            _draw(ax, row_curves(runs, logged(key, "loss")), lw=1)
            ax.set_title(key)
            ax.set_xlabel("iteration")
        for ax in list(axes.flat)[len(keys) :]:
            ax.axis("off")
        axes.flat[0].legend(fontsize=7)
        save(fig, "losses.png")
    if any(r["val"] for r in runs):
        fig, ax = plt.subplots(figsize=(6, 4))
        _draw(
            ax,
            row_curves(runs, lambda r: [(v["iter"] / (r["iters_per_epoch"] or 1), v["val"]["fid"]) for v in r["val"]]),
            marker="o",
            ms=3,
        )
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation FID (lower is better)")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        save(fig, "fid.png")
    layers = sorted(
        {k for r in runs for rec in r["losses"] for k in rec.get("stats", {}) if k.startswith("nce_p_pos_layer")},
        key=lambda k: int(k.rsplit("layer", 1)[1]),
    )
    if layers:
        fig, axes = plt.subplots(1, len(layers), figsize=(3.6 * len(layers), 3.2), squeeze=False)
        for ax, key in zip(axes.flat, layers):
            _draw(ax, row_curves(runs, logged(key, "stats")), lw=1)
            ax.set_title(f"layer {key.rsplit('layer', 1)[1]}")
            ax.set_xlabel("iteration")
            ax.set_ylim(0, 1)
        axes.flat[0].set_ylabel("mean p(positive)")
        axes.flat[0].legend(fontsize=6)
        save(fig, "nce_positive.png")
    return written


# ------------------------------------------------------------------------------------ images
def _triptych(a: Path, fake: Path, b: Path | None):
    f = load_image(fake, 3)
    tiles = [load_image(a, 3).resize(f.size, Image.BICUBIC), f]
    if b is not None:
        tiles.append(load_image(b, 3).resize(f.size, Image.BICUBIC))
    sheet = Image.new("RGB", (f.width * len(tiles), f.height), "white")
    for k, tile in enumerate(tiles):
        sheet.paste(tile, (k * f.width, 0))
    return sheet


def _pairs(run: dict[str, Any]) -> list[tuple[Path, Path, Path | None]]:
    """(input, translation, real B) of the run's test translations; real B is the test B image of the
    same name where the split kept pairs, else the i-th one."""
    t = run["test"]
    if not t:
        return []
    fake_dir, real_dir = RunFolder(run["dir"]).eval_images("test"), Path(t["real_dir"])
    reals = list_images(real_dir) if real_dir.is_dir() else []
    by_stem = {p.stem: p for p in reals}
    out = []
    for i, a in enumerate(map(Path, t["inputs"])):
        fake = fake_dir / f"{a.stem}.png"
        if fake.is_file():
            out.append((a, fake, by_stem.get(a.stem) or (reals[i % len(reals)] if reals else None)))
    return out


def triptych_images(run: dict[str, Any], limit: int) -> list[tuple[str, Any]]:
    """(name, PIL image) triptychs real_A | fake_B | real_B of the run's test translations."""
    return [(a.stem, _triptych(a, f, b)) for a, f, b in _pairs(run)[:limit]]


def worst_images(run: dict[str, Any], n: int) -> tuple[list[tuple[str, Any]], str]:
    """The run's ``n`` worst test translations and how they were ranked: by the paired L1 error
    where the split keeps pairs, else by the Inception-feature distance of each translation to its
    nearest real test image (a translation unlike every target is a failure case)."""
    pairs = _pairs(run)
    if not pairs:
        return [], ""
    paired = ((run["test"] or {}).get("paired") or {}).get("per_image")
    if paired:
        score = {a.name: paired.get(a.name, {}).get("l1", -1) for a, _, _ in pairs}
        how = "largest L1 error against the paired target"
        label = lambda a: f"{a.stem}: L1 {score[a.name]:.3f}"  # noqa: E731
    else:
        try:
            real, fake = run_features(run["dir"])
        except Exception as e:  # noqa: BLE001 - features missing or no Inception: no ranking, say so
            return [], f"not ranked: {e}"
        # squared distances as |f|^2 + |r|^2 - 2 f.r: no n_fake x n_real x 2048 array
        d2 = (fake**2).sum(1)[:, None] + (real**2).sum(1)[None, :] - 2 * fake @ real.T
        d = np.sqrt(np.maximum(d2, 0).min(1))
        names = [Path(p).name for p in run["test"]["inputs"]]
        score = dict(zip(names, d.tolist()))
        how = "largest Inception-feature distance to the nearest real test image"
        label = lambda a: f"{a.stem}: distance {score.get(a.name, 0):.1f}"  # noqa: E731
    ranked = sorted(pairs, key=lambda p: score.get(p[0].name, -1), reverse=True)[:n]
    return [(label(a), _triptych(a, f, b)) for a, f, b in ranked], how


# ------------------------------------------------------------------------------------ the report
def build_document(
    groups: list[tuple[str, list[dict[str, Any]]]],
    plots: list[Path],
    note: Text = "",
    reference: dict[str, dict] | None = None,
    gallery_limit: int = 24,
    worst: int = 8,
    comparisons: list[tuple[str, str, list[str], dict | None]] | None = None,
) -> Document:
    runs = [r for _, members in groups for r in members]
    doc = Document("unpaired report")
    if note:
        doc.add(Paragraph(note))
    multi = any(len(m) > 1 for _, m in groups)
    header = ["method", "row", "seeds" if multi else "run", "test FID", "95% interval", "test KID", "95% interval"]
    paired_cols = any(((r["test"] or {}).get("paired")) for r in runs)
    if paired_cols:
        header += ["L1", "SSIM", "pixel acc."]
    header += ["sec/iter", "memory GiB", "best epoch", "best val FID", "collapsed"]
    table = []
    for row, members in groups:
        stats = summarize_row(members)
        first = members[0]
        cells = [
            first["method"],
            row,
            str(stats["n_seeds"]) if multi else first["name"],
            _value(stats.get("fid"), 2),
            _row_ci(stats.get("fid"), 2, multi),
            _value(stats.get("kid"), 4),
            _row_ci(stats.get("kid"), 4, multi),
        ]
        if paired_cols:
            cells += [
                _num(_mean(members, "L1"), 3),
                _num(_mean(members, "SSIM"), 3),
                _num(_mean(members, "pixel_acc"), 3),
            ]
        # with seeds, say which of them collapsed: "seed 2 at iteration 504"; else "no" when any was checked
        states = [(r, _collapsed(r)) for r in members]
        collapsed = [
            (f"seed {r['seed']} " if multi else "") + c for r, c in states if c.startswith(("at", "restarted"))
        ]
        cells += [
            _num(_mean(members, "sec_per_iter"), 3),
            _num(_mean(members, "memory_GiB"), 2),
            _epoch(_mean(members, "best_epoch")),
            _num(_mean(members, "val_FID_best"), 2),
            "; ".join(collapsed) if collapsed else "no" if any(c == "no" for _, c in states) else "-",
        ]
        table.append(cells)
    doc.add(Heading("Results"), Table(header, table, align_left=3))
    devices = sorted({r["summary"].get("device") for r in runs if r["summary"].get("device")})
    doc.add(
        Paragraph(
            [
                "Test FID/KID: each run's test-split translations against the real test B images (",
                Code("unpaired evaluate run"),
                "), pytorch-fid protocol. "
                + (
                    "With several seeds: mean ± standard deviation over seeds and a 95% Student-t interval "
                    "of the mean over seeds on this test set (measured coverage 94-96% at 2-10 seeds when "
                    "per-seed values are roughly normal, 82-90% when one seed in a few is far off, as a "
                    'collapsed one is: benchmarks/calibration.py); a row with one seed: "too few seeds". '
                    "Without seeds: the"
                    if multi
                    else "The"
                )
                + " value (KID ± its standard deviation over subsets) and a 95% bootstrap interval over the test "
                "images (test-set variation only). L1, SSIM and pixel accuracy: against the paired test targets, "
                "where the split keeps pairs. "
                "sec/iter: median of logged intervals; memory: steady-state peak after the first logged interval ("
                + ("CUDA max allocated" if any(d.startswith("cuda") for d in devices) else "process RSS")
                + f"); collapsed: the first validation that found the translations collapsed (and each restart of "
                f"--on-collapse restart); device: "
                f"{', '.join(devices) or '-'}.",
            ]
        )
    )
    if multi:
        doc.add(
            Heading("Every run"),
            Table(
                ["run", "seed", "test FID", "95% interval", "test KID", "best val FID", "collapsed"],
                [
                    [
                        r["name"],
                        str(r["seed"]),
                        _num(run_row(r)["FID"], 2),
                        _ci((r["test"] or {}).get("fid_ci"), 2),
                        _num(run_row(r)["KID"], 4),
                        _num(run_row(r)["val_FID_best"], 2),
                        _collapsed(r),
                    ]
                    for r in runs
                ],
                align_left=1,
            ),
        )
    if comparisons:
        body = []
        for a, b, keys, result in comparisons:
            differs = ", ".join(keys) if keys else "nothing (A/A: other seeds)"
            if result is None:
                body.append([f"{b} vs {a}", differs, "-", "-", "-", "-", "not compared"])
                continue
            for metric, label in METRIC_LABELS.items():
                m = result.get(metric)
                if m is None:
                    continue
                digits = METRIC_DIGITS[metric]
                body.append(
                    [
                        f"{b} vs {a}",
                        differs,
                        ", ".join(map(str, result["seeds"])),
                        label + (" (higher is better)" if HIGHER_IS_BETTER[metric] else ""),
                        f"{m['difference']:+.{digits}f}",
                        _ci(m["ci"], digits) if m["ci"] else "too few seeds",
                        m["verdict"],
                    ]
                )
        doc.add(
            Heading("Comparisons"),
            Table(
                ["comparison (B vs A)", "differs in", "paired seeds", "metric", "B - A", "95% interval", "verdict"],
                body,
                align_left=4,
            ),
            Paragraph(
                "Differences are B minus A; the verdict is from B's side (lower FID, KID and L1, higher PSNR, "
                'SSIM and pixel accuracy are better): "better" or "worse" only when the 95% interval excludes 0, '
                'else "within noise"; with one seed there is no interval ("too few seeds"). The interval is over '
                "seeds and test images together: a Student-t interval over the per-seed differences widened by "
                "the test-set uncertainty all seeds share (a jackknife over test images, two-way ANOVA for the "
                "per-image metrics), for the same seeds and inputs in both rows. Measured on synthetic data "
                "(benchmarks/calibration.py, 2-10 seeds, 20-200 test images): for per-image metrics it covered the "
                "true difference in 93.5-97.5% of 400 experiments per setting (Monte-Carlo se 1.1%) and, on two "
                'rows of one method, said "better" or "worse" in 3.7-6.5%; for FID at 100 test images and 3 seeds, '
                "95.0% and 5.0% (100 experiments); at 20 test images FID and KID verdicts are conservative (0-3.5% "
                "false alarms). A/A rows (one method twice, other seeds) "
                "show that false-alarm check on this run's own data. Which metric to read: FID/KID for "
                "unpaired photo-like targets; L1, PSNR and SSIM where the test split keeps pairs and the "
                "target is one right answer; pixel accuracy for label-map targets (maps, face parsing)."
            ),
        )
    if reference:
        known = {row for row, _ in groups}
        body = [
            [name, str(v.get("fid", "-")), str(v.get("sec_per_iter", "-")), str(v.get("memory_GiB", "-"))]
            for name, v in reference.items()
            if name in known
        ]
        if body:
            doc.add(
                Heading("Published figures (thesis, maps 256x256, Tesla P100)"),
                Table(["row", "FID", "sec/iter", "GPU memory GiB"], body),
            )
    if plots:
        doc.add(Heading("Curves"), *[Figure(p, p.stem.replace("_", " ")) for p in plots])
    for _row, members in groups:
        r = members[0]
        doc.add(Heading(f"{r['method']} ({r['name']})", 3))
        trips = triptych_images(r, gallery_limit)
        if not trips:
            doc.add(
                Paragraph(["No test translations: run ", Code("unpaired evaluate run RUN_DIR --data DIR"), " first."])
            )
            continue
        t = r["test"]
        doc.add(
            Paragraph(
                f"real_A | fake_B | real_B, test split, checkpoint {t['checkpoint']} (iteration "
                f"{t['iteration']}), FID {t['fid']:.2f}, KID {t['kid']:.4f}"
            ),
            Grid(trips, note="Shown in gallery.html."),
        )
        bad, how = worst_images(r, worst)
        if bad:
            doc.add(
                Paragraph([Bold(f"The {len(bad)} worst"), f" test translations ({how}):"]),
                Grid(bad, note="Shown in gallery.html."),
            )
        elif how:
            doc.add(Paragraph(f"Worst translations {how}."))
    return doc


def write_report(
    run_dirs: RunDirs,
    out: str | Path,
    gallery_limit: int = 24,
    note: Text = "",
    reference: dict[str, dict] | None = None,
    worst: int = 8,
    compare: bool = True,
) -> dict[str, Path]:
    """Write results.md, results.csv, the curves and gallery.html (the same tables with the test
    translations, best and worst, all embedded) into ``out``.

    ``run_dirs``: run folders, or {row name: [run folders]} (an experiment with several seeds per
    row; see :func:`group_runs`). ``note`` heads the report (a string, or a list of strings and
    :class:`unpaired.document.Bold` spans); ``reference`` maps row names to published figures
    ({"fid", "sec_per_iter", "memory_GiB"}); ``worst`` translations per row are shown ranked;
    ``compare`` adds paired comparisons of rows that differ only in their loss settings."""
    out = Path(out)
    make_dir(out, "report folder")
    groups = [(row, [load_run(d, row) for d in dirs]) for row, dirs in group_runs(run_dirs)]
    runs = [r for _, members in groups for r in members]
    comparisons = None
    if compare:
        comparisons = [
            (groups[i][0], groups[j][0], keys, compare_rows(groups[i][1], groups[j][1]))
            for i, j, keys in comparable_pairs(groups)
        ]
    plots = plot_curves(runs, out)
    doc = build_document(groups, plots, note, reference, gallery_limit, worst, comparisons)
    write_text(out / "results.md", doc.to_markdown())
    rows = table_rows(runs)
    table = io.StringIO(newline="")
    w = csv.DictWriter(table, fieldnames=list(rows[0]) if rows else ["run"])
    w.writeheader()
    w.writerows(rows)
    write_text(out / "results.csv", table.getvalue())
    write_text(out / "gallery.html", doc.to_html())
    if comparisons:
        write_text(
            out / "comparisons.json",
            json.dumps(
                [{"a": a, "b": b, "differs_in": keys, **(res or {})} for a, b, keys, res in comparisons], indent=2
            ),
        )
    return {
        "markdown": out / "results.md",
        "csv": out / "results.csv",
        "gallery": out / "gallery.html",
        **{p.stem: p for p in plots},
    }


__all__ = [
    "write_report",
    "load_run",
    "group_runs",
    "method_name",
    "table_rows",
    "summarize_row",
    "comparable_pairs",
    "compare_rows",
    "build_document",
    "plot_curves",
    "row_curves",
]
