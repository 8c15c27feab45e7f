"""A small document model rendered to Markdown and to self-contained HTML, so that a report says
the same thing in both (headings, paragraphs with bold spans, tables, images, image grids)."""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from ..data.images import load_image

Text = Union[str, list]  # a string, or a list of str / Bold / Code spans


@dataclass
class Bold:
    text: str


@dataclass
class Code:
    text: str


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Paragraph:
    text: Text


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    align_left: int = 1  # the first columns are text (left-aligned), the others numbers


@dataclass
class Figure:
    """An image file (a plot): linked from the Markdown, embedded in the HTML."""

    path: Path
    caption: str = ""


@dataclass
class Grid:
    """Images (PIL) with captions, in the HTML only; the Markdown says where they are."""

    images: list[tuple[str, Any]]
    note: str = ""


@dataclass
class Document:
    title: str
    blocks: list = field(default_factory=list)

    def add(self, *blocks) -> "Document":
        self.blocks.extend(blocks)
        return self

    # ------------------------------------------------------------------ Markdown
    def to_markdown(self) -> str:
        out = [f"# {self.title}", ""]
        for b in self.blocks:
            if isinstance(b, Heading):
                out += ["#" * b.level + " " + b.text, ""]
            elif isinstance(b, Paragraph):
                out += [_md_text(b.text), ""]
            elif isinstance(b, Table):
                out.append("| " + " | ".join(b.header) + " |")
                out.append("|" + "|".join("---" if i < b.align_left else "---:" for i in range(len(b.header))) + "|")
                out += ["| " + " | ".join(row) + " |" for row in b.rows]
                out.append("")
            elif isinstance(b, Figure):
                out += [f"![{b.caption or b.path.stem}]({b.path.name})", ""]
            elif isinstance(b, Grid):
                if b.note:
                    out += [b.note, ""]
        return "\n".join(out).rstrip() + "\n"

    # ------------------------------------------------------------------ HTML
    def to_html(self) -> str:
        parts = [
            "<!doctype html><html><head><meta charset='utf-8'>",
            f"<title>{html.escape(self.title)}</title><style>",
            "body{font-family:sans-serif;margin:2em;max-width:1250px;line-height:1.4}",
            "table{border-collapse:collapse;margin:0.5em 0 1.2em}",
            "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f3f3f3}",
            "td.l,th.l{text-align:left}.grid{display:flex;flex-wrap:wrap;gap:10px}figure{margin:0}",
            "figcaption{font-size:11px;color:#555}img.t{height:128px;image-rendering:pixelated}",
            "</style></head><body>",
            f"<h1>{html.escape(self.title)}</h1>",
        ]
        for b in self.blocks:
            if isinstance(b, Heading):
                parts.append(f"<h{b.level}>{html.escape(b.text)}</h{b.level}>")
            elif isinstance(b, Paragraph):
                parts.append(f"<p>{_html_text(b.text)}</p>")
            elif isinstance(b, Table):

                def cell(tag, i, text, align_left=b.align_left):
                    cls = " class='l'" if i < align_left else ""
                    return f"<{tag}{cls}>{html.escape(text)}</{tag}>"

                parts.append(
                    "<table><tr>"
                    + "".join(cell("th", i, h) for i, h in enumerate(b.header))
                    + "</tr>"
                    + "".join("<tr>" + "".join(cell("td", i, c) for i, c in enumerate(row)) + "</tr>" for row in b.rows)
                    + "</table>"
                )
            elif isinstance(b, Figure):
                parts.append(
                    f"<figure><img src='{data_uri(b.path)}' style='max-width:100%'>"
                    + (f"<figcaption>{html.escape(b.caption)}</figcaption>" if b.caption else "")
                    + "</figure>"
                )
            elif isinstance(b, Grid):
                parts.append(
                    "<div class='grid'>"
                    + "".join(
                        f"<figure><img class='t' src='{data_uri(im)}'>"
                        f"<figcaption>{html.escape(name)}</figcaption></figure>"
                        for name, im in b.images
                    )
                    + "</div>"
                )
        parts.append("</body></html>")
        return "\n".join(parts)


def _spans(text: Text) -> list:
    return [text] if isinstance(text, str) else list(text)


def _md_text(text: Text) -> str:
    return "".join(
        f"**{s.text}**" if isinstance(s, Bold) else f"`{s.text}`" if isinstance(s, Code) else s for s in _spans(text)
    )


def _html_text(text: Text) -> str:
    return "".join(
        f"<strong>{html.escape(s.text)}</strong>"
        if isinstance(s, Bold)
        else f"<code>{html.escape(s.text)}</code>"
        if isinstance(s, Code)
        else html.escape(s)
        for s in _spans(text)
    )


def data_uri(path_or_image) -> str:
    """A PNG data URI of an image file or a PIL image (the HTML report needs no other file)."""
    buf = io.BytesIO()
    im = path_or_image if not isinstance(path_or_image, (str, Path)) else load_image(path_or_image, 3)
    im.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
