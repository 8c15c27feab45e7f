"""`unpaired serve`: the HTTP API and page against a real server on 127.0.0.1."""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import unpaired
from unpaired import checkpoint as ckpt_io
from unpaired.cli import main
from unpaired.config import ConfigError, resolve
from unpaired.data.images import ImageError, load_image
from unpaired.inference.serve import make_server
from unpaired.methods import build_model, preset

ITERATIONS = 7  # recorded in the tiny checkpoint; the page must show it


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A run folder holding a CUT checkpoint with tiny networks, saved as the Trainer saves one."""
    run = tmp_path_factory.mktemp("serve") / "tiny-run"
    cfg = resolve(preset("cut"))
    cfg.model.ngf, cfg.model.ndf, cfg.model.n_blocks = 8, 8, 2
    cfg.data.crop_size = 32
    model = build_model(cfg)
    ckpt_io.save_atomic(
        {
            "format": ckpt_io.FORMAT_VERSION,
            "config": cfg.to_dict(),
            "model": model.state_dict(),
            "progress": {"epoch": 1, "batch": 0, "iteration": ITERATIONS},
        },
        run / "checkpoints" / "latest.pt",
    )
    return run


@pytest.fixture(scope="module")
def translator(tiny_run):
    return unpaired.load(tiny_run, device="cpu")


def running(server):
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


@pytest.fixture(scope="module")
def server(translator):
    srv, thread = running(make_server(translator, port=0, log=None))
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(5)


def request(server, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.getheader("Content-Type"), r.read()
    finally:
        conn.close()


def post_image(server, data: bytes, name: str, query: str = ""):
    return request(
        server, "POST", "/api/translate" + query, data, {"Content-Type": "application/octet-stream", "X-Filename": name}
    )


def post_form(server, data: bytes, name: str | None):
    boundary = uuid.uuid4().hex
    filename = "" if name is None else f'; filename="{name}"'
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"{filename}\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return request(
        server, "POST", "/api/translate", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )


def random_image(path: Path, size, mode="RGB", seed=0) -> Path:
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0]) + (() if mode == "L" else (len(mode),))
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(path)
    return path


def cli_message(path: Path, channels: int = 3) -> str:
    """What `unpaired translate` reports for a file, with the path shortened to the file's name."""
    with pytest.raises(ImageError) as e:
        load_image(path, channels)
    return str(e.value).replace(str(path), path.name)


def test_translation_equals_the_translator_on_the_same_file(server, translator, tmp_path):
    src = random_image(tmp_path / "odd.png", (37, 29))
    expected = translator(load_image(src, translator.channels))  # what `unpaired translate` writes
    status, ctype, body = post_image(server, src.read_bytes(), "odd.png")
    assert (status, ctype) == (200, "image/png")
    got = Image.open(io.BytesIO(body))
    assert (got.size, got.mode) == (expected.size, expected.mode) == ((37, 29), "RGB")
    assert np.array_equal(np.asarray(got), np.asarray(expected))

    # the same bytes as a form upload (curl -F) and as JSON with the PNG in base64
    assert post_form(server, src.read_bytes(), "odd.png")[2] == body
    status, ctype, answer = post_image(server, src.read_bytes(), "odd.png", "?format=json")
    answer = json.loads(answer)
    assert (status, ctype) == (200, "application/json")
    assert (answer["name"], answer["width"], answer["height"], answer["mode"]) == ("odd.png", 37, 29, "RGB")
    assert base64.b64decode(answer["png_base64"]) == body


def test_answers_match_the_translate_command(server, tiny_run, tmp_path):
    """Alpha, grayscale and JPEG inputs: the API's PNGs equal the files `unpaired translate` writes."""
    src = tmp_path / "in"
    src.mkdir()
    random_image(src / "cut-out.png", (20, 17), "RGBA", seed=1)
    random_image(src / "gray.png", (16, 24), "L", seed=2)
    Image.open(random_image(tmp_path / "p.png", (30, 22), seed=3)).save(src / "photo.jpg", quality=80)
    assert (
        main(
            [
                "translate",
                str(tiny_run),
                "--input",
                str(src),
                "--output",
                str(tmp_path / "out"),
                "--device",
                "cpu",
                "--quiet",
            ]
        )
        == 0
    )
    for name in ("cut-out.png", "gray.png", "photo.jpg"):
        status, _, body = post_image(server, (src / name).read_bytes(), name)
        written = Image.open(tmp_path / "out" / (Path(name).stem + ".png"))
        got = Image.open(io.BytesIO(body))
        assert status == 200 and (got.size, got.mode) == (written.size, written.mode)
        assert np.array_equal(np.asarray(got), np.asarray(written)), name


def test_bad_files_get_the_cli_message_and_the_server_keeps_serving(server, tmp_path):
    good = random_image(tmp_path / "good.png", (12, 10))
    notes = tmp_path / "notes.png"
    notes.write_text("not a picture")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(good.read_bytes()[:60])
    for bad in (notes, empty, truncated):
        status, ctype, body = post_image(server, bad.read_bytes(), bad.name)
        assert (status, ctype) == (400, "application/json"), bad.name
        assert json.loads(body) == {"error": cli_message(bad)}
    # a form upload of a bad file, and names with folders (only the file's name is echoed back)
    status, _, body = post_form(server, notes.read_bytes(), "../../etc/notes.png")
    assert status == 400 and json.loads(body)["error"] == cli_message(notes)
    assert post_image(server, good.read_bytes(), "good.png")[0] == 200


def test_too_large_files(translator, tmp_path, monkeypatch):
    big = random_image(tmp_path / "big.png", (64, 48))
    srv, thread = running(make_server(translator, port=0, max_upload_mb=1 / 1024, log=None))  # 1 KiB limit
    try:
        status, _, body = post_image(srv, big.read_bytes(), "big.png")
        assert status == 413
        assert re.fullmatch(
            r"cannot read image big\.png: too large \(0\.0 MB; this server accepts files up to "
            r"0\.000976562 MB, see unpaired serve --max-upload-mb\)",
            json.loads(body)["error"],
        )
        # more pixels than Pillow decodes (a decompression bomb): the loader's own message
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # refused above 2 x 100 pixels
        small = random_image(tmp_path / "small.png", (20, 15))
        message = cli_message(small)
        assert "too large to decode" in message
        status, _, body = post_image(srv, small.read_bytes(), "small.png")
        assert status == 400 and json.loads(body)["error"] == message
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(5)


def test_other_requests_are_answered_in_json(server):
    status, ctype, body = request(server, "GET", "/nothing-here")
    assert (status, ctype) == (404, "application/json") and "POST /api/translate" in json.loads(body)["error"]
    status, _, body = request(server, "POST", "/api/other", b"x")
    assert status == 404
    for name in (None, ""):  # a plain text field; a browser's file field with no file chosen
        status, _, body = post_form(server, b"hello", name)
        assert status == 400 and "no file field" in json.loads(body)["error"]


def test_page_shows_the_model_and_references_nothing_outside(server):
    status, ctype, body = request(server, "GET", "/")
    page = body.decode("utf-8")
    assert (status, ctype) == (200, "text/html; charset=utf-8")
    assert '<h1 id="model-name">tiny-run</h1>' in page
    assert f"CUT · {ITERATIONS} training iterations · trained on 32 px crops · RGB" in page
    assert not re.search(r"https?://|//[a-z0-9-]+\.[a-z]", page, re.I)  # no link, script, font or image from afar
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=\"(?!data:)", page)  # nothing loaded, even locally
    status, _, body = request(server, "GET", "/api/info")
    info = json.loads(body)
    assert status == 200 and info["iterations"] == ITERATIONS and info["method"] == "cut"
    assert (info["name"], info["display_name"], info["channels"]) == ("tiny-run", "CUT", 3)


def test_a_translator_that_describes_itself_is_shown_as_it_says(translator):
    """The page shows what a translator's ``info`` says about its model."""

    class Described:
        channels, config, device, source = 3, None, "cpu", "model.safetensors"
        info = {
            "method": "fastcut",
            "display_name": "FastCUT",
            "iterations": 1234,
            "source": "x/model.safetensors",
            "input_multiple": 4,
            "channels": 3,
        }

        def translate_image(self, im):
            return translator.translate_image(im)

    srv = make_server(Described(), port=0, log=None)
    try:
        page = srv.page.decode()
        assert '<h1 id="model-name">model.safetensors</h1>' in page and "FastCUT · 1,234 training iterations" in page
    finally:
        srv.server_close()


def test_a_checkpoint_file_is_named_after_its_run(tiny_run):
    from unpaired.inference.serve import model_info

    info = model_info(unpaired.load(tiny_run / "checkpoints" / "latest.pt", device="cpu"))
    assert (info["name"], info["iterations"]) == ("tiny-run (latest.pt)", ITERATIONS)


def test_port_in_use_or_out_of_range_is_one_clear_error(server, translator):
    with pytest.raises(ConfigError, match=rf"port {server.server_address[1]} on 127.0.0.1 is in use"):
        make_server(translator, port=server.server_address[1], log=None)
    with pytest.raises(ConfigError, match="--port must be between 0 and 65535"):
        make_server(translator, port=70000, log=None)


@pytest.mark.parametrize("sigint_ignored", [False, True])
def test_command_prints_the_url_and_stops_on_ctrl_c(tiny_run, sigint_ignored):
    # sigint_ignored: started like `unpaired serve RUN &` from a script, which inherits SIGINT ignored
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src"), "OMP_NUM_THREADS": "1"}
    ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint_ignored else None
    proc = subprocess.Popen(
        [sys.executable, "-m", "unpaired", "serve", str(tiny_run), "--port", "0", "--device", "cpu"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=ignore,
    )
    try:
        first, second = proc.stdout.readline(), proc.stdout.readline()
        assert first.startswith(f"serving tiny-run (CUT, {ITERATIONS} iterations) on cpu"), first
        url = re.fullmatch(r"open (http://127\.0\.0\.1:(\d+)/) in a browser; Ctrl-C stops\n", second)
        assert url, second
        conn = http.client.HTTPConnection("127.0.0.1", int(url.group(2)), timeout=30)
        conn.request("GET", "/")
        assert conn.getresponse().status == 200
        conn.close()
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail(f"the server did not stop within 60 s of Ctrl-C; its stderr: {proc.communicate()[1][-2000:]}")
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and out == "stopped\n" and "Traceback" not in err


def test_declared_oversize_upload_is_refused_at_once(translator):
    """A request that declares a body over --max-upload-mb (10 GB, limit 5 MB) but sends a few bytes
    gets its 413 at once and the connection closed, instead of a thread waiting for the body."""
    srv, thread = running(make_server(translator, port=0, max_upload_mb=5, log=None))
    try:
        with socket.create_connection(("127.0.0.1", srv.server_address[1]), timeout=5) as s:
            started = time.perf_counter()
            s.sendall(
                b"POST /api/translate HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
                b"X-Filename: huge.png\r\nContent-Length: 10000000000\r\n\r\n\x89PNG"
            )
            received = b""
            while chunk := s.recv(65536):  # the server closes: recv returns b"" instead of timing out
                received += chunk
            seconds = time.perf_counter() - started
        head, _, body = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.0 413") or head.startswith(b"HTTP/1.1 413"), head
        assert "too large (9536.7 MB; this server accepts files up to 5 MB" in json.loads(body)["error"]
        assert seconds < 2, seconds
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(5)
