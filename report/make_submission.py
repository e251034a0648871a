"""
Zip the assignment for handing in: the code under version control, the report and the discussion.

Usage:
    python report/make_submission.py --results runs/toy/combined/results.json \\
        --report report/report.pdf --out submission/ucf101_action_recognition_submission.zip

The zip holds every file git tracks (as it is in the working tree now), the report PDF and the
student's discussion (--discussion; not tracked, it is the student's text), under one folder
named like the zip. Nothing else: checkpoints, predictions, data, the virtual environment and
generated reports are not tracked, so they stay out. Files git does not track and does not ignore
are listed as not in the zip; tracked files that differ from the last commit are named.

Refuses (one line, exit status 1) when the report is missing, or older than the run's
results.json or the discussion: the zip must hold the report of the results it hands in.
"""
import argparse
import os
import subprocess
import sys
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)  # discussion.py beside this file
import discussion  # noqa: E402

PROG = "make_submission.py"


class SubmissionError(Exception):
    """The submission cannot be made: the message names the file and says what to do."""


def git_files(repo: str, *args: str) -> list[str]:
    """`git ls-files -z <args>` in repo -> paths relative to it."""
    try:
        out = subprocess.run(["git", "-C", repo, "ls-files", "-z", *args], capture_output=True,
                             check=True).stdout
    except FileNotFoundError:
        raise SubmissionError("git not found: the zip holds the files git tracks") from None
    except subprocess.CalledProcessError as e:
        why = e.stderr.decode().strip()
        raise SubmissionError(f"--repo {repo}: not a git repository ({why})") from None
    return [p for p in out.decode("utf-8", "surrogateescape").split("\0") if p]


def repo_root(repo: str) -> str:
    try:
        out = subprocess.run(["git", "-C", repo, "rev-parse", "--show-toplevel"],
                             capture_output=True, check=True, text=True).stdout
    except FileNotFoundError:
        raise SubmissionError("git not found: the zip holds the files git tracks") from None
    except subprocess.CalledProcessError:
        raise SubmissionError(f"--repo {repo}: not a git repository") from None
    return out.strip()


def check_report(report: str, newer_than: list[tuple[str, str]]) -> None:
    """The report must exist and be at least as new as each (flag, path) it was made from."""
    if not os.path.isfile(report):
        raise SubmissionError(f"--report {report}: no such file (run make report first)")
    for flag, path in newer_than:
        if os.path.getmtime(report) < os.path.getmtime(path):
            raise SubmissionError(f"--report {report} is older than {flag} {path}: run make report "
                                  f"again so the zip holds the report of these results")


def in_repo(root: str, path: str) -> str | None:
    """path relative to the repository root, or None when it lies outside."""
    rel = os.path.relpath(os.path.abspath(path), root)
    return None if rel == ".." or rel.startswith(".." + os.sep) else rel


def changed_since_commit(root: str, tracked: list[str]) -> list[str]:
    """Tracked files whose working-tree content differs from the last commit (staged or not); all
    of them before the first commit."""
    p = subprocess.run(["git", "-C", root, "diff", "--name-only", "-z", "HEAD", "--"],
                       capture_output=True)
    if p.returncode != 0:  # no commit yet: nothing is as committed
        return list(tracked)
    return [x for x in p.stdout.decode("utf-8", "surrogateescape").split("\0") if x]


def plan(root: str, report: str, discussion_path: str | None, out: str) -> dict:
    """What goes into the zip: {"files": [(file on disk, name in the zip)], "untracked",
    "changed", "missing": [names]} (names relative to the repository root)."""
    tracked = git_files(root)
    out_rel = in_repo(root, out)
    present = [p for p in tracked if os.path.isfile(os.path.join(root, p))]
    files = [(os.path.join(root, p), p) for p in present if p != out_rel]
    extras = [report]
    if discussion_path and os.path.isfile(discussion_path):
        extras.append(discussion_path)
    for path in extras:
        name = in_repo(root, path) or os.path.join("report", os.path.basename(path))
        if name not in {n for _, n in files}:
            files.append((os.path.abspath(path), name))
    named = {n for _, n in files}
    untracked = [p for p in git_files(root, "--others", "--exclude-standard")
                 if p not in named and p != out_rel]
    missing = sorted(set(tracked) - set(present))
    changed = [p for p in changed_since_commit(root, tracked) if p not in missing and p in named]
    return {"files": files, "untracked": untracked, "missing": missing, "changed": changed}


def write_zip(out: str, files: list, folder: str) -> None:
    """files [(path, name)] -> out, each under folder/, written to a temporary file first so a
    failed run leaves no half zip under the final name."""
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = out + ".tmp"
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
            for path, name in sorted(files, key=lambda f: f[1]):
                z.write(path, f"{folder}/{name}")
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def placeholders_only(path: str) -> bool:
    """Whether the discussion is still the template (unreadable: make_report.py says why)."""
    try:
        return discussion.unwritten(discussion.parse(discussion.read(path)))
    except (OSError, UnicodeDecodeError):
        return False


def size_text(n: int) -> str:
    return f"{n / 2 ** 20:.1f} MiB" if n >= 2 ** 20 else f"{n / 2 ** 10:.0f} KiB"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="submission/ucf101_action_recognition_submission.zip",
                   help="the zip to write (default: %(default)s)")
    p.add_argument("--report", default="report/report.pdf",
                   help="the report PDF of make_report.py (default: %(default)s)")
    p.add_argument("--results", default="runs/toy/combined/results.json",
                   help="results.json (or its folder) the report was made from: the report must be "
                        "newer (default: %(default)s)")
    p.add_argument("--discussion", default="report/discussion.md",
                   help="the student's discussion, zipped when it exists (default: %(default)s)")
    p.add_argument("--repo", default=".", help="the git repository to zip (default: %(default)s)")
    return p.parse_args(argv)


def main(args: argparse.Namespace) -> str:
    """Write the zip -> its path."""
    results = args.results
    if os.path.isdir(results):
        results = os.path.join(results, "results.json")
    if not os.path.isfile(results):
        raise SubmissionError(f"--results {args.results}: no results.json (give the run the "
                              f"report was made from, e.g. --results runs/toy/combined)")
    newer_than = [("--results", results)]
    if os.path.isfile(args.discussion):
        newer_than.append(("--discussion", args.discussion))
    check_report(args.report, newer_than)
    root = repo_root(args.repo)
    what = plan(root, args.report, args.discussion, args.out)
    folder = os.path.splitext(os.path.basename(args.out))[0]
    try:
        write_zip(args.out, what["files"], folder)
    except OSError as e:
        raise SubmissionError(f"--out {args.out}: cannot write it ({e.strerror})") from None
    print(f"wrote {args.out} ({len(what['files'])} files, {size_text(os.path.getsize(args.out))})")
    if what["changed"]:
        print("differ from the last commit (zipped as they are now): " + ", ".join(what["changed"]))
    if what["missing"]:
        print("tracked but deleted, so not in the zip: " + ", ".join(what["missing"]))
    if what["untracked"]:
        print("not in the zip (untracked; git add them to hand them in): "
              + ", ".join(what["untracked"]))
    if os.path.isfile(args.discussion) and placeholders_only(args.discussion):
        print(f"note: {args.discussion} still holds only the template's placeholders: the report "
              f"says the discussion is not written")
    return args.out


if __name__ == "__main__":
    try:
        main(parse_args())
    except SubmissionError as e:
        sys.exit(f"{PROG}: {e}")
