#!/usr/bin/env bash
# Make the pictures of the documentation (docs/images/*.png) from short runs on the CPU:
#   overview.png       the demo's overview (bash scripts/demo.sh: FastCUT, 600 iterations, 64 px)
#   report-table.png   the top of a report's gallery.html: the Results table and comparisons
#   report-curves.png  the report's loss curves (losses.png)
#   worst.png          the report's gallery from its first row on: test triptychs and the worst ones
#   serve.png          the web page of `unpaired serve` after translating a few test photos (shrunk
#                      to the scale the run was trained at: 64 px crops of 72 px images)
# The report rows are CUT and CUT with focal PatchNCE on people2outline (../shared/data, 64 px crops,
# networks at a quarter width, ITERS=3000 iterations each, validation every 1000), scored on the
# test split. The pictures are then stored with a 256-colour palette (a few hundred KB in all).
# Needs chromium (apt-get install chromium) and an otherwise idle CPU: about 15 minutes on 2 cores.
#   bash scripts/docs_pictures.sh            # OUT=runs/docs-pictures by default
# Parts already in OUT (the demo, a trained and evaluated run) are reused, so a rerun only redoes
# the screenshots; DEMO=DIR takes the demo's overview from a demo run elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
OUT=${OUT:-runs/docs-pictures}
ITERS=${ITERS:-3000}
DATA=${DATA:-../shared/data/people2outline}
U=.venv/bin/unpaired
IMAGES=docs/images
mkdir -p "$OUT" "$IMAGES"
shot() {  # shot URL FILE HEIGHT: a 1280-wide headless screenshot
  chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size="1280,$3" \
    --screenshot="$2" "$1" 2>/dev/null
}

DEMO=${DEMO:-$OUT/demo}
[ -f "$DEMO/overview.png" ] || "$U" demo --out "$DEMO" --quiet
cp "$DEMO/overview.png" "$IMAGES/overview.png"

[ -d "$OUT/p2o" ] || "$U" data split "$DATA" --out "$OUT/p2o"
for m in cut cut-focal; do
  [ -f "$OUT/runs/$m/eval/test.json" ] && continue
  "$U" train --model "$m" --data "$OUT/p2o" --out "$OUT/runs/$m" --size 64 --iters "$ITERS" \
    --set model.ngf=16 --set model.ndf=16 --val-every $((ITERS / 3)) --val-unit iter --val-num 16 --quiet
  "$U" evaluate run "$OUT/runs/$m" --data "$OUT/p2o" --split test
done
"$U" report "$OUT/runs/cut" "$OUT/runs/cut-focal" --out "$OUT/report" --worst 4 --gallery-limit 4
cp "$(find "$OUT/report" -name losses.png | head -1)" "$IMAGES/report-curves.png"
shot "file://$PWD/$OUT/report/gallery.html" "$IMAGES/report-table.png" 1100
# the gallery from its first row of translations on (the tables and curves are pictured above)
.venv/bin/python - "$OUT/report" <<'PY'
import sys
from pathlib import Path
html = (Path(sys.argv[1]) / "gallery.html").read_text()
head, body = html.split("<h2>Results</h2>", 1)
(Path(sys.argv[1]) / "rows.html").write_text(head + body[body.index("<h3>"):])
PY
shot "file://$PWD/$OUT/report/rows.html" "$IMAGES/worst.png" 1600

# the web page on test photos at the scale the run learnt (the page translates at an image's size)
.venv/bin/python - "$OUT/p2o/testA" "$OUT/serve-inputs" <<'PY'
import sys
from pathlib import Path
from PIL import Image
src, dst = Path(sys.argv[1]), Path(sys.argv[2])
dst.mkdir(parents=True, exist_ok=True)
for p in sorted(src.iterdir())[:8]:
    im = Image.open(p).convert("RGB")
    im.resize((72, round(72 * im.height / im.width)), Image.LANCZOS).save(dst / (p.stem + ".png"))
PY
.venv/bin/python scripts/serve_screenshot.py "$OUT/runs/cut" "$OUT/serve-inputs" --out "$OUT/serve" --n 4
cp "$OUT/serve/3-results.png" "$IMAGES/serve.png"
# a 256-colour palette keeps screenshots and plots readable at a fraction of the size
.venv/bin/python - "$IMAGES" <<'PY'
import sys
from pathlib import Path
from PIL import Image
for p in sorted(Path(sys.argv[1]).glob("*.png")):
    im = Image.open(p)
    if im.mode != "P":
        im.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(p, optimize=True)
    print(f"{p}: {im.size[0]}x{im.size[1]}, {p.stat().st_size // 1024} KB")
PY
echo "docs_pictures: wrote $IMAGES"
