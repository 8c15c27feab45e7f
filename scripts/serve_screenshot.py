#!/usr/bin/env python3
"""Use `unpaired serve` in headless Chromium as a person would, and save screenshots.

    PYTHONPATH=src python scripts/serve_screenshot.py RUN_or_FILE IMAGE_FOLDER --out DIR [--n 6]
        [--expect-name TEXT] [--expect-facts TEXT]

Starts ``unpaired serve RUN_or_FILE --port 0`` (a run folder, a checkpoint, an export, or a generator
file of the official CUT / CycleGAN code), opens the page in Debian's ``chromium`` (driven over
``--remote-debugging-pipe``: the DevTools protocol on two pipes, so nothing but the standard
library is needed), picks the first N images of IMAGE_FOLDER plus a text file named like an image
in the page's file chooser, and writes to DIR:

  1-empty.png     the page before anything is dropped
  2-progress.png  while the batch translates (progress bar part-way)
  3-results.png   the whole page afterwards: input | output pairs, download links, the error row
  translated.zip  what "Download all (.zip)" gives
  4-folder.png    after a folder is dropped on the page (nested images, a text file left out)

Checks (exit 1 with a message when one fails): every request the browser made went to the server
(external host names are also made unresolvable, as on a machine without internet); each file in
the page's zip equals the server's PNG for that input; the bad file shows the CLI's message; Ctrl-C
(SIGINT) stops the server with "stopped"; with --expect-name / --expect-facts, the page's heading
and its line of facts contain that text. Needs: apt-get install chromium.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class DevTools:
    """The Chrome DevTools protocol over --remote-debugging-pipe: JSON messages ending in NUL,
    commands written to the browser's fd 3, answers and events read from its fd 4."""

    def __init__(self, chromium: str, profile: Path, extra: list[str]):
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def wire_pipes():  # runs in the child before exec: the browser expects fds 3 and 4
            os.dup2(to_browser_r, 3)
            os.dup2(from_browser_w, 4)

        self.proc = subprocess.Popen(
            [
                chromium,
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--remote-debugging-pipe",
                f"--user-data-dir={profile}",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                *extra,
                "about:blank",
            ],
            pass_fds=(3, 4),
            preexec_fn=wire_pipes,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._next_id, self._answers, self.events = 0, {}, []
        self._cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        buf = b""
        while chunk := os.read(self._from_browser, 1 << 16):
            buf += chunk
            *messages, buf = buf.split(b"\0")
            with self._cond:
                for m in messages:
                    msg = json.loads(m)
                    if "id" in msg:
                        self._answers[msg["id"]] = msg
                    else:
                        self.events.append(msg)
                self._cond.notify_all()

    def send(self, method: str, session: str | None = None, timeout: float = 60, **params):
        with self._cond:
            self._next_id += 1
            mid = self._next_id
        msg = {"id": mid, "method": method, "params": params, **({"sessionId": session} if session else {})}
        os.write(self._to_browser, json.dumps(msg).encode() + b"\0")
        with self._cond:
            if not self._cond.wait_for(lambda: mid in self._answers, timeout):
                raise TimeoutError(f"no answer to {method} in {timeout} s")
            answer = self._answers.pop(mid)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer.get("result", {})

    def wait_event(self, method: str, timeout: float = 60):
        with self._cond:
            if not self._cond.wait_for(lambda: any(e["method"] == method for e in self.events), timeout):
                raise TimeoutError(f"no {method} event in {timeout} s")
            return next(e for e in self.events if e["method"] == method)

    def close(self):
        try:
            self.send("Browser.close", timeout=10)
        except Exception:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def fail(message: str) -> None:
    print(f"FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", help="run folder, checkpoint or exported file for unpaired serve")
    ap.add_argument("images", help="folder of photos to drop on the page")
    ap.add_argument("--out", required=True, help="folder for the screenshots and the zip")
    ap.add_argument("--n", type=int, default=6, help="how many photos (default 6)")
    ap.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    ap.add_argument("--expect-name", help="text the page's heading (the model's name) must contain")
    ap.add_argument("--expect-facts", help="text the line under it (method, iterations, crops) must contain")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not shutil.which(args.chromium):
        fail("chromium not found; apt-get install chromium")

    work = Path(tempfile.mkdtemp(prefix="serve-shot-"))
    photos = sorted(p for p in Path(args.images).iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg"})[: args.n]
    if not photos:
        fail(f"no photos in {args.images}")
    bad = work / "notes.png"
    bad.write_text("shopping list: milk, eggs\n")
    files = [*photos, bad]

    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    server = subprocess.Popen(
        [sys.executable, "-m", "unpaired", "serve", args.run, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    browser = None
    try:
        banner = [server.stdout.readline(), server.stdout.readline()]
        print("server:", *banner, end="")
        m = re.search(r"(http://127\.0\.0\.1:\d+/)", banner[1])
        if not m:
            fail(
                f"no URL in the server's output: {banner!r} {server.stderr.read() if server.poll() is not None else ''}"
            )
        url = m.group(1)

        # External names resolve to nothing, as on a machine without internet; loopback still works.
        browser = DevTools(
            args.chromium, work / "profile", ["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]
        )
        target = browser.send("Target.createTarget", url="about:blank")["targetId"]
        s = browser.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Network", "Page", "Runtime", "DOM"):
            browser.send(f"{domain}.enable", s)
        browser.send("Emulation.setDeviceMetricsOverride", s, width=1280, height=900, deviceScaleFactor=1, mobile=False)
        browser.events.clear()
        browser.send("Page.navigate", s, url=url)
        browser.wait_event("Page.loadEventFired")

        def evaluate(expr: str, await_promise: bool = False):
            r = browser.send("Runtime.evaluate", s, expression=expr, awaitPromise=await_promise, returnByValue=True)
            if "exceptionDetails" in r:
                fail(f"page script failed: {r['exceptionDetails']}")
            return r["result"].get("value")

        def screenshot(name: str, full: bool = False):
            params = {"format": "png"}
            if full:
                size = browser.send("Page.getLayoutMetrics", s)["cssContentSize"]
                params.update(
                    captureBeyondViewport=True,
                    clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
                )
            (out / name).write_bytes(base64.b64decode(browser.send("Page.captureScreenshot", s, **params)["data"]))
            print(f"wrote {out / name}")

        screenshot("1-empty.png")
        heading = evaluate("document.getElementById('model-name').textContent")
        facts = evaluate("document.getElementById('model-facts').textContent")
        print(f"page heading: {heading!r}\npage facts: {facts!r}")
        if args.expect_name and args.expect_name not in heading:
            fail(f"the page's heading {heading!r} does not contain {args.expect_name!r}")
        if args.expect_facts and args.expect_facts not in facts:
            fail(f"the page's facts {facts!r} do not contain {args.expect_facts!r}")
        root = browser.send("DOM.getDocument", s)["root"]["nodeId"]
        chooser = browser.send("DOM.querySelector", s, nodeId=root, selector="#files")["nodeId"]
        started = time.time()
        browser.send("DOM.setFileInputFiles", s, nodeId=chooser, files=[str(p.resolve()) for p in files])
        shot_progress = False
        while True:
            state, done, total = evaluate(
                "[document.body.dataset.state, +document.body.dataset.done, +document.body.dataset.total]"
            )
            if not shot_progress and state == "busy" and done >= max(1, total // 2):
                screenshot("2-progress.png")
                shot_progress = True
            if state == "idle" and total == len(files) and done == total:
                break
            if time.time() - started > 600:
                fail(f"the page translated {done} of {total} files in 10 minutes")
            time.sleep(0.2)
        print(f"page: {done} files done in {time.time() - started:.1f} s")
        time.sleep(0.5)  # let the last images lay out
        screenshot("3-results.png", full=True)

        status = evaluate("document.getElementById('status').textContent")
        errors = evaluate("[...document.querySelectorAll('.result.error')].map(c => c.innerText)")
        links = evaluate("[...document.querySelectorAll('a[download]')].map(a => a.download)")
        print(f"status line: {status!r}\nerror rows: {errors!r}\ndownload links: {links}")
        if links != [p.stem + ".png" for p in photos]:
            fail(f"download links {links}")
        if len(errors) != 1 or "cannot read image notes.png: not an image file" not in errors[0]:
            fail(f"expected one error row for notes.png, got {errors}")

        # the page's zip, checked file by file against the server's answer for the same input
        b64 = evaluate(
            "buildZip(results).then(b => b.arrayBuffer()).then(a => { const u = new Uint8Array(a);"
            " let s = '';"
            " for (let i = 0; i < u.length; i += 8192) s += String.fromCharCode(...u.subarray(i, i + 8192));"
            " return btoa(s); })",
            await_promise=True,
        )
        (out / "translated.zip").write_bytes(base64.b64decode(b64))
        with zipfile.ZipFile(out / "translated.zip") as z:
            if z.testzip() is not None or z.namelist() != [p.stem + ".png" for p in photos]:
                fail(f"zip holds {z.namelist()}")
            for p in photos:
                req = urllib.request.Request(url + "api/translate", data=p.read_bytes(), headers={"X-Filename": p.name})
                with urllib.request.urlopen(req, timeout=120) as r:
                    if r.read() != z.read(p.stem + ".png"):
                        fail(f"zip entry {p.stem}.png differs from the server's translation of {p.name}")
        print(f"wrote {out / 'translated.zip'}: {len(photos)} PNGs, each equal to the API's answer")

        # a folder dropped on the page: images below it (recursively) keep their relative paths,
        # other files are left out, as `unpaired translate FOLDER` does
        album = work / "album"
        (album / "more").mkdir(parents=True)
        shutil.copy(photos[0], album / photos[0].name)
        shutil.copy(photos[-1], album / "more" / photos[-1].name)
        (album / "readme.txt").write_text("not an image")
        evaluate("document.getElementById('clear').click()")
        drop = evaluate(
            "(() => { const r = document.getElementById('drop').getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        data = {"items": [], "files": [str(album)], "dragOperationsMask": 1}
        for kind in ("dragEnter", "dragOver", "drop"):
            browser.send("Input.dispatchDragEvent", s, type=kind, x=drop[0], y=drop[1], data=data)
        started = time.time()
        while evaluate("document.body.dataset.state") != "idle" or evaluate("+document.body.dataset.total") == 0:
            if time.time() - started > 300:
                fail("the dropped folder was not translated in 5 minutes")
            time.sleep(0.2)
        titles = evaluate("[...document.querySelectorAll('.result h2')].map(h => h.firstChild.textContent)")
        print(f"dropped folder: {titles}")
        expected = [f"album/{photos[0].name}", f"album/more/{photos[-1].name}"]
        if titles != expected:
            fail(f"dropping the folder showed {titles}, expected {expected}")
        screenshot("4-folder.png")

        requested = sorted(
            {e["params"]["request"]["url"] for e in browser.events if e["method"] == "Network.requestWillBeSent"}
        )
        outside = [u for u in requested if not u.startswith((url, "data:", "blob:"))]
        print(f"browser requests: {len(requested)} distinct URLs, all on {url}" if not outside else "")
        if outside:
            fail(f"the page requested from elsewhere: {outside}")
    finally:
        if browser is not None:
            browser.close()
        if server.poll() is None:
            server.send_signal(signal.SIGINT)
        try:
            rest, err = server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            rest, err = server.communicate()
        shutil.rmtree(work, ignore_errors=True)
    if server.returncode != 0 or "stopped" not in rest:
        fail(f"server did not stop cleanly on Ctrl-C (exit {server.returncode}): {rest!r} {err[-2000:]!r}")
    print("server log:\n  " + "\n  ".join(err.strip().splitlines()) + "\nserver: " + rest.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
