"""MkDocs hooks: generate the reference pages that must not drift from the code, and turn LaTeX into
MathML at build time (no JavaScript, no network: the site renders offline).

Generated on every build, before MkDocs reads the docs folder (git-ignored):
- reference/config.md: every configuration field of every section (and of each method's model
  options) with its type, default and the comment beside it in the source;
- reference/cli.md: the ``--help`` of every command and sub-command.

Maths: ``$$ ... $$`` on lines of their own is a display equation, ``\\( ... \\)`` an inline one;
fenced code blocks are left alone.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import io
import re
import sys
import tokenize
from contextlib import redirect_stdout
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
sys.path.insert(0, str(ROOT / "src"))  # the checkout's code, also when the package is not installed


# ----------------------------------------------------------------------------- configuration reference
def _field_comments(path: Path) -> dict[tuple[str, str], str]:
    """(class name, field name) -> the comment on the field's line in the source or, when that line has
    none, the comment lines right above the field."""
    source = path.read_text()
    lines = source.splitlines()
    comments = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
    out = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    text = comments.get(item.lineno, "")
                    above = item.lineno - 1
                    while not text and above in comments and lines[above - 1].lstrip().startswith("#"):
                        above -= 1
                    if not text and above < item.lineno - 1:
                        text = " ".join(comments[n] for n in range(above + 1, item.lineno))
                    out[(node.name, item.target.id)] = text
    return out


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        return repr(f.default)
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        try:
            return repr(f.default_factory())  # type: ignore[misc]
        except Exception:  # noqa: BLE001 - a factory that needs the registry: say so instead
            return "(per method)"
    return "(required)"


def _section_table(cls: type, comments: dict, own_only: bool = False) -> list[str]:
    base_fields = {f.name for c in cls.__mro__[1:] if dataclasses.is_dataclass(c) for f in dataclasses.fields(c)}
    rows = ["| option | type | default | meaning |", "|---|---|---|---|"]
    for f in dataclasses.fields(cls):
        if own_only and f.name in base_fields:
            continue
        owner = next((c for c in cls.__mro__ if (c.__name__, f.name) in comments), cls)
        meaning = comments.get((owner.__name__, f.name), "").replace("|", "\\|")
        rows.append(f"| `{f.name}` | `{f.type}` | `{_default(f)}` | {meaning} |")
    return rows


def config_reference() -> str:
    """Markdown: every section of the configuration, from the dataclasses and their source comments."""
    from unpaired import config, methods  # noqa: PLC0415 - the package, imported at build time only

    src = ROOT / "src" / "unpaired"
    comments = _field_comments(src / "config.py")
    for path in sorted((src / "models").glob("*.py")):
        comments.update(_field_comments(path))
    lines = [
        "# Configuration reference",
        "",
        "Generated from the configuration dataclasses at every build of this site, so it cannot drift from "
        "the code. Set any option in a YAML file (`model:`, `data:`, `train:` sections), with "
        "`--set section.option=value`, or in Python with `unpaired.preset(name, option=value)`.",
        "",
        "## `model`: options every method has",
        "",
        *_section_table(config.ModelConfig, comments),
        "",
    ]
    seen = set()
    for method in methods.METHODS.values():
        cls = method.config_class
        if cls in seen or cls is config.ModelConfig:
            continue
        seen.add(cls)
        users = ", ".join(f"`{n}`" for n, m in methods.METHODS.items() if m.config_class is cls)
        lines += [f"## `model`: options of {users} (`{cls.__name__}`)", "", *_section_table(cls, comments, True), ""]
    lines += ["## Method presets", "", "What each `--model` changes from the defaults above:", ""]
    for name, method in methods.METHODS.items():
        lines.append(f"- **`{name}`** ({method.display}): {method.description}")
        for section, values in method.preset.items():
            if values:
                lines.append(f"    - `{section}`: " + ", ".join(f"`{k}={v!r}`" for k, v in values.items()))
    lines += [
        "",
        "## `data`",
        "",
        *_section_table(config.DataConfig, comments),
        "",
        "## `train`",
        "",
        *_section_table(config.TrainConfig, comments),
        "",
    ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- CLI reference
def _subcommands(parser: argparse.ArgumentParser, prefix: str) -> list[tuple[str, argparse.ArgumentParser]]:
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                full = f"{prefix} {name}"
                out.append((full, sub))
                out += _subcommands(sub, full)
    return out


def cli_commands() -> list[tuple[str, str]]:
    """(command, its --help text) for every command and sub-command of ``unpaired``."""
    from unpaired.cli.app import make_parser  # noqa: PLC0415 - the package, imported at build time only

    out = []
    for name, sub in _subcommands(make_parser(), "unpaired"):
        buf = io.StringIO()
        with redirect_stdout(buf):
            sub.print_help()
        out.append((name, buf.getvalue()))
    return out


def cli_reference() -> str:
    lines = ["# Command-line reference", "", "Every command's `--help`, generated at every build of this site.", ""]
    for name, text in cli_commands():
        lines += [f"## `{name}`", "", "```text", text.rstrip(), "```", ""]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- maths
_FENCE = re.compile(r"^(```|~~~)")
_INLINE = re.compile(r"\\\((.+?)\\\)")


def latex_to_mathml(markdown: str) -> str:
    """``$$`` blocks and ``\\( \\)`` spans as MathML, outside fenced code."""
    from latex2mathml.converter import convert  # noqa: PLC0415 - docs extra

    out, block, in_fence = [], None, False
    for line in markdown.split("\n"):
        if _FENCE.match(line.strip()):
            in_fence = not in_fence
        if in_fence:
            out.append(line)
            continue
        if line.strip() == "$$":
            if block is None:
                block = []
            else:
                # in a div of its own: spacing, and a wide equation scrolls instead of overflowing
                out.append(f'<div class="math-block">{convert(" ".join(block), display="block")}</div>')
                block = None
            continue
        if block is not None:
            block.append(line.strip())
            continue
        # in a span: Markdown takes a line that starts with <math> for a block of HTML and breaks the
        # paragraph there
        out.append(_INLINE.sub(lambda m: f'<span class="math">{convert(m.group(1))}</span>', line))
    if block is not None:
        raise ValueError("a $$ block is not closed")
    return "\n".join(out)


# ----------------------------------------------------------------------------- MkDocs hooks
def on_pre_build(config) -> None:  # noqa: ARG001 - the hook's signature
    (DOCS / "reference").mkdir(exist_ok=True)
    for name, text in (("config.md", config_reference()), ("cli.md", cli_reference())):
        path = DOCS / "reference" / name
        if not path.is_file() or path.read_text() != text:  # unchanged files keep `mkdocs serve` quiet
            path.write_text(text)


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ARG001
    return latex_to_mathml(markdown)


# ----------------------------------------------------------------------------- Sphinx roles in docstrings
_ROLE = re.compile(r":(?:class|func|meth|mod|attr|exc|data):<code>(~?)\.?([^<]*)</code>")


def _role_text(m: re.Match) -> str:
    """Sphinx's rendering of a role: ``~a.b.C`` shows ``C``, ``a.b.C`` shows it whole."""
    name = m.group(2)
    return f"<code>{name.rsplit('.', 1)[-1] if m.group(1) else name}</code>"


def on_page_content(html: str, page, config, files) -> str:  # noqa: ARG001 - the hook's signature
    """The API pages' docstrings use Sphinx roles (:class:`X`), which mkdocstrings leaves as text: show
    the name as code, as Sphinx would."""
    return _ROLE.sub(_role_text, html)
