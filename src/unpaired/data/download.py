"""Official datasets of the CycleGAN, pix2pix and CUT papers: resumable download, verification,
safe extraction, then a split (see :mod:`unpaired.data.splits`).

Without network, ``--archive FILE`` takes a file downloaded elsewhere through the same checks.
"""

from __future__ import annotations

import bz2
import errno
import gzip
import lzma
import shutil
import socket
import tarfile
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from ..errors import UnpairedError
from ..files import make_dir, write_error
from .images import file_sha256
from .splits import SPLITS, SplitError

# errors of writing, not of reading a corrupt archive
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS}


class DownloadError(UnpairedError, RuntimeError):
    """A download, verification or extraction failed; the message says what to do."""


@dataclass(frozen=True)
class Archive:
    urls: tuple[str, ...]
    filename: str
    size: int | None  # bytes, where published
    sha256: str | None  # where published
    description: str
    checksum_source: str = ""


# SHA-256 and sizes of the CycleGAN archives as recorded by TensorFlow Datasets
# (tensorflow_datasets/url_checksums/cycle_gan.txt); the pix2pix and CUT archives have no
# published checksum: their internal CRCs are verified and their SHA-256 goes into the manifest.
DATASETS: dict[str, Archive] = {
    "maps": Archive(
        ("http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/maps.tar.gz",),
        "maps.tar.gz",
        None,
        None,
        "satellite <-> map, pix2pix layout: 1096 train + 1098 val side-by-side pairs of 1200x600 "
        "(the thesis's dataset; val/ becomes the test split)",
    ),
    "horse2zebra": Archive(
        (
            "http://efrosgans.eecs.berkeley.edu/cyclegan/datasets/horse2zebra.zip",
            "https://people.eecs.berkeley.edu/~taesung_park/CycleGAN/datasets/horse2zebra.zip",
        ),
        "horse2zebra.zip",
        116_867_962,
        "a74d9d392eecca9966b51287a76ca126af473d9de4f3e8fc0e9cda08fa1730a1",
        "horse <-> zebra, CycleGAN layout (trainA/trainB/testA/testB, 256x256)",
        "TensorFlow Datasets",
    ),
    "grumpifycat": Archive(
        (
            "http://efrosgans.eecs.berkeley.edu/cyclegan/datasets/grumpifycat.zip",
            "https://people.eecs.berkeley.edu/~taesung_park/CycleGAN/datasets/grumpifycat.zip",
        ),
        "grumpifycat.zip",
        None,
        None,
        "cat -> grumpy cat, the CUT paper's small dataset (CycleGAN layout)",
    ),
    "maps-cyclegan": Archive(
        (
            "http://efrosgans.eecs.berkeley.edu/cyclegan/datasets/maps.zip",
            "https://people.eecs.berkeley.edu/~taesung_park/CycleGAN/datasets/maps.zip",
        ),
        "maps.zip",
        1_476_754_427,
        "639534f69dbf9f36bef8d6292a7698006361221f83f0285d7c9ca78afe6e8a9e",
        "satellite <-> map, CycleGAN layout (600x600 halves already separated)",
        "TensorFlow Datasets",
    ),
}


def download(url: str, dest: Path, expected_size: int | None = None, timeout: float = 15.0) -> Path:
    """Download ``url`` to ``dest``, resuming a previous partial ``dest.part`` with an HTTP Range request."""
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "unpaired"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and expected_size is not None and have == expected_size:
            part.replace(dest)  # already complete
            return dest
        raise DownloadError(f"{url} answered HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, socket.timeout, OSError) as e:
        reason = getattr(e, "reason", e)
        raise DownloadError(f"cannot reach {url} ({reason})") from None
    with response:
        resumed = have and response.status == 206
        if not resumed:
            have = 0  # the server ignored the range: start again
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else expected_size
        with (
            open(part, "ab" if resumed else "wb") as f,
            tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=dest.name) as bar,
        ):
            try:
                for block in iter(lambda: response.read(1 << 20), b""):
                    f.write(block)
                    bar.update(len(block))
            except (OSError, socket.timeout) as e:
                raise DownloadError(
                    f"the transfer of {url} broke off ({e}); run the same command again to "
                    f"resume from {part.stat().st_size if part.exists() else 0} bytes"
                ) from None
    got = part.stat().st_size
    if total is not None and got != total:
        raise DownloadError(f"{url}: received {got} of {total} bytes; run the same command again to resume")
    part.replace(dest)
    return dest


def verify(path: Path, size: int | None, sha256: str | None, what: str) -> str:
    """Check size and SHA-256 where known; returns the SHA-256."""
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        raise DownloadError(
            f"{path} has {actual_size} bytes but {what} has {size}: the file is incomplete or "
            f"not the official archive; delete it and download it again"
        )
    digest = file_sha256(path)
    if sha256 is not None and digest != sha256.lower():
        raise DownloadError(
            f"checksum mismatch for {path}: SHA-256 {digest}, expected {sha256} ({what}); "
            f"the file is corrupt or not the official archive. Delete it and download it again"
        )
    return digest


def extract(archive: Path, dest: Path) -> Path:
    """Extract a .zip or .tar(.gz) safely (no member may land outside ``dest``), checking its CRCs."""
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()

    def safe(name: str) -> Path:
        target = (root / name).resolve()
        if root not in target.parents and target != root:
            raise DownloadError(f"{archive} contains an unsafe path {name!r}; refusing to extract it")
        return target

    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                for info in z.infolist():
                    safe(info.filename)
                bad = z.testzip()
                if bad is not None:
                    raise DownloadError(f"{archive} is corrupt: CRC check failed for {bad}; download it again")
                z.extractall(root)
        elif tarfile.is_tarfile(archive):
            _read_compressed_to_end(archive)
            with tarfile.open(archive) as t:
                members = t.getmembers()
                for m in members:
                    safe(m.name)
                    if m.issym() or m.islnk() or m.isdev():
                        raise DownloadError(f"{archive} contains a link or device {m.name!r}; refusing to extract it")
                t.extractall(root, members=members)
        else:
            raise DownloadError(f"{archive} is neither a zip nor a tar archive")
    except OSError as e:
        if e.errno in WRITE_ERRNOS:  # writing the extracted files failed (disk full, ...), not the archive
            raise write_error(e.filename or dest, e) from None
        raise DownloadError(f"{archive} is corrupt or truncated ({e}); download it again") from None
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, lzma.LZMAError) as e:
        raise DownloadError(f"{archive} is corrupt or truncated ({e}); download it again") from None
    return root


def _read_compressed_to_end(path: Path) -> None:
    """Decompress a .gz/.bz2/.xz stream to its end: only there are its CRC and length checked
    (tarfile stops reading at the end-of-archive marker and would miss a corrupt member)."""
    with open(path, "rb") as f:
        magic = f.read(6)
    opener = (
        gzip.open
        if magic[:2] == b"\x1f\x8b"
        else bz2.open
        if magic[:3] == b"BZh"
        else lzma.open
        if magic == b"\xfd7zXZ\x00"
        else None
    )
    if opener is not None:
        with opener(path, "rb") as stream:
            while stream.read(1 << 20):
                pass


def find_dataset_root(folder: Path) -> Path:
    """The folder inside an extracted archive that holds trainA/ or train/ (searching two levels down)."""
    candidates = (
        [folder]
        + sorted(p for p in folder.iterdir() if p.is_dir())
        + sorted(q for p in folder.iterdir() if p.is_dir() for q in p.iterdir() if q.is_dir())
    )
    for c in candidates:
        if (c / "trainA").is_dir() or any((c / s).is_dir() for s in SPLITS):
            return c
    raise SplitError(f"no trainA/ or train/ folder found in {folder}: the archive does not have a known layout")


def fetch(
    name: str, out: Path, archive: Path | None = None, sha256: str | None = None, cache: Path | None = None
) -> tuple[Path, str]:
    """Get dataset ``name`` (downloading unless ``archive`` is given), verify and extract it.

    Returns (folder with the dataset's own layout, archive SHA-256). ``sha256`` overrides the
    registry's checksum (for a re-packed archive or a mirror).
    """
    if name not in DATASETS:
        raise DownloadError(f"unknown dataset {name!r}; available: {', '.join(DATASETS)}")
    entry = DATASETS[name]
    expected = sha256 or entry.sha256
    what = "the checksum given with --sha256" if sha256 else f"the official archive ({entry.checksum_source})"
    if archive is None:
        cache = make_dir(cache or out.parent / ".downloads", "download folder")
        target = cache / entry.filename
        if not target.exists():
            errors = []
            for url in entry.urls:
                try:
                    download(url, target, entry.size)
                    break
                except DownloadError as e:
                    errors.append(str(e))
            else:
                raise DownloadError(
                    "could not download "
                    + name
                    + ":\n  "
                    + "\n  ".join(errors)
                    + f"\nDownload {entry.urls[0]} on a machine with internet access and pass it with "
                    f"--archive FILE (it goes through the same checks)."
                )
        archive = target
    elif not Path(archive).is_file():
        raise DownloadError(f"--archive {archive} does not exist")
    digest = verify(Path(archive), entry.size if not sha256 else None, expected, what)
    extracted = out.parent / f".{out.name}.extract"
    if extracted.exists():
        shutil.rmtree(extracted)
    make_dir(extracted, "output folder", shown=out)
    try:
        extract(Path(archive), extracted)
        return find_dataset_root(extracted), digest
    except BaseException:  # a refused or broken archive leaves nothing behind
        shutil.rmtree(extracted, ignore_errors=True)
        raise
