"""The documentation names only what exists: every flag, file, function and Makefile target written in
backticks in README.md and docs/*.md is checked against the code, and the README stays short.

Usage: pytest -q tests/test_docs.py
"""
import ast
import importlib
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# module names the docs use for the repo's modules (helperFunctions is imported as hf in the scripts)
MODULES = {"hf": "helperFunctions", "helperFunctions": "helperFunctions", "video_io": "video_io",
           "engine": "engine", "scoring": "scoring", "metrics": "metrics", "utils": "utils",
           "resnet_3d": "resnet_3d"}
# folders and files of the repository a path in the docs may name (outputs such as runs/ are not here)
TRACKED_PREFIXES = ("tools/", "benchmarks/", "docs/", "jobs/", "tests/", "report/make_", "report/templates/")
MAX_README_LINES = 150
MAX_DOCS_WORDS = 5300  # docs/ in all: documentation, not a notebook (about 5,000)


def spans(path):
    """The inline `code` spans of a Markdown file, outside fenced code blocks."""
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    return re.findall(r"`([^`\n]+)`", text)


def tracked_files():
    return set(subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.split())


def code_sources():
    """The scripts' and modules' text (not the tests': a flag must be defined where it is used)."""
    files = [p for p in tracked_files() if p.endswith((".py", ".sh")) and not p.startswith("tests/")]
    return "\n".join((ROOT / p).read_text(encoding="utf-8") for p in files if (ROOT / p).is_file())


def defined_names():
    """Every function and class defined in the repo's Python files, and module-level names."""
    names = set()
    for p in tracked_files():
        if p.endswith(".py") and not p.startswith("tests/") and (ROOT / p).is_file():
            for node in ast.walk(ast.parse((ROOT / p).read_text(encoding="utf-8"))):
                if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                    names.add(node.name)
    return names


def makefile_targets():
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([a-z][\w-]*):", text, flags=re.M))


def missing_names(docs) -> list:
    """(doc, span, kind) of every name in backticks in `docs` that the code does not have."""
    sources, names, targets, files = code_sources(), defined_names(), makefile_targets(), tracked_files()
    missing = []
    for doc in docs:
        for span in spans(doc):
            first = span.split()[0]
            if first.startswith("--") and len(first) > 2 and first != "--help":  # a flag: a script's
                flag = first.split("=")[0]
                if f'"{flag}"' not in sources:
                    missing.append((doc.name, span, "flag"))
            elif first == "make" and len(span.split()) > 1:  # a Makefile target
                target = span.split()[1]
                if "=" not in target and target not in targets:
                    missing.append((doc.name, span, "make target"))
            elif (re.fullmatch(r"(\w+)\.(\w+)(\(.*\))?", span) and span.split(".")[0] in MODULES
                  and not span.endswith((".py", ".sh", ".md", ".json"))):
                module, attr = span.split("(")[0].split(".")
                if not hasattr(importlib.import_module(MODULES[module]), attr):
                    missing.append((doc.name, span, "module attribute"))
            elif re.fullmatch(r"[A-Za-z_]\w*\([^()]*\)", span):  # a function call
                if span.split("(")[0] not in names:
                    missing.append((doc.name, span, "function"))
            elif "::" in first and first.startswith("tests/"):  # a test: its file and function exist
                path, name = first.split("::")[:2]
                text = (ROOT / path).read_text() if path in files else ""
                if not re.search(rf"^def {re.escape(name.split('[')[0])}\(", text, flags=re.M):
                    missing.append((doc.name, span, "test"))
            elif first.startswith(TRACKED_PREFIXES) or re.fullmatch(r"[\w]+\.(py|sh)", first):
                path = first.rstrip(",.:;")
                if path.endswith("/"):
                    ok = any(f.startswith(path) for f in files)
                else:
                    ok = path in files or any(f.endswith("/" + path) for f in files)
                if not ok:
                    missing.append((doc.name, span, "file"))
    return missing


def test_every_name_in_backticks_exists():
    missing = missing_names(DOCS)
    assert not missing, "names in the docs that the code does not have:\n" + "\n".join(map(str, missing))


def test_the_check_catches_a_missing_name(tmp_path):
    """The check fails on a doc naming a flag, a target, a function, a file and a test that do not
    exist, and passes names that do."""
    doc = tmp_path / "bad.md"
    doc.write_text("Use `--no-such-flag`, `make no-such-target`, `no_such_function()`, `tools/no_such.py` "
                   "and `tests/test_docs.py::test_no_such_test`; not `--resume`, `make demo` or "
                   "`engine.train_one_epoch` or `tests/test_docs.py::test_readme_and_docs_are_short`.")
    found = [span for _, span, _ in missing_names([doc])]
    assert found == ["--no-such-flag", "make no-such-target", "no_such_function()", "tools/no_such.py",
                     "tests/test_docs.py::test_no_such_test"]


def test_readme_and_docs_are_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= MAX_README_LINES
    # words, not a table's | and --- (generated tables are counted by their words)
    words = sum(sum(not re.fullmatch(r"[|:\-]+", w) for w in p.read_text().split())
                for p in (ROOT / "docs").glob("*.md"))
    assert words <= MAX_DOCS_WORDS, f"docs/ holds {words} words"


def test_docs_speak_of_the_project_alone():
    """No history or words about how the project is made (issue numbers, stops, who ran what)."""
    pattern = re.compile(r"\bissue ?#?\d+|\bthe (last|previous) stop\b|\bengineers?\b|\blent machine\b"
                         r"|\bcommit [0-9a-f]{7}\b", re.I)
    hits = [(d.name, m.group(0)) for d in DOCS for m in pattern.finditer(d.read_text())]
    assert not hits, hits
