"""Packaging: what pyproject.toml promises exists, and versions are bounds, not pins."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_every_package_data_pattern_matches_files() -> None:
    package = ROOT / "src" / "m2aenet"
    for pattern in PYPROJECT["tool"]["setuptools"]["package-data"]["m2aenet"]:
        assert sorted(package.glob(pattern)), f"package-data {pattern!r} matches nothing"


def test_the_wheel_configs_are_the_repository_configs() -> None:
    packaged = ROOT / "src" / "m2aenet" / "configs"
    shipped = sorted(path.name for path in (ROOT / "configs").glob("*.yaml"))
    assert sorted(path.name for path in packaged.glob("*.yaml")) == shipped
    assert packaged.resolve() == (ROOT / "configs").resolve()  # one copy, not two to keep equal


def test_the_wheel_examples_are_the_repository_examples() -> None:
    packaged = ROOT / "src" / "m2aenet" / "examples"  # what `m2aenet web` offers
    assert packaged.resolve() == (ROOT / "examples").resolve()
    assert (packaged / "clock_motion_real.png").is_file()


def test_the_web_extra_exists_and_the_page_ships() -> None:
    assert "web" in PYPROJECT["project"]["optional-dependencies"]
    patterns = PYPROJECT["tool"]["setuptools"]["package-data"]["m2aenet"]
    static = ROOT / "src" / "m2aenet" / "web" / "static"
    shipped = {
        path.name for pattern in patterns for path in (ROOT / "src" / "m2aenet").glob(pattern)
    }
    assert {path.name for path in static.iterdir()} <= shipped


def test_dependencies_are_lower_bounds_and_the_pin_lives_in_constraints() -> None:
    requirements = [Requirement(text) for text in PYPROJECT["project"]["dependencies"]]
    torch = next(requirement for requirement in requirements if requirement.name == "torch")
    assert all(spec.operator == ">=" for spec in torch.specifier), torch
    pins = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            requirement = Requirement(line)
            pins[requirement.name] = requirement.specifier
    assert "torch" in pins and all(spec.operator == "==" for spec in pins["torch"])
    # The pin must satisfy the bound, or `make setup` could not resolve.
    pinned = next(iter(pins["torch"])).version
    assert torch.specifier.contains(pinned)
    assert "-c constraints.txt" in (ROOT / "Makefile").read_text(encoding="utf-8")
