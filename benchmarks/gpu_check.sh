#!/usr/bin/env bash
# Checks for a lent GPU machine (one H100/H200), in under 9 minutes, results appended to $OUT as
# they come (a run cut off still returns what it has):
#   1 environment (nvidia-smi, torch/CUDA/cuDNN)
#   2 speed/memory of every model at batch 1 and 16, fp32 and bf16, --compile off, and for CUT and FastCUT
#     compile and cudagraphs
#     (`unpaired profile --json`: s/iter, images/s, steady vs one-off memory, TFLOP/s, % of peak),
#     then the official CUT/FastCUT against ours at 256 px (benchmarks/train_speed.py)
#   3 fast path vs eager equality (benchmarks/step_equality.py: small networks in float64, where only a
#     difference in what is computed shows; float32 rounding flips ReLU gates, docs/measured/speed.md)
#   4 fp16 and bf16 training, 300 iterations of CUT at 64 px on $DATA or a synthetic dataset:
#     losses in metrics.jsonl must be finite
#   5 CycleGAN save/resume: 6 iterations straight vs 3 + resume to 6 (pool of 2): max weight difference
#   6 train.deterministic: the same 6-iteration CUT command in two processes, weights compared bit for bit
#   7 translation: images/s of the CUT generator at 256 px, batch 16, eager vs `translate --compile compile`
#     (benchmarks/translate_speed.py), for `translate --compile auto`
#
# From the repository root, with the official code carried as .ref/cut (device tool: carry [".ref/cut"]):
#   OUT=/some/dir bash benchmarks/gpu_check.sh
# Environment: OUT (results, default ./gpu_check_out), DATA (a split made by `unpaired data split`,
# e.g. people2outline; default: a synthetic two-folder set), GPU_CHECK_DEVICE=cpu (a tiny dry run of
# the whole script on the CPU: small sizes and networks, few iterations, no fp16), GPU_CHECK_DEADLINE
# (seconds for the whole script, default 540 on CUDA), GPU_CHECK_PARTS (which parts, default
# "2 2b 3 4 5 6 7"; part 1 always runs): the whole check does not fit one 10-minute call, so a
# session runs e.g. GPU_CHECK_PARTS="2 2b 3" and then "3 7 4 5 6" on the same warm machine.
# Files written to $OUT (at most 8 come back): summary.md, env.txt, profile.jsonl, train_speed.md,
# step_equality.txt, translate_speed.md, log.txt.
set -u
PARTS=" ${GPU_CHECK_PARTS:-2 2b 3 4 5 6 7} "
want() { [[ "$PARTS" == *" $1 "* ]]; }

cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu_check_out}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
DEVICE="${GPU_CHECK_DEVICE:-cuda}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")"
SUMMARY="$OUT/summary.md"
LOG="$OUT/log.txt"

if [ "$DEVICE" = cpu ]; then
    DEADLINE="${GPU_CHECK_DEADLINE:-3000}"; SCALE=8       # the CPU is ~100x slower: only the plumbing is checked
    SIZE_CUT=(--size 32 --set model.ngf=8 --set model.ndf=8 --set model.n_blocks=2
              --set "model.nce_layers=[0,4,8,12]" --set model.projector_dim=32)
    SIZE_CYC=(--size 32 --set model.ngf=8 --set model.ndf=8 --set model.n_blocks=2)
    SIZE_SIN=(--size 32 --set model.ngf=4 --set model.ndf=4 --set model.d_tile_size=16)
    BATCHES=(1 2); PROF_ITERS=(1 1)             # iterations, warm-up
    SPEED_ARGS=(--sizes 32 --iters 1 --warmup 1 --memory off --device cpu)
    TRAIN_PRECISIONS=(bf16); TRAIN_ITERS=4; TRAIN_SIZE=(--size 32 --set model.ngf=8 --set model.ndf=8)
    RESUME_SIZE=(--size 32 --set model.ngf=8 --set model.ndf=8 --set model.n_blocks=2)
else
    DEADLINE="${GPU_CHECK_DEADLINE:-540}"; SCALE=1
    SIZE_CUT=(); SIZE_CYC=(); SIZE_SIN=()                # presets: 256 px; SinCUT 16 crops of 128 px
    BATCHES=(1 16); PROF_ITERS=(5 2)
    SPEED_ARGS=(--sizes 256 --iters 10 --warmup 3 --device cuda)
    TRAIN_PRECISIONS=(fp16 bf16); TRAIN_ITERS=300; TRAIN_SIZE=(--size 64)
    RESUME_SIZE=(--size 256)
fi

# seconds left for a part: its budget (scaled on the CPU), capped by the script's deadline
left() {
    local want=$(( $1 * SCALE )) rest=$(( DEADLINE - SECONDS - 5 ))
    [ "$rest" -lt "$want" ] && want=$rest
    echo "$want"
}
section() { printf '\n## %s\n\n' "$1" >> "$SUMMARY"; echo "=== $1 ($(date +%T), ${SECONDS}s)" >> "$LOG"; }
note() { printf '%s\n' "$*" >> "$SUMMARY"; }
# run a command under a timeout, stdout and stderr to the log (run_to FILE: stdout to FILE);
# a line in the summary when it fails or times out
run_to() {
    local out=$1 t=$2; shift 2
    if [ "$t" -lt 10 ]; then note "- skipped (deadline): \`$*\`"; return 124; fi
    if [ "$out" = - ]; then timeout -k 5 "$t" "$@" >> "$LOG" 2>&1; else timeout -k 5 "$t" "$@" > "$out" 2>> "$LOG"; fi
    local rc=$?
    [ $rc -eq 124 ] && note "- TIMED OUT after ${t}s: \`$*\`"
    [ $rc -ne 0 ] && [ $rc -ne 124 ] && note "- FAILED (exit $rc): \`$*\` (see log.txt)"
    return $rc
}
run() { run_to - "$@"; }

printf '# GPU check, %s\n\ndevice %s, deadline %ss, parts%s, tree %s\n' "$(date -Is)" "$DEVICE" "$DEADLINE" "$PARTS" "$PWD" > "$SUMMARY"
: > "$LOG"

# ------------------------------------------------------------------ 1. environment
section "1. environment"
{
    (command -v nvidia-smi >/dev/null && timeout 20 nvidia-smi) || echo "no nvidia-smi"
    timeout 60 "$PY" - <<'EOF'
import platform, torch
print("python", platform.python_version(), "| torch", torch.__version__, "| CUDA", torch.version.cuda,
      "| cuDNN", torch.backends.cudnn.version(), "| threads", torch.get_num_threads())
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print("GPU", torch.cuda.get_device_name(0), f"| {p.total_memory / 2**30:.1f} GiB | capability {p.major}.{p.minor}",
          "| bf16", torch.cuda.is_bf16_supported(), "| cudnn.allow_tf32", torch.backends.cudnn.allow_tf32,
          "| matmul.allow_tf32", torch.backends.cuda.matmul.allow_tf32)
for mod in ("torchvision", "numpy", "PIL", "scipy", "yaml"):
    try:
        print(mod, __import__(mod).__version__)
    except Exception as e:
        print(mod, "missing:", e)
EOF
} > "$OUT/env.txt" 2>&1
note '```'; grep -E "^(python|GPU|NVIDIA-SMI|no nvidia)" "$OUT/env.txt" >> "$SUMMARY"; note '```'

if want 2; then
# ------------------------------------------------------------------ 2. speed and memory
section "2. speed and memory: unpaired profile (JSON lines in profile.jsonl)"
: > "$OUT/profile.jsonl"
# One process per model and --compile mode (fresh CUDA context and cudnn.benchmark cache, so the
# one-off figure includes the algorithm search), running that model's batch x precision settings
# through `unpaired profile --json` in-process (a process per setting would cost ~5 s of start-up each).
cat > "$WORK/profile_models.py" <<'EOF'
"""MODE DEVICE OUT BATCHES ITERS WARMUP MODEL [profile args]: one JSON line per setting, appended to OUT."""
import contextlib, gc, io, json, sys
import torch
from unpaired.cli import main
mode, device, out, batches, iters, warmup, model, extra = *sys.argv[1:8], sys.argv[8:]
for precision in ("fp32", "bf16"):
    for batch in batches.split(","):
        buf = io.StringIO()
        args = ["profile", "--model", model, "--batch-size", batch, "--precision", precision, "--compile", mode,
                "--device", device, "--json", "--iters", iters, "--warmup", warmup, *extra]
        if mode != "off":
            args.append("--no-flops")  # the same arithmetic as the eager rows, counted there
        try:
            with contextlib.redirect_stdout(buf):
                rc = main(args)
            line = json.loads(buf.getvalue()) if rc == 0 else {"error": f"exit {rc}"}
        except Exception as e:  # one failing setting must not lose the others
            line = {"error": repr(e)}
        if "error" in line:
            line.update(model=model, batch_size=int(batch), precision=precision, compile=mode)
        with open(out, "a") as f:
            f.write(json.dumps(line) + "\n")
        print(json.dumps(line)[:300], flush=True)
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
EOF
PART2_END=$(( SECONDS + $(left 230) ))
# every model eagerly; then the compiled step modes for CUT and FastCUT (the 256 px goal is CUT's
# step), fp32 batch 1 first: each setting compiles anew, and a process cut off keeps what it wrote
PROFILE_RUNS=()
for model in cut fastcut cyclegan sincut cut-focal fastcut-focal sincut-focal; do PROFILE_RUNS+=("off $model"); done
[ "$DEVICE" = cpu ] && COMPILED_MODES=(compile) || COMPILED_MODES=(compile cudagraphs)
for mode in "${COMPILED_MODES[@]}"; do PROFILE_RUNS+=("$mode cut" "$mode fastcut"); done
for entry in "${PROFILE_RUNS[@]}"; do
    read -r mode model <<< "$entry"
    case $model in
        sincut*) extra=("${SIZE_SIN[@]}") ;;
        cyclegan) extra=("${SIZE_CYC[@]}") ;;
        *) extra=("${SIZE_CUT[@]}") ;;
    esac
    if [ "$mode" = off ]; then cap=$(( 30 * SCALE )); else cap=$(( 60 * SCALE )); fi
    t=$(( PART2_END - SECONDS )); [ "$t" -gt "$cap" ] && t=$cap
    run "$t" "$PY" "$WORK/profile_models.py" "$mode" "$DEVICE" "$OUT/profile.jsonl" "$(IFS=,; echo "${BATCHES[*]}")" \
        "${PROF_ITERS[@]}" "$model" "${extra[@]}"
done
"$PY" - "$OUT/profile.jsonl" >> "$SUMMARY" 2>> "$LOG" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
gib = lambda b: "-" if b is None else f"{b / 2**30:.2f}"
print("| model | batch | precision | compile | step | s/iter | images/s | steady GiB | one-off GiB | reserved GiB | GFLOP/iter | TFLOP/s | % of peak |")
print("|---|---:|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for r in rows:
    if "error" in r:
        print(f"| {r.get('model')} | {r.get('batch_size', '')} | {r.get('precision', '')} | {r.get('compile', '')} | ERROR {r['error'][:80]} |||||||||")
        continue
    pf = r.get("peak_fraction")
    print(f"| {r['model']} {r['size']} | {r['batch_size']} | {r['precision']} | {r['compile']} | {r['step']} | "
          f"{r['sec_per_iter']:.4f} | {r['images_per_sec']:.1f} | {gib(r['peak_memory_bytes'])} | "
          f"{gib(r['peak_memory_oneoff_bytes'])} | {gib(r['peak_memory_reserved_bytes'])} | "
          f"{'-' if not r['flops'] else format(r['flops'] / 1e9, ',.1f')} | "
          f"{'-' if r['tflops_per_sec'] is None else format(r['tflops_per_sec'], '.2f')} | "
          f"{'-' if pf is None else format(100 * pf, '.1f') + ' (' + r['peak_tflops_dtype'] + ')'} |")
print(f"\n{len(rows)} settings. CUDA: steady = peak allocated over the timed iterations, one-off = including "
      "warm-up (cudnn.benchmark's search), reserved = the caching allocator's peak; CPU: process RSS. One process "
      "per model and compile mode; FLOPs counted on the eager rows (--compile off) only.")
EOF

fi

if want 2b; then
section "2b. official CUT/FastCUT vs ours (benchmarks/train_speed.py)"
if [ -f .ref/cut/models/cut_model.py ]; then note "official checkout: .ref/cut"; else
    note "official checkout .ref/cut missing (carry it: the device tool's carry [\".ref/cut\"]): only ours is timed"; fi
run_to "$OUT/train_speed.md" "$(left 90)" "$PY" benchmarks/train_speed.py "${SPEED_ARGS[@]}"
cat "$OUT/train_speed.md" >> "$SUMMARY"

fi

if want 3; then
# ------------------------------------------------------------------ 3. fast path vs eager
section "3. fast path vs eager equality"
if [ -f benchmarks/step_equality.py ]; then
    # small networks (compiling the full ones for 4 models x 2 modes takes minutes); CUT and SinCUT (R1) first
    run_to "$OUT/step_equality.txt" "$(left 60)" "$PY" benchmarks/step_equality.py --device "$DEVICE" --tiny \
        --size 32 --models cut sincut fastcut cyclegan
    tail -n 30 "$OUT/step_equality.txt" | sed 's/^/    /' >> "$SUMMARY"
else
    echo "benchmarks/step_equality.py is missing (not written yet): nothing checked" | tee "$OUT/step_equality.txt" >> "$SUMMARY"
fi

fi

# ------------------------------------------------------------------ 4. fp16 / bf16 training
if want 4 || want 5 || want 6; then
section "4. data for parts 4-6, and mixed-precision training"
if [ -n "${DATA:-}" ] && [ -d "$DATA/trainA" ] && [ -d "$DATA/trainB" ]; then
    D="$DATA"; note "data: $DATA"
else
    D="$WORK/synthetic"
    "$PY" - "$D" >> "$LOG" 2>&1 <<'EOF'
import sys
from pathlib import Path
import numpy as np
from PIL import Image
rng = np.random.default_rng(0)
for domain in "AB":
    folder = Path(sys.argv[1]) / f"train{domain}"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(64):
        # smooth random images (blurred noise): domain A colour blobs, domain B grey stripes
        z = rng.random((8, 8, 3)) if domain == "A" else np.repeat(np.repeat(rng.random((8, 1, 1)), 8, 1), 3, 2)
        im = Image.fromarray((z * 255).astype(np.uint8)).resize((64, 64), Image.BICUBIC)
        im.save(folder / f"{i:03d}.png")
EOF
    note "data: synthetic, 64 random 64x64 images per domain (\$DATA unset or without trainA/trainB)"
fi
fi
want 4 && for prec in "${TRAIN_PRECISIONS[@]}"; do
    RUN="$WORK/train_$prec"
    run "$(left 40)" "$PY" -m unpaired train --model cut --data "$D" --out "$RUN" "${TRAIN_SIZE[@]}" \
        --iters "$TRAIN_ITERS" --precision "$prec" --device "$DEVICE" --num-workers 2 --quiet \
        --sample-every 0 --set train.log_every=25
    "$PY" - "$RUN" "$prec" >> "$SUMMARY" 2>> "$LOG" <<'EOF'
import json, math, sys
from pathlib import Path
run, prec = Path(sys.argv[1]), sys.argv[2]
path = run / "metrics.jsonl"
if not path.is_file():
    print(f"- {prec}: no metrics.jsonl (the run failed: see log.txt)")
    sys.exit()
recs = [json.loads(l) for l in path.read_text().splitlines() if l.strip()]
recs = [r for r in recs if "loss" in r]
bad = [(r["iter"], k, v) for r in recs for k, v in r["loss"].items() if not math.isfinite(v)]
badstats = sum(1 for r in recs for v in r.get("stats", {}).values() if not math.isfinite(v))
s = json.loads((run / "summary.json").read_text()) if (run / "summary.json").is_file() else {}
first, last = recs[0]["loss"], recs[-1]["loss"]
print(f"- {prec}: {'OK, all losses finite' if not bad else 'NON-FINITE LOSSES ' + str(bad[:5])} over {len(recs)} "
      f"logged intervals to iteration {recs[-1]['iter']}; {badstats} non-finite stats (grad norms of skipped fp16 "
      f"steps are inf by design); step {s.get('step')}, {s.get('sec_per_iter') or 0:.4f} s/iter, "
      f"peak {(s.get('peak_memory_bytes') or 0) / 2**30:.2f} GiB")
print(f"  first {json.dumps({k: round(v, 3) for k, v in first.items()})}")
print(f"  last  {json.dumps({k: round(v, 3) for k, v in last.items()})}")
EOF
done

# compare_weights RUN_A RUN_B [HINT]: one summary line on how far the two runs' latest weights differ
compare_weights() {
"$PY" - "$@" >> "$SUMMARY" 2>> "$LOG" <<'EOF'
import sys
import torch
from unpaired import checkpoint
hint = sys.argv[3] if len(sys.argv) > 3 else ""
try:
    a, b = (checkpoint.load(p) for p in sys.argv[1:3])
except Exception as e:
    print(f"- could not load both checkpoints{hint}: {e!r}")
    sys.exit()
diffs = {k: (a["model"][k].float() - b["model"][k].float()).abs().max().item()
         for k in a["model"] if torch.is_tensor(a["model"][k]) and a["model"][k].is_floating_point()}
worst = max(diffs, key=diffs.get)
same = sum(1 for v in diffs.values() if v == 0)
print(f"- both at iteration {a['progress']['iteration']} / {b['progress']['iteration']}; {same} of {len(diffs)} "
      f"tensors bit-identical; max |weight difference| {diffs[worst]:.3g} ({worst})")
EOF
}

if want 5; then
# ------------------------------------------------------------------ 5. CycleGAN save/resume
section "5. CycleGAN save/resume (6 straight vs 3 + resume to 6, pool_size 2)"
CYC=(train --model cyclegan --data "$D" "${RESUME_SIZE[@]}" --device "$DEVICE" --num-workers 0 --quiet
     --sample-every 0 --set train.log_every=1 --set model.pool_size=2)
run "$(left 20)" "$PY" -m unpaired "${CYC[@]}" --out "$WORK/cyc_straight" --iters 6
run "$(left 15)" "$PY" -m unpaired "${CYC[@]}" --out "$WORK/cyc_resumed" --iters 3
run "$(left 15)" "$PY" -m unpaired "${CYC[@]}" --out "$WORK/cyc_resumed" --iters 6
compare_weights "$WORK/cyc_straight" "$WORK/cyc_resumed"
note "(on CUDA cudnn.benchmark's algorithm choice is not deterministic: small differences are expected)"

fi

if want 6; then
# ------------------------------------------------------------------ 6. train.deterministic
section "6. train.deterministic: the same CUT command twice (6 iterations, fresh processes) must be bit-identical"
DET=(train --model cut --data "$D" "${TRAIN_SIZE[@]}" --device "$DEVICE" --num-workers 0 --quiet
     --sample-every 0 --iters 6 --set train.deterministic=true)
run "$(left 25)" "$PY" -m unpaired "${DET[@]}" --out "$WORK/det_1"
run "$(left 25)" "$PY" -m unpaired "${DET[@]}" --out "$WORK/det_2"
compare_weights "$WORK/det_1" "$WORK/det_2" " (see log.txt: did an operation refuse deterministic mode?)"

fi

if want 7; then
# ------------------------------------------------------------------ 7. translation, eager vs compiled
section "7. translation: eager vs compiled generator (benchmarks/translate_speed.py)"
if [ "$DEVICE" = cpu ]; then TR=(--size 64 --batch-sizes 2 --precisions fp32 --repeats 1); else
    TR=(--size 256 --batch-sizes 16 --precisions fp32 bf16 --repeats 5); fi
run_to "$OUT/translate_speed.md" "$(left 75)" "$PY" benchmarks/translate_speed.py --device "$DEVICE" "${TR[@]}" \
    --modes off compile
cat "$OUT/translate_speed.md" >> "$SUMMARY"

fi

section "done"
note "total ${SECONDS}s"
rm -rf "$WORK"
