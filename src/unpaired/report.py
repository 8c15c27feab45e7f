"""Reports over run folders: the thesis-style table (Markdown, CSV), curves (PNG), an HTML gallery."""
from __future__ import annotations

import base64
import csv
import html
import io
import json
from dataclasses import fields
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from .data.images import list_images, load_image
from .outputs import atomic_path, make_dir, write_text

def method_name(cfg: dict[str, Any]) -> str:
    """'CUT - CE', 'FastCUT - Focal (gamma 2, alpha 0.25)', ... as in the thesis's table."""
    from .methods import METHODS

    m = cfg["model"]
    method = METHODS.get(m["name"])
    if method is None:  # a run of a method registered in another program
        return m["name"]
    # configs saved before the per-method options held every method's fields
    return method.label({k: v for k, v in m.items() if k in {f.name for f in fields(method.config_class)}})


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def load_run(run_dir: str | Path, row: str | None = None) -> dict[str, Any]:
    """A run folder's config, summary, test scores and logs. ``row``: the experiment row (group) the
    run belongs to, default the folder's name; ``name`` is the row, or ``row/folder`` when the folder
    is named otherwise (OUT/cut-ce/seed1 -> 'cut-ce/seed1'); ``seed`` is its ``train.seed``."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise FileNotFoundError(f"{run_dir} is not a run folder (no config.yaml); pass folders written by 'unpaired train'")
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    summary = json.loads((run_dir / "summary.json").read_text()) if (run_dir / "summary.json").is_file() else {}
    test = json.loads((run_dir / "eval" / "test.json").read_text()) if (run_dir / "eval" / "test.json").is_file() else None
    log = _read_jsonl(run_dir / "metrics.jsonl")
    total_epochs = cfg["train"]["epochs"] + cfg["train"]["epochs_decay"]
    per_epoch = (summary.get("total_iterations") or 0) / total_epochs if total_epochs else 0
    row = row or run_dir.name
    return {"dir": run_dir, "name": row if run_dir.name == row else f"{row}/{run_dir.name}", "row": row,
            "seed": cfg["train"].get("seed"), "method": method_name(cfg), "config": cfg, "summary": summary,
            "test": test, "losses": [r for r in log if "loss" in r], "val": [r for r in log if "val" in r],
            "iters_per_epoch": per_epoch}


def table_rows(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for r in runs:
        s, t = r["summary"], r["test"]
        best = ((s.get("validation") or {}).get("best")) or {}
        mem = s.get("peak_memory_bytes")
        rows.append({
            "run": r["name"], "method": r["method"],
            "FID": t["fid"] if t else None, "KID": t["kid"] if t else None, "KID_std": t["kid_std"] if t else None,
            # epochs as a fraction (validation may run mid-epoch): best iteration / iterations per epoch
            "val_FID_best": best.get("fid"),
            "best_epoch": best["iteration"] / r["iters_per_epoch"] if best and r["iters_per_epoch"] else None,
            "best_iter": best.get("iteration"),
            "sec_per_iter": s.get("sec_per_iter"), "memory_GiB": mem / 2 ** 30 if mem else None,
            "device": s.get("device"), "iterations": s.get("iteration"),
            "test_checkpoint": t["checkpoint"] if t else None, "n_test": t["n_fake"] if t else None,
        })
    return rows


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    head = "| method | FID | KID | sec/iter | memory GiB | best epoch | best val FID | run |\n|---|---|---|---|---|---|---|---|\n"
    body = "".join(
        f"| {r['method']} | {_fmt(r['FID'], '.2f')} | "
        + (f"{r['KID']:.4f} ± {r['KID_std']:.4f}" if r["KID"] is not None else "-")
        + f" | {_fmt(r['sec_per_iter'], '.3f')} | {_fmt(r['memory_GiB'], '.2f')} | {_fmt(r['best_epoch'], '.2f')} | "
        f"{_fmt(r['val_FID_best'], '.2f')} | {r['run']} |\n" for r in rows)
    return head + body


def plot_curves(runs: list[dict[str, Any]], out: Path) -> list[Path]:
    """losses.png (every loss term over iterations) and fid.png (validation FID over epochs)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    keys = sorted({k for r in runs for rec in r["losses"] for k in rec["loss"]})
    if keys:
        cols = min(3, len(keys))
        rows = -(-len(keys) // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.2 * rows), squeeze=False)
        for ax, key in zip(axes.flat, keys):
            for r in runs:
                pts = [(rec["iter"], rec["loss"][key]) for rec in r["losses"] if key in rec["loss"]]
                if pts:
                    ax.plot(*zip(*pts), label=r["name"], lw=1)
            ax.set_title(key)
            ax.set_xlabel("iteration")
        for ax in list(axes.flat)[len(keys):]:
            ax.axis("off")
        axes.flat[0].legend(fontsize=7)
        fig.tight_layout()
        with atomic_path(out / "losses.png") as tmp:
            fig.savefig(tmp, dpi=100, format="png")
        plt.close(fig)
        written.append(out / "losses.png")
    if any(r["val"] for r in runs):
        fig, ax = plt.subplots(figsize=(6, 4))
        for r in runs:
            if r["val"]:
                per = r["iters_per_epoch"] or 1
                ax.plot([v["iter"] / per for v in r["val"]], [v["val"]["fid"] for v in r["val"]], "o-",
                        label=f"{r['method']} ({r['name']})", ms=3)
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation FID (lower is better)")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        with atomic_path(out / "fid.png") as tmp:
            fig.savefig(tmp, dpi=100, format="png")
        plt.close(fig)
        written.append(out / "fid.png")
    return written


def _data_uri(path_or_image) -> str:
    buf = io.BytesIO()
    im = path_or_image if not isinstance(path_or_image, (str, Path)) else load_image(path_or_image, 3)
    im.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def triptych_images(run: dict[str, Any], limit: int) -> list[tuple[str, Any]]:
    """(name, PIL image) triptychs real_A | fake_B | real_B of the run's test translations.

    real_B is the test B image of the same name where the split kept pairs, else the i-th one."""
    from PIL import Image

    t = run["test"]
    if not t:
        return []
    fake_dir = run["dir"] / "eval" / "test"
    real_dir = Path(t["real_dir"])
    reals = list_images(real_dir) if real_dir.is_dir() else []
    out = []
    for i, a in enumerate(map(Path, t["inputs"][:limit])):
        fake = fake_dir / f"{a.stem}.png"
        if not fake.is_file():
            continue
        f = load_image(fake, 3)
        paired = real_dir / a.name
        b_path = paired if paired.is_file() else (reals[i % len(reals)] if reals else None)
        tiles = [load_image(a, 3).resize(f.size, Image.BICUBIC), f]
        if b_path is not None:
            tiles.append(load_image(b_path, 3).resize(f.size, Image.BICUBIC))
        sheet = Image.new("RGB", (f.width * len(tiles), f.height), "white")
        for k, tile in enumerate(tiles):
            sheet.paste(tile, (k * f.width, 0))
        out.append((a.stem, sheet))
    return out


def gallery_html(runs: list[dict[str, Any]], plots: list[Path], table_md: str, limit: int, note: str = "") -> str:
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>unpaired report</title><style>"
             "body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child{text-align:left}"
             ".grid{display:flex;flex-wrap:wrap;gap:10px}figure{margin:0}figcaption{font-size:11px;color:#555}"
             "img.t{height:128px;image-rendering:pixelated}</style></head><body><h1>unpaired report</h1>"]
    if note:
        parts.append(f"<p>{html.escape(note)}</p>")
    rows = [line.strip("|").split("|") for line in table_md.strip().splitlines()]
    parts.append("<table>" + "".join(
        "<tr>" + "".join(f"<{'th' if i == 0 else 'td'}>{html.escape(c.strip())}</{'th' if i == 0 else 'td'}>" for c in row) + "</tr>"
        for i, row in enumerate(rows) if i != 1) + "</table>")
    for p in plots:
        parts.append(f"<h2>{html.escape(p.stem)}</h2><img src='{_data_uri(p)}' style='max-width:100%'>")
    for r in runs:
        trips = triptych_images(r, limit)
        parts.append(f"<h2>{html.escape(r['method'])} <small>({html.escape(r['name'])})</small></h2>")
        if not trips:
            parts.append("<p>No test translations: run <code>unpaired evaluate run RUN_DIR --data DIR</code> first.</p>")
            continue
        t = r["test"]
        parts.append(f"<p>real_A | fake_B | real_B, test split, checkpoint {html.escape(t['checkpoint'])} "
                     f"(iteration {t['iteration']}), FID {t['fid']:.2f}, KID {t['kid']:.4f}</p><div class='grid'>")
        parts += [f"<figure><img class='t' src='{_data_uri(im)}'><figcaption>{html.escape(name)}</figcaption></figure>"
                  for name, im in trips]
        parts.append("</div>")
    parts.append("</body></html>")
    return "\n".join(parts)


RunDirs = Sequence[str | Path] | Mapping[str, Sequence[str | Path]]


def group_runs(run_dirs: RunDirs) -> list[tuple[str, list[Path]]]:
    """``write_report``'s input as (row name, [run folders]) pairs in order: a mapping (an
    experiment's rows, each with the run folders of its seeds in seed order) gives its items; a plain
    list of run folders gives one group per folder, named after the folder (as before groups)."""
    if isinstance(run_dirs, Mapping):
        return [(str(row), [Path(d) for d in dirs]) for row, dirs in run_dirs.items()]
    return [(Path(d).name, [Path(d)]) for d in run_dirs]


def write_report(run_dirs: RunDirs, out: str | Path, gallery_limit: int = 24, note: str = "",
                 reference: dict[str, dict] | None = None) -> dict[str, Path]:
    """Write results.md, results.csv, losses.png, fid.png and gallery.html into ``out``.

    ``run_dirs``: run folders, or {row name: [run folders]} (an experiment with several seeds per
    row; see :func:`group_runs`); each loaded run carries its ``row`` and ``seed``. ``note`` heads
    the Markdown (e.g. which scale produced the table); ``reference`` maps row names to published
    figures ({"fid", "sec_per_iter", "memory_GiB"}) shown as a second table."""
    out = Path(out)
    runs = [load_run(d, row) for row, dirs in group_runs(run_dirs) for d in dirs]
    make_dir(out, "report folder")
    rows = table_rows(runs)
    md = markdown_table(rows)
    devices = sorted({r["device"] for r in rows if r["device"]})
    footnote = ("\nFID/KID: the run's test-split translations against the real test B images "
            "(`unpaired evaluate run`), pytorch-fid protocol; KID mean ± std over subsets. "
            "sec/iter: median of logged intervals; memory: steady-state peak after the first logged interval ("
            + ("CUDA max allocated" if any(d.startswith("cuda") for d in devices) else "process RSS")
            + f"; summary.json also has the one-off peak); device: {', '.join(devices) or '-'}.\n")
    ref = ""
    if reference:
        ref = "\nPublished figures for the same rows (thesis, maps 256x256, Tesla P100):\n\n" \
              "| run | FID | sec/iter | GPU memory GiB |\n|---|---|---|---|\n" + "".join(
                  f"| {name} | {v.get('fid', '-')} | {v.get('sec_per_iter', '-')} | {v.get('memory_GiB', '-')} |\n"
                  for name, v in reference.items() if name in {r['row'] for r in runs})
    write_text(out / "results.md", (note + "\n\n" if note else "") + md + footnote + ref)
    table = io.StringIO(newline="")
    w = csv.DictWriter(table, fieldnames=list(rows[0]) if rows else ["run"])
    w.writeheader()
    w.writerows(rows)
    write_text(out / "results.csv", table.getvalue())
    plots = plot_curves(runs, out)
    write_text(out / "gallery.html", gallery_html(runs, plots, md, gallery_limit, note))
    return {"markdown": out / "results.md", "csv": out / "results.csv", "gallery": out / "gallery.html",
            **{p.stem: p for p in plots}}
