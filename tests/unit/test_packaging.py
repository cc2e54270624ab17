"""The distribution ships every package: an editable install finds modules
that a wheel would leave out, so compare pyproject's list with the tree."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_directory_is_listed_in_pyproject() -> None:
    setup = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    dirs = {name: ROOT / path for name, path in setup["package-dir"].items()}
    on_disk = set()
    for top, base in dirs.items():
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base).parts
            on_disk.add(".".join((top, *rel)))
    assert on_disk == set(setup["packages"])
