"""The shipped corpora reach a wheel install: data/ is packaged as `scratchformers.corpora` and found through
importlib.resources when the repository's data/ is not there."""

from __future__ import annotations

import fnmatch
import importlib
import sys
from pathlib import Path

import pytest
import tomllib

import scratchformers
from scratchformers import data as data_module
from scratchformers.data import DATA_DIR, DATA_ENV_VAR, load_classification, packaged_data_dir, resolve_data_dir

REPO = Path(__file__).resolve().parents[2]
SETUPTOOLS = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
PACKAGE = "scratchformers.corpora"


@pytest.fixture
def installed_layout(tmp_path, monkeypatch):
    """Make this process look like a wheel install: `scratchformers.corpora` importable from a folder beside the
    package (as the wheel puts it), the repository's data/ gone, no environment override."""
    site = tmp_path / "site"
    (site / "corpora").mkdir(parents=True)
    (site / "corpora" / "README.md").write_text("sources and licences\n")
    (site / "corpora" / "classification").mkdir()
    for split in ("train", "validation", "test"):
        (site / "corpora" / "classification" / f"{split}.csv").write_text("text,label\nhallo welt,de\nhello world,en\n")
    monkeypatch.setattr(scratchformers, "__path__", [*scratchformers.__path__, str(site)])
    monkeypatch.setattr(data_module, "DATA_DIR", tmp_path / "no-repository" / "data")
    monkeypatch.delenv(DATA_ENV_VAR, raising=False)
    sys.modules.pop(PACKAGE, None)
    importlib.invalidate_caches()
    yield site / "corpora"
    sys.modules.pop(PACKAGE, None)


def test_a_source_checkout_reads_the_repository_data():
    assert packaged_data_dir() is None  # src/scratchformers has no corpora folder: nothing is packaged here
    assert resolve_data_dir() == DATA_DIR == REPO / "data"


def test_a_wheel_install_finds_the_corpora_through_the_package(installed_layout):
    assert packaged_data_dir() == installed_layout
    assert data_module.resolve_data_dir() == installed_layout
    dataset = load_classification()  # the loaders read the packaged files
    assert dataset["test"].num_rows == 2 and dataset["train"].features["label"].names == ["de", "en"]


def test_the_environment_variable_still_wins_over_the_package(installed_layout, monkeypatch, tmp_path):
    monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path))
    assert resolve_data_dir() == tmp_path


def test_pyproject_packages_data_as_scratchformers_corpora():
    assert SETUPTOOLS["package-dir"][PACKAGE] == "data"
    assert PACKAGE in SETUPTOOLS["packages"]


def test_pyproject_package_data_globs_cover_every_shipped_file():
    globs = SETUPTOOLS["package-data"][PACKAGE]
    files = [p.relative_to(DATA_DIR).as_posix() for p in DATA_DIR.rglob("*") if p.is_file()]
    assert "README.md" in files and "prose/train.txt" in files
    missed = [f for f in files if not any(fnmatch.fnmatch(f, g) and f.count("/") == g.count("/") for g in globs)]
    assert not missed, f"files under data/ that the wheel would leave out: {missed}; add globs for them"


def test_pyproject_ships_the_prerendered_help():
    """`train TASK --help` reads src/scratchformers_light/help/ (scripts/render_cli_help.py): all of it ships."""
    from scratchformers_light.arguments import HELP_DIR

    globs = SETUPTOOLS["package-data"]["scratchformers_light"]
    files = [p.relative_to(HELP_DIR.parent).as_posix() for p in HELP_DIR.rglob("*") if p.is_file()]
    assert "help/versions.json" in files and "help/train-clm.txt" in files
    missed = [f for f in files if not any(fnmatch.fnmatch(f, g) and f.count("/") == g.count("/") for g in globs)]
    assert not missed, f"help files the wheel would leave out: {missed}; add globs for them"


def test_pyproject_lists_every_package_under_src():
    source = REPO / "src"
    packages = {
        ".".join(init.parent.relative_to(source).parts) for init in source.rglob("__init__.py")
    }
    assert packages <= set(SETUPTOOLS["packages"]), f"unlisted packages: {sorted(packages - set(SETUPTOOLS['packages']))}"


def test_pyproject_ships_every_config_and_configs_paths_resolve_from_anywhere(tmp_path, monkeypatch):
    from scratchformers.examples import common

    globs = SETUPTOOLS["package-data"]["scratchformers.configs"]
    configs = REPO / "configs"
    assert SETUPTOOLS["package-dir"]["scratchformers.configs"] == "configs"
    files = [p.relative_to(configs).as_posix() for p in configs.rglob("*") if p.is_file()]
    missed = [f for f in files if not any(fnmatch.fnmatch(f, g) and f.count("/") == g.count("/") for g in globs)]
    assert not missed, f"files under configs/ that the wheel would leave out: {missed}"
    # `--config configs/bert-tiny.json` typed outside the repository (or with a wheel) finds the shipped copy
    monkeypatch.chdir(tmp_path)
    assert common.shipped_config("configs/bert-tiny.json") == common.CONFIG_DIR / "bert-tiny.json"
    assert common.shipped_config("configs/accelerate/cpu.yaml") == common.CONFIG_DIR / "accelerate" / "cpu.yaml"
    assert common.config_from_json("configs/gpt-tiny.json").model_type == "scratch_gpt"
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "gpt-tiny.json").write_text('{"model_type": "scratch_bert"}')  # a user's own file wins
    assert common.config_from_json("configs/gpt-tiny.json").model_type == "scratch_bert"
    with pytest.raises(ValueError, match="does not exist; shipped configs: .*gpt-tiny.json"):
        common.config_from_json("configs/no-such.json")
