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


# the public API the guides teach; a name dropped from unpaired.__all__ must still fail here
DOCUMENTED_API = {"preset", "build_config", "Trainer", "Callback", "load", "Translator", "evaluate_folders"}
DOCUMENTED_API |= {"register_method", "METHODS", "Config", "UnpairedError", "ConfigError"}


def test_every_public_api_name_has_an_entry():
    page = (DOCS / "reference" / "api.md").read_text()
    documented = set(re.findall(r"^::: unpaired\.[\w.]*\.(\w+)$", page, re.M))
    public = set(unpaired.__all__) - {"__version__"}
    assert DOCUMENTED_API <= public, f"not in unpaired.__all__: {sorted(DOCUMENTED_API - public)}"
    assert public <= documented, f"not in docs/reference/api.md: {sorted(public - documented)}"
    for name in public:
        assert getattr(unpaired, name) is not None
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
    assert "| `crop_size` | `int` | `256` | random crop size" in page
    assert "random horizontal flip" in page
    # a field without a comment on its line takes the comment lines right above it
    assert "| `d_augment` | `str` | `''` | DiffAugment for the discriminator(s)" in page
    assert "| `on_collapse` | `str` | `'warn'` | when validation finds the run collapsed" in page
    assert not re.findall(r"^\| `\w+` \| .* \|  \|$", page, re.M), "options without a meaning"


def test_readme_links_point_to_files():
    """README.md is not part of the site, so the strict build does not check its links."""
    readme = (DOCS.parent / "README.md").read_text()
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme)
    local = [link for link in links if "://" not in link]
    assert local and all((DOCS.parent / link).exists() for link in local), [
        link for link in local if not (DOCS.parent / link).exists()
    ]
    assert "bash scripts/test.sh" in readme  # .ci/run runs the README's test command


def test_code_the_tests_run_is_where_they_look():
    """tests/test_api.py and tests/test_export.py execute these pages' code blocks."""
    training = (DOCS / "guides" / "training.md").read_text()
    assert "```python\n" in training[training.index("## Python API") :]
    inference = (DOCS / "guides" / "inference.md").read_text()
    assert "onnxruntime" in re.search(r"```python\n(.*?)```", inference[inference.index("## Export") :], re.S).group(1)


def test_latex_becomes_mathml_outside_code():
    pytest.importorskip("latex2mathml")
    md = "a \\(x^2\\) b\n\n$$\n\\frac{a}{b}\n$$\n\n```python\nx = '\\(y\\)'\n```\n"
    out = hooks.latex_to_mathml(md)
    assert out.count("<math") == 2 and "<mfrac>" in out
    # inline maths stays inside its paragraph: a line must not start with <math> (an HTML block)
    assert not any(line.startswith("<math") for line in hooks.latex_to_mathml("\\(x\\) starts a line").split("\n"))
    assert '<div class="math-block"><math' in out
    assert "x = '\\(y\\)'" in out  # code is left alone
    with pytest.raises(ValueError, match="not closed"):
        hooks.latex_to_mathml("$$\nx\n")
