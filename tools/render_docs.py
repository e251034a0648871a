"""(Re)write the generated tables of the docs from the results JSON files they name.

Usage: python -m tools.render_docs [--check] [FILE.md ...]   (default: README.md, docs/*.md)

A generated block sits between two marker comments, the first naming its file and, optionally,
which of its tables it shows (all of them otherwise):

  <!-- generated from docs/results/benchmark-cpu.json by python -m tools.render_docs: peers -->
    ...
    <!-- end generated -->

The tables come from the `markdown_table(s)` of the tool that wrote the file (its "tool" entry, else
its name): benchmarks.benchmark, benchmarks.gpu_check, benchmarks.memory_estimate, tools.rehearse,
tools.demo_results. A file not written yet gives one line saying how to make it. --check rewrites
nothing: it exits 1, naming each table that differs from its file, when the docs disagree with the
files.
"""
import argparse
import glob
import importlib
import json
import os
import re
import sys

from benchmarks import benchmark, gpu_check

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BLOCK = re.compile(r"(<!-- generated from (?P<file>\S+\.json) by python -m tools\.render_docs"
                   r"(?:: (?P<names>[a-z0-9 ,-]+?))? -->\n)(?P<body>.*?)(<!-- end generated -->)",
                   re.S)


# a results file's tool -> (the module whose markdown_table renders it, the command that writes it)
ONE_TABLE = {"memory_estimate": ("benchmarks.memory_estimate",
                                 "python -m benchmarks.memory_estimate --out {}"),
             "prepare_cost": ("benchmarks.prepare_cost",
                              "python -m benchmarks.prepare_cost --out {}"),
             "rehearsal": ("tools.rehearse", "python -m tools.rehearse --results-json {}"),
             "demo": ("tools.demo_results", "python -m tools.demo_results --out {}")}


def tool_of(path: str, results: dict | None) -> str:
    """The tool that writes a results file: its "tool" entry, else its file name's first word."""
    if results and results.get("tool"):
        return results["tool"]
    name = os.path.basename(path)
    return "gpu_check" if name.startswith("gpu-") else name.split("-")[0].split(".")[0]


def how_to_make(path: str) -> str:
    tool = tool_of(path, None)
    if tool == "gpu_check":
        return f"_Not measured yet: `bash benchmarks/gpu_check.sh` on a GPU machine writes {path}._"
    if tool in ONE_TABLE:
        return f"_Not made yet: `{ONE_TABLE[tool][1].format(path)}` writes it._"
    return f"_Not measured yet: `python -m benchmarks.benchmark --out {path}` writes it._"


def rendered(path: str, names: list | None) -> dict:
    """{table name: its Markdown} of a results file (in its tool's order, or `names`'), or
    {"": a line saying how to make it} when the file does not exist."""
    full = os.path.join(REPO, path)
    if not os.path.exists(full):
        return {"": how_to_make(path)}
    with open(full) as f:
        results = json.load(f)
    tool = tool_of(path, results)
    if tool in ONE_TABLE:
        return {"": importlib.import_module(ONE_TABLE[tool][0]).markdown_table(results)}
    tool = gpu_check if tool == "gpu_check" else benchmark
    if names is None:
        names = list(tool.tables(results)) if tool is benchmark else [
            n for n in ("phases", "levers") if n != "levers" or results.get("levers")]
    return {n: tool.markdown_tables(results, [n]) for n in names}


def render(text: str) -> tuple[str, list]:
    """(text with every generated block rewritten, [(results file, table) that differed])."""
    differ = []

    def block(m):
        names = [n.strip() for n in m["names"].split(",")] if m["names"] else None
        tables = rendered(m["file"], names)
        body = "\n\n".join(t.rstrip("\n") for t in tables.values()) + "\n"
        missing = [(m["file"], n or "(not measured yet)") for n, t in tables.items()
                   if t not in m["body"]]
        if not missing and m["body"] != body:  # every table there, but more or otherwise laid out
            missing = [(m["file"], "(the block's layout)")]
        differ.extend(missing)
        return m.group(1) + body + m.group(5)

    return BLOCK.sub(block, text), differ


def main(argv: list | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="*", help="Markdown files (default: README.md, docs/*.md)")
    p.add_argument("--check", action="store_true",
                   help="rewrite nothing; exit 1 naming each table that differs from its file")
    args = p.parse_args(argv)
    files = args.files or [os.path.join(REPO, "README.md")] + sorted(
        glob.glob(os.path.join(REPO, "docs", "*.md")))
    bad = 0
    for md in files:
        with open(md, encoding="utf-8") as f:
            text = f.read()
        new, differ = render(text)
        for path, table in differ:
            bad += 1
            print(f"{os.path.relpath(md, REPO)}: table {table} of {path} differs from the file"
                  + ("" if args.check else ": rewritten"))
        if not args.check and new != text:
            with open(md, "w", encoding="utf-8") as f:
                f.write(new)
    return 1 if args.check and bad else 0


if __name__ == "__main__":
    sys.exit(main())
