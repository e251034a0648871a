"""The repository's layout and command lines: the top level is the assignment (at most 12 Python
files), every script runs as the docs say from a copy of the tracked files alone, and every flag of
every script has help.

Usage: pytest -q tests/test_layout.py
"""
import argparse
import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_TOP_LEVEL_PY = 12
# every script and the command that runs it from the repository's root
SCRIPTS = {
    "train_single_frame": ["train_single_frame.py"], "train_3d": ["train_3d.py"],
    "test_single_frame": ["test_single_frame.py"], "test_3d": ["test_3d.py"],
    "combine_results": ["combine_results.py"], "report.make_report": ["report/make_report.py"],
    "report.make_submission": ["report/make_submission.py"],
    "tools.prepare_data": ["-m", "tools.prepare_data"], "tools.make_toy_ucf101": ["-m", "tools.make_toy_ucf101"],
    "tools.predict": ["-m", "tools.predict"], "tools.splits_summary": ["-m", "tools.splits_summary"],
    "tools.rehearse": ["-m", "tools.rehearse"], "benchmarks.benchmark": ["-m", "benchmarks.benchmark"],
    "benchmarks.gpu_check": ["-m", "benchmarks.gpu_check"],
}


def tracked():
    return subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.split()


def test_top_level_is_the_assignment():
    top = [f for f in tracked() if f.endswith(".py") and "/" not in f]
    assert len(top) <= MAX_TOP_LEVEL_PY, top
    for script in ("helperFunctions.py", "resnet_3d.py", "train_single_frame.py", "train_3d.py",
                   "test_single_frame.py", "test_3d.py", "combine_results.py"):
        assert script in top


@pytest.fixture(scope="module")
def fresh_copy(tmp_path_factory):
    """The tracked files alone (as a fresh clone has them), copied into a new folder."""
    copy = tmp_path_factory.mktemp("fresh") / "repo"
    for f in tracked():
        if (ROOT / f).is_file():
            (copy / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, copy / f)
    return copy


@pytest.mark.slow
@pytest.mark.parametrize("module", list(SCRIPTS))
def test_every_script_helps_from_a_fresh_copy(fresh_copy, module):
    """`python <script> --help` (`python -m tools.X --help` for the tools) from the copy's root
    prints the usage line of the script's docstring and exits 0."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([sys.executable, *SCRIPTS[module], "--help"], cwd=fresh_copy, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "usage:" in r.stdout and "Usage:" in r.stdout  # argparse's, then the docstring's


def parser_of(module):
    """The script's ArgumentParser, as its parse_args builds it (argparse's parse_args intercepted)."""
    mod = importlib.import_module(module)
    captured = {}

    def capture(self, args=None, namespace=None):
        captured["parser"] = self
        raise SystemExit(0)

    original = argparse.ArgumentParser.parse_args
    argparse.ArgumentParser.parse_args = capture
    try:
        with pytest.raises(SystemExit):
            mod.parse_args([])
    finally:
        argparse.ArgumentParser.parse_args = original
    return captured["parser"]


@pytest.mark.parametrize("module", list(SCRIPTS))
def test_every_flag_has_help(module):
    parser = parser_of(module)
    lacking = [a.option_strings or a.dest for a in parser._actions
               if not isinstance(a, argparse._HelpAction) and not (a.help or "").strip()]
    assert not lacking, f"{module}: flags without help: {lacking}"


def test_help_shows_the_defaults():
    """A flag with a default says it in --help (checked on a script that has every kind of flag)."""
    text = parser_of("train_3d").format_help()
    for shown in ("(default: 32)", "(default: resnet-50-kinetics.pth)", "(default: layer4.0)",
                  "(default: 0.0001)", "(default: runs/3d)"):
        assert shown in " ".join(text.split()), shown
