import hashlib
import http.server
import io
import tarfile
import threading
import time
import zipfile

import numpy as np
import pytest
from PIL import Image

from unpaired.cli import main
from unpaired.data import download as dl


def jpeg_bytes(w, h, seed):
    buf = io.BytesIO()
    arr = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(arr).save(buf, format="JPEG")
    return buf.getvalue()


def add(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


@pytest.fixture
def maps_archive(tmp_path):
    """A small archive in the official pix2pix maps layout: maps/train/*.jpg and maps/val/*.jpg."""
    path = tmp_path / "maps.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for split, n in (("train", 12), ("val", 4)):
            for i in range(n):
                add(tar, f"maps/{split}/{i + 1}.jpg", jpeg_bytes(96, 48, seed=i + 100 * len(split)))
    return path


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_maps_archive_end_to_end(maps_archive, tmp_path):
    out = tmp_path / "maps"
    assert (
        main(
            [
                "data",
                "download",
                "maps",
                "--archive",
                str(maps_archive),
                "--out",
                str(out),
                "--sha256",
                sha(maps_archive),
            ]
        )
        == 0
    )
    import json

    m = json.loads((out / "manifest.json").read_text())
    assert m["counts"] == {"trainA": 5, "trainB": 5, "valA": 2, "valB": 2, "testA": 4, "testB": 4}
    assert m["provenance"]["archive_sha256"] == sha(maps_archive) and m["origin"]["test"] == "source val/"
    assert Image.open(next((out / "trainA").iterdir())).size == (48, 48)
    assert not list(tmp_path.glob(".maps.extract*"))  # the temporary extraction is removed
    # maps has no published checksum: without --sha256 the archive's own CRCs are still checked
    assert main(["data", "download", "maps", "--archive", str(maps_archive), "--out", str(out)]) == 0


def test_corrupted_archive_rejected(maps_archive, tmp_path, capsys):
    good = sha(maps_archive)
    data = bytearray(maps_archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(bytes(data))
    assert (
        main(["data", "download", "maps", "--archive", str(bad), "--out", str(tmp_path / "o"), "--sha256", good]) == 2
    )
    err = capsys.readouterr().err
    assert "checksum mismatch" in err and str(bad) in err
    assert main(["data", "download", "maps", "--archive", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "corrupt" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_official_checksum_enforced_for_known_archives(tmp_path, capsys):
    z = tmp_path / "horse2zebra.zip"
    with zipfile.ZipFile(z, "w") as f:
        for d in ("trainA", "trainB", "testA", "testB"):
            for i in range(3):
                f.writestr(f"horse2zebra/{d}/{i}.jpg", jpeg_bytes(32, 32, seed=i))
    assert main(["data", "download", "horse2zebra", "--archive", str(z), "--out", str(tmp_path / "o")]) == 2
    assert "not the official archive" in capsys.readouterr().err
    assert (
        main(
            [
                "data",
                "download",
                "horse2zebra",
                "--archive",
                str(z),
                "--out",
                str(tmp_path / "o"),
                "--sha256",
                sha(z),
                "--val",
                "0.34",
            ]
        )
        == 0
    )
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [
        "manifest.json",
        "testA",
        "testB",
        "trainA",
        "trainB",
        "valA",
        "valB",
    ]


def test_offline_download_fails_fast_with_advice(tmp_path, monkeypatch, capsys):
    url = "http://127.0.0.1:9/maps.tar.gz"  # nothing listens on the discard port: refused at once
    monkeypatch.setitem(dl.DATASETS, "maps", dl.Archive((url,), "maps.tar.gz", None, None, "test"))
    t0 = time.time()
    assert main(["data", "download", "maps", "--out", str(tmp_path / "maps")]) == 2
    err = capsys.readouterr().err
    assert time.time() - t0 < 10 and url in err and "--archive" in err


class RangeHandler(http.server.BaseHTTPRequestHandler):
    payload = b""
    ranges: list = []

    def do_GET(self):
        start = 0
        rng = self.headers.get("Range")
        RangeHandler.ranges.append(rng)
        if rng:
            start = int(rng.split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(self.payload) - 1}/{len(self.payload)}")
        else:
            self.send_response(200)
        body = self.payload[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_download_resumes_partial_file(tmp_path):
    payload = np.random.default_rng(0).bytes(300_000)
    RangeHandler.payload, RangeHandler.ranges = payload, []
    server = http.server.HTTPServer(("127.0.0.1", 0), RangeHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/x.zip"
        dest = tmp_path / "x.zip"
        (tmp_path / "x.zip.part").write_bytes(payload[:123_456])
        dl.download(url, dest, expected_size=len(payload))
        assert dest.read_bytes() == payload and RangeHandler.ranges == ["bytes=123456-"]
        assert not (tmp_path / "x.zip.part").exists()
    finally:
        server.shutdown()


def test_unsafe_archive_member_refused(tmp_path):
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        add(tar, "../outside.txt", b"x")
    with pytest.raises(dl.DownloadError, match="unsafe path"):
        dl.extract(evil, tmp_path / "x")
    assert not (tmp_path / "outside.txt").exists()
