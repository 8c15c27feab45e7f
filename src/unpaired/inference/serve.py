"""``unpaired serve``: a local web page and HTTP API that translate images with a trained model.

One self-contained page (``serve_page.html``: inline CSS and JavaScript, system fonts, no request
leaves the machine) and a small API, served by the standard library's ``ThreadingHTTPServer``:

* ``GET /`` the page; ``GET /api/info`` the model's description as JSON;
* ``POST /api/translate`` one image, as the raw request body (name in an ``X-Filename`` header or a
  ``?name=`` parameter) or as multipart form data (``curl -F image=@photo.jpg``). Answers the
  translated PNG, or JSON with the PNG in base64 with ``?format=json``; a file that cannot be used
  gets HTTP 400 (413 when too large) and ``{"error": message}`` with the message ``unpaired translate``
  prints for it.

Why not Gradio, which issue 13 asks for unless it cannot work offline here (checked 2026-11-28,
gradio 6.31.0 in a fresh venv, a tiny Blocks app with two Image components): its page itself
loaded only from 127.0.0.1 in headless Chromium (fonts are bundled), but
(1) with default settings the server looked up api.gradio.app and huggingface.co at launch and
again when the page was requested (strace; GRADIO_ANALYTICS_ENABLED=False set before the import
stops it, so being offline would rest on an environment variable and on future releases adding no
new call); (2) the HTML it serves names external hosts (an og:image on raw.githubusercontent.com,
API examples fetching raw.githubusercontent.com, a gradio.app link), and its script bundle holds
code paths that load from huggingface.co and unpkg.com, so "no external reference" cannot be
asserted by a test; (3) it pins pillow<13 (this project's environment has pillow 13.0), 56 packages
and 367 MB in all, ~3 s to import; (4) its API is an upload + queue + server-sent-events protocol
whose errors arrive as HTTP 200, while per-file errors with the CLI's messages, input | output pairs
each with a download link and a zip of all would need custom HTML in Gradio anyway. So: a small
page of our own with no dependency beyond the package's.
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import errno
import html
import io
import json
import signal
import socket
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path, PurePosixPath, PureWindowsPath
from urllib.parse import parse_qs, unquote, urlsplit

from PIL import Image

from ..config import ConfigError
from ..data.images import IMAGE_EXTENSIONS, ImageError, decode_image
from ..runs import RunFolder
from .translator import load

DEFAULT_PORT = 7860
DEFAULT_MAX_UPLOAD_MB = 100
_CHUNK = 1 << 20


# ----------------------------------------------------------------------------- what the page shows
def _source_name(source: Path) -> str:
    """A run folder's name; a checkpoint inside a run as 'run (latest.pt)'; another file's name."""
    source = source.resolve() if source.name in ("", ".", "..") else source
    run = RunFolder.of_checkpoint(source)
    if run is not None:
        return f"{run.path.name} ({source.name})"
    return source.name


def model_info(translator) -> dict:
    """What the page shows about a :class:`~unpaired.translate.Translator`: its ``info`` (method,
    display_name, iterations, source, input_multiple, channels, train_size, format) plus name (the
    run folder's or file's name)."""
    info = dict(translator.info)
    info.setdefault("name", _source_name(Path(str(info.get("source") or "model"))))
    return info


# ----------------------------------------------------------------------------- translating uploads
class UploadError(Exception):
    """A request that carries no usable upload; ``status`` is its HTTP status."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def upload_name(raw: str | None) -> str:
    """The file name a client gave, without folders (it only names the file in messages)."""
    name = unquote(raw or "").strip()
    name = PureWindowsPath(PurePosixPath(name).name).name  # drop folders of either style
    return name[:200] or "upload"


def output_name(name: str) -> str:
    """The translated file's name: the input's stem with .png, as ``unpaired translate`` names it."""
    return f"{Path(name).stem or 'image'}.png"


def png_bytes(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


class TranslationService:
    """Decodes uploads like ``unpaired translate`` loads files, and translates them one at a time."""

    def __init__(self, translator, max_upload_bytes: int = DEFAULT_MAX_UPLOAD_MB << 20):
        self.translator = translator
        self.info = model_info(translator)
        self.max_upload_bytes = max_upload_bytes
        # One translation at a time: the CPU cores (or the GPU) are shared by every request anyway.
        self._lock = threading.Lock()

    def too_large(self, name: str, size: int) -> str:
        return (
            f"cannot read image {name}: too large ({size / 2**20:.1f} MB; this server accepts files up to "
            f"{self.max_upload_bytes / 2**20:g} MB, see unpaired serve --max-upload-mb)"
        )

    def translate(self, data: bytes, name: str) -> Image.Image:
        """The translation of an uploaded file; :class:`ImageError` with the CLI's message if unusable."""
        im = decode_image(data, name, self.translator.channels)
        with self._lock:
            return self.translator.translate_image(im)


# ----------------------------------------------------------------------------- the page
def render_page(info: dict) -> bytes:
    """The page with the model's description filled in (escaped for HTML and for the inline script)."""
    template = resources.files(__package__).joinpath("serve_page.html").read_text(encoding="utf-8")
    iters = info.get("iterations")
    facts = [str(info.get("display_name") or info.get("method"))]
    if info.get("official_file"):  # a file of the official CUT / CycleGAN code
        facts[0] += f" (official checkpoint {info['official_file']})"
    if iters is not None:
        facts.append(f"{iters:,} training iterations")
    if info.get("train_size"):
        facts.append(f"trained on {info['train_size']} px crops")
    facts.append("grayscale" if info.get("channels") == 1 else "RGB")
    page_info = {**info, "extensions": sorted(IMAGE_EXTENSIONS)}
    script_json = json.dumps(page_info).replace("<", "\\u003c")  # no '</script>' inside the script
    return (
        template.replace("{{NAME}}", html.escape(str(info["name"])))
        .replace("{{FACTS}}", html.escape(" · ".join(facts)))
        .replace("{{SOURCE}}", html.escape(str(info.get("source", ""))))
        .replace("{{INFO_JSON}}", script_json)
        .encode("utf-8")
    )


# ----------------------------------------------------------------------------- HTTP
class _Handler(BaseHTTPRequestHandler):
    server: TranslationServer
    protocol_version = "HTTP/1.1"  # keep-alive: the page sends one request per image
    server_version = "unpaired-serve"

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass  # no access log; translations and failures are logged by _log

    def _log(self, line: str) -> None:
        if self.server.log is not None:
            print(line, file=self.server.log, flush=True)

    def _send(self, status: int, body: bytes, content_type: str, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, obj: dict) -> None:
        self._send(status, json.dumps(obj).encode("utf-8"), "application/json")

    def handle_one_request(self):
        try:
            super().handle_one_request()
        except (BrokenPipeError, ConnectionResetError):  # the browser went away mid-answer
            self.close_connection = True

    def do_GET(self):
        path = urlsplit(self.path).path
        if path == "/":
            self._send(200, self.server.page, "text/html; charset=utf-8")
        elif path == "/api/info":
            self._json(200, self.server.service.info)
        else:
            self._json(404, {"error": f"nothing at {path}; the page is at / and the API at POST /api/translate"})

    def do_POST(self):
        url = urlsplit(self.path)
        if url.path != "/api/translate":
            self._drain(self._content_length(required=False) or 0)
            self._json(404, {"error": f"nothing at POST {url.path}; send images to POST /api/translate"})
            return
        query = parse_qs(url.query)
        name = upload_name(self.headers.get("X-Filename") or query.get("name", [None])[0])
        try:
            name, data = self._read_upload(name)
            started = time.perf_counter()
            out = self.server.service.translate(data, name)
        except UploadError as e:
            self._log(f"refused {name}: {e}")
            self._json(e.status, {"error": str(e)})
            if getattr(self, "refused_body", False):
                self._close_unread()
            return
        except ImageError as e:
            self._log(f"refused {name}: {e}")
            self._json(400, {"error": str(e)})
            return
        except Exception as e:  # a bug or an out-of-memory: answer it, log it, keep serving
            self._log(f"failed on {name}:\n{traceback.format_exc()}")
            self._json(500, {"error": f"could not translate {name}: {type(e).__name__}: {e}"})
            return
        seconds = time.perf_counter() - started
        self._log(f"translated {name} ({out.width}x{out.height}) in {seconds:.2f} s")
        body, out_name = png_bytes(out), output_name(name)
        if query.get("format", [""])[0] == "json":
            self._json(
                200,
                {
                    "name": out_name,
                    "width": out.width,
                    "height": out.height,
                    "mode": out.mode,
                    "seconds": round(seconds, 4),
                    "png_base64": base64.b64encode(body).decode("ascii"),
                },
            )
        else:
            self._send(
                200,
                body,
                "image/png",
                {"Content-Disposition": f'inline; filename="{out_name}"', "X-Seconds": f"{seconds:.4f}"},
            )

    def _content_length(self, required: bool = True) -> int | None:
        raw = self.headers.get("Content-Length")
        if raw is None:
            if required:
                self.close_connection = True
                raise UploadError(
                    411,
                    "send the image as the request body with a Content-Length "
                    "(curl --data-binary @FILE) or as a form field (curl -F image=@FILE)",
                )
            return None
        try:
            length = int(raw)
            if length < 0:
                raise ValueError
        except ValueError:
            self.close_connection = True
            raise UploadError(400, f"bad Content-Length header {raw!r}") from None
        return length

    def _close_unread(self) -> None:
        """Close a connection whose body is left unread without losing our answer: closing a socket
        with unread data sends a reset, which can discard the answer before the client reads it.
        So: flush, stop sending, then read what has already arrived for at most a second."""
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(0.2)
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline and self.connection.recv(_CHUNK):
                pass
        except OSError:
            pass

    def _drain(self, length: int) -> None:
        """Read and drop a body that will not be used, so the client gets our answer, not a reset."""
        while length > 0:
            chunk = self.rfile.read(min(_CHUNK, length))
            if not chunk:
                break
            length -= len(chunk)

    def _read_upload(self, name: str) -> tuple[str, bytes]:
        length = self._content_length()
        service = self.server.service
        if length > service.max_upload_bytes:
            # answer at once and close: reading (or waiting for) a body we refuse would hold this
            # thread for as long as the client takes, for a declared 10 GB possibly forever
            self.close_connection = True
            self.refused_body = True
            raise UploadError(413, service.too_large(name, length))
        body = self.rfile.read(length)
        if len(body) != length:
            self.close_connection = True
            raise UploadError(400, f"the upload of {name} ended after {len(body)} of {length} bytes")
        content_type = self.headers.get("Content-Type", "")
        if not content_type.lower().startswith("multipart/form-data"):
            return name, body
        # multipart: the first part that carries a file name is the image (curl -F image=@photo.jpg)
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
        )
        for part in message.iter_parts() if message.is_multipart() else ():
            if part.get_filename():  # a browser's empty file field has filename=""
                return upload_name(part.get_filename()), part.get_payload(decode=True) or b""
        raise UploadError(400, "the form has no file field; send the image as e.g. curl -F image=@photo.jpg")


class TranslationServer(ThreadingHTTPServer):
    """The page and API for one model. ``port=0`` picks a free port; :attr:`url` says which."""

    daemon_threads = True  # Ctrl-C does not wait for a translation in flight

    def __init__(self, service: TranslationService, host: str = "127.0.0.1", port: int = DEFAULT_PORT, log=sys.stderr):
        self.service, self.log, self.host = service, log, host
        self.page = render_page(service.info)
        if ":" in host:
            self.address_family = socket.AF_INET6
        try:
            super().__init__((host, port), _Handler)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise ConfigError(
                    f"port {port} on {host} is in use (another server?); pass another "
                    f"--port, or --port 0 for any free one"
                ) from None
            raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None

    @property
    def url(self) -> str:
        port = self.server_address[1]
        # a server on every interface is also on the loopback one, which a local browser can open
        shown = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)
        return f"http://[{shown}]:{port}/" if ":" in shown else f"http://{shown}:{port}/"


def make_server(
    translator,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
    log=sys.stderr,
) -> TranslationServer:
    """A server (not yet serving: call ``serve_forever``) for a loaded :class:`Translator`."""
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be between 0 and 65535 (0 = any free port), got {port}")
    if max_upload_mb <= 0:
        raise ConfigError(f"--max-upload-mb must be positive, got {max_upload_mb:g}")
    return TranslationServer(TranslationService(translator, int(max_upload_mb * 2**20)), host, port, log)


def serve(
    model: str | Path,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    device: str = "auto",
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
    which: str = "latest",
) -> int:
    """Load ``model`` (run folder, its ``which`` checkpoint; checkpoint or exported file), print the
    page's URL and serve it until Ctrl-C."""
    translator = load(model, device=device, checkpoint=which)
    server = make_server(translator, host, port, max_upload_mb)
    info = server.service.info
    iters = f", {info['iterations']:,} iterations" if info.get("iterations") is not None else ""
    print(f"serving {info['name']} ({info['display_name']}{iters}) on {translator.device}")
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"note: listening on {host}: other computers that can reach this one can use the page too")
    previous = _stop_on_signals()  # before the URL is out: a Ctrl-C from then on stops the server
    print(f"open {server.url} in a browser; Ctrl-C stops", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped", flush=True)
    finally:
        server.server_close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _stop_on_signals() -> dict:
    """Make Ctrl-C and SIGTERM (kill, a service manager) stop the server; returns the old handlers.

    SIGINT gets Python's default handler explicitly: a process started in the background of a
    non-interactive shell inherits SIGINT *ignored*, and Python then installs no handler, so the
    page would say "Ctrl-C stops" and Ctrl-C would not."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {
        signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler),
        signal.SIGTERM: signal.signal(signal.SIGTERM, _interrupt),
    }


__all__ = ["model_info", "make_server", "serve", "TranslationServer", "TranslationService"]
