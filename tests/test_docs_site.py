"""The documentation site: ``mkdocs build --strict`` passes, and every page is there and in the nav.

``mkdocs.yml`` builds ``docs/`` with MkDocs + Material; the API pages render docstrings with
mkdocstrings. Strict mode turns every warning into an error: a broken link or anchor between
pages, a page left out of the nav, a docstring griffe cannot read, an API object that cannot be
found. (``tests/test_docs.py`` checks what the pages say against the code.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytest.importorskip("mkdocs", reason="the test extra installs mkdocs")
pytest.importorskip("material", reason="the test extra installs mkdocs-material")
pytest.importorskip("mkdocstrings", reason="the test extra installs mkdocstrings[python]")

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

PAGES = [
    "index.md", "getting_started.md", "installing.md", "recipes.md", "data.md", "methods.md",
    "priors.md", "method.md", "evaluation.md", "video.md", "reliability.md", "performance.md",
    "studies.md", "seed_experiments.md", "extending.md", "layout.md",
]
# API page -> the objects it documents (mkdocstrings ``::: path`` blocks)
API = {
    "api/registries.md": ["levyjepa.core.registry.Registry", "levyjepa.core.registry.ENCODERS",
                          "levyjepa.core.registry.METHODS", "levyjepa.core.registry.PRIORS",
                          "levyjepa.core.registry.DATA", "levyjepa.core.registry.VIEWS"],
    "api/methods.md": ["levyjepa.methods.Method", "levyjepa.methods.MethodNeeds",
                       "levyjepa.methods.MethodOutput"],
    "api/priors.md": ["levyjepa.priors.SIGReg", "levyjepa.priors.LevySheetPrior",
                      "levyjepa.priors.LevySheet2D", "levyjepa.priors.LevySheet3D"],
    "api/encoders.md": ["levyjepa.encoders.EncoderOutput"],
}


def _config() -> dict:
    # mkdocs.yml holds no Python tags, so a plain YAML loader reads it
    return yaml.safe_load((ROOT / "mkdocs.yml").read_text())


def _nav_pages(nav: object) -> list[str]:
    """Every page file the nav names, at any depth."""
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [p for item in nav for p in _nav_pages(item)]
    if isinstance(nav, dict):
        return [p for value in nav.values() for p in _nav_pages(value)]
    return []


def test_config() -> None:
    config = _config()
    assert config["site_name"] == "levyjepa" and config["docs_dir"] == "docs"
    assert config["theme"]["name"] == "material"
    plugins = {next(iter(p)) if isinstance(p, dict) else p: p for p in config["plugins"]}
    assert {"search", "mkdocstrings"} <= set(plugins)
    python = plugins["mkdocstrings"]["mkdocstrings"]["handlers"]["python"]
    assert python["paths"] == ["."] and python["options"]["docstring_style"] == "google"


@pytest.mark.parametrize("page", PAGES + list(API))
def test_page_exists_and_is_in_the_nav(page: str) -> None:
    assert (DOCS / page).is_file(), f"docs/{page} is missing"
    assert page in _nav_pages(_config()["nav"]), f"docs/{page} is not in mkdocs.yml's nav"


def test_nav_names_only_existing_pages() -> None:
    missing = [p for p in _nav_pages(_config()["nav"]) if not (DOCS / p).is_file()]
    assert not missing, f"mkdocs.yml's nav names pages that do not exist: {missing}"


@pytest.mark.parametrize("page", sorted(API))
def test_api_pages_document_the_interfaces(page: str) -> None:
    blocks = {line.removeprefix(":::").strip()
              for line in (DOCS / page).read_text().splitlines() if line.startswith(":::")}
    missing = [name for name in API[page] if name not in blocks]
    assert not missing, f"docs/{page} has no '::: NAME' block for {missing}"


def test_site_builds_strict(tmp_path: Path) -> None:
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=env,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    for page in PAGES + list(API):
        html = site / ("index.html" if page == "index.md" else f"{page[:-3]}/index.html")
        assert html.is_file(), f"{page} was not built"
    for page, names in API.items():  # mkdocstrings rendered each object (its heading's id)
        html = (site / page[:-3] / "index.html").read_text()
        absent = [name for name in names if f'id="{name}"' not in html]
        assert not absent, f"{page}: not rendered: {absent}"
