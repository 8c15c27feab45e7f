"""The docs site's generated reference covers the code: every CLI command, every public API name,
every configuration option. (`mkdocs build --strict` itself runs in scripts/test.sh.)"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import re
from pathlib import Path

import pytest

import unpaired
from unpaired import config, methods

DOCS = Path(__file__).resolve().parents[1] / "docs"
spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
hooks = importlib.util.module_from_spec(spec)
spec.loader.exec_module(hooks)


def test_every_cli_command_is_in_the_reference():
    commands = [name for name, _ in hooks.cli_commands()]
    # the top-level commands, read from the parser independently of the generator's walk
    from unpaired.cli.app import make_parser

    top = next(a for a in make_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    assert {f"unpaired {c}" for c in top.choices} <= set(commands)
    assert {"unpaired data split", "unpaired evaluate run", "unpaired evaluate fid"} <= set(commands)
    page = hooks.cli_reference()
    for name, text in hooks.cli_commands():
        assert f"## `{name}`" in page
        assert text.splitlines()[0] in page  # the usage line


def test_every_public_api_name_has_an_entry():
    page = (DOCS / "reference" / "api.md").read_text()
    documented = set(re.findall(r"^::: unpaired\.[\w.]*\.(\w+)$", page, re.M))
    public = set(unpaired.__all__) - {"__version__"}
    assert public <= documented, f"not in docs/reference/api.md: {sorted(public - documented)}"
    # and each entry names the module that defines it (mkdocstrings fails the strict build otherwise)
    for path in re.findall(r"^::: (unpaired\.[\w.]+)$", page, re.M):
        module, name = path.rsplit(".", 1)
        assert hasattr(importlib.import_module(module), name), path


def test_every_configuration_option_is_in_the_reference():
    page = hooks.config_reference()
    own = {m.config_class for m in methods.METHODS.values()}
    classes = [config.DataConfig, config.TrainConfig, config.ModelConfig, *own]
    for cls in classes:
        for f in dataclasses.fields(cls):
            assert f"| `{f.name}` |" in page, f"{cls.__name__}.{f.name}"
    # the comment beside a field in the source is its meaning
    assert "| `crop_size` | `int` | `256` |" in page
    assert "random horizontal flip" in page


def test_latex_becomes_mathml_outside_code():
    pytest.importorskip("latex2mathml")
    md = "a \\(x^2\\) b\n\n$$\n\\frac{a}{b}\n$$\n\n```python\nx = '\\(y\\)'\n```\n"
    out = hooks.latex_to_mathml(md)
    assert out.count("<math") == 2 and "<mfrac>" in out
    assert "x = '\\(y\\)'" in out  # code is left alone
    with pytest.raises(ValueError, match="not closed"):
        hooks.latex_to_mathml("$$\nx\n")
