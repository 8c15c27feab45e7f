#!/usr/bin/env bash
# Make the pictures of the documentation (docs/images/*.png) from short runs on the CPU:
#   overview.png       the demo's overview (bash scripts/demo.sh: FastCUT, 600 iterations, 64 px)
#   report-table.png   the top of a report's gallery.html: the Results table and comparisons
#   report-curves.png  the report's loss curves (losses.png)
#   worst.png          the report's gallery page, 3000 px high: crop it to the worst translations
#   serve.png          the web page of `unpaired serve` after translating a few photos
# The report rows are CUT and CUT with focal PatchNCE on people2outline (../shared/data, 64 px crops,
# networks at a quarter width, 300 iterations each, validation every 100), scored on the test split.
# Needs chromium (apt-get install chromium) and an otherwise idle CPU: tens of minutes on 2 cores.
#   bash scripts/docs_pictures.sh            # OUT=runs/docs-pictures by default
# Parts already in OUT (the demo, a trained and evaluated run) are reused, so a rerun only redoes
# the screenshots; DEMO=DIR takes the demo's overview from a demo run elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
OUT=${OUT:-runs/docs-pictures}
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
  "$U" train --model "$m" --data "$OUT/p2o" --out "$OUT/runs/$m" --size 64 --iters 300 \
    --set model.ngf=16 --set model.ndf=16 --val-every 100 --val-unit iter --val-num 16 --quiet
  "$U" evaluate run "$OUT/runs/$m" --data "$OUT/p2o" --split test
done
"$U" report "$OUT/runs/cut" "$OUT/runs/cut-focal" --out "$OUT/report" --worst 4 --gallery-limit 4
cp "$(find "$OUT/report" -name losses.png | head -1)" "$IMAGES/report-curves.png"
shot "file://$PWD/$OUT/report/gallery.html" "$IMAGES/report-table.png" 1100
shot "file://$PWD/$OUT/report/gallery.html" "$IMAGES/worst.png" 3000

.venv/bin/python scripts/serve_screenshot.py "$OUT/runs/cut" "$OUT/p2o/testA" --out "$OUT/serve" --n 4
cp "$OUT/serve/3-results.png" "$IMAGES/serve.png"
ls -l "$IMAGES"
echo "docs_pictures: wrote $IMAGES; crop or shrink them to a few hundred KB in all before committing"
