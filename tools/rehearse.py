"""Rehearse the whole assignment at UCF-101's scale on a laptop: 101 classes, 13,320 videos, every script.

Usage: python -m tools.rehearse [--data-root data/rehearsal] [--out runs/rehearsal] [--max-per-class N]
       [--results-json docs/results/rehearsal.json]

Runs, each as its own process exactly as a user would type it: make_toy_ucf101.py --like-ucf101 (one
synthetic MPEG-4 video for every name of the official lists), prepare_data.py, train_single_frame.py,
train_3d.py, test_single_frame.py and test_3d.py on every test video of the split, combine_results.py
and report/make_report.py. One group of every class is held out of the train list, and the fusion
weight is chosen on it (--val-groups 1). The models are small ResNets trained from scratch on small frames, so that
the whole job fits a few CPU cores. The lesson it shows: the single-frame model tells the appearance
classes apart and sits at chance within the motion-only pairs; the 3D model tells the pairs apart too.
Every phase resumes: a rerun after an interruption redoes only what is missing.

Ends by printing the video-level top-1/5/10 lines, the lesson's figures and a table of each phase's
wall time and cost per video; the table is also written to <out>/phases.json, and with --results-json
a summary of it all (the file docs/results/rehearsal.json is) that `markdown_table` renders.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import helperFunctions as hf

REPO = Path(__file__).resolve().parents[1]
VAL_GROUPS = 1
MODELS = {"single_frame": "single frame", "3d": "3D", "fused": "fused"}

# The two models' settings: the defaults of the flags below. Why each, measured on reduced rehearsals
# (--max-per-class 40: 2,727 training videos, so 43 single-frame or 85 3D steps an epoch against 140 and
# 281 at full size), seed 0; docs/rehearsal.md has the full run.
SINGLE_FRAME = dict(
    arch="resnet18",
    # 24x24: at 16x16 the appearance classes' objects (5-10 px of 60) are 1-3 px and their shapes are lost
    # (clip accuracy after 8 epochs 42% at 16, 67% at 32); 24 did as well as 32 after 20 epochs (appearance
    # classes 91.8% against 91.0%) at less cost, in training and in testing every frame.
    size=24,
    # 7 epochs (980 steps): 860 steps (20 reduced epochs) reached 91-92% on the appearance classes; the
    # accuracy was still rising there and moves by a few points from one epoch to the next.
    epochs=7,
    # batch 32: 86.0% against 84.5% after 10 reduced epochs, but 1.6x the time an epoch on 2 cores
    batch_size=64,
    lr=1e-3,
)
THREE_D = dict(
    arch="resnet10",
    # At 16x16 inputs layer3 and layer4 see 1x1 maps, where the full width's 512x512x27 weight gradients
    # cost most of a training step on a CPU (3.4x faster a step at 0.5, and it learns as well).
    widen_factor=0.5,
    # 16x16: a step costs 0.13 s (batch 32 on 2 cores), 0.25 s at 24 and 0.35 s at 32; every motion of the
    # pairs is learnt at 16 (the zoom pairs alone: 96-100% within the pair).
    size=16,
    # 16 frames, the assignment's clip: 8-frame clips learnt the pairs as well (86.9% against 87.8% after
    # 24 reduced epochs) but cost about as much an epoch here, decoding included.
    clip_frames=16,
    # 8 epochs (2,250 steps): the 3D model learns the appearance classes first and the motion-only pairs
    # after them: within the pairs 65% after 12 reduced epochs (1,020 steps), 90% after 18 and 88% after 24;
    # at full size 81.6% after 7 epochs with three pairs under 60%, 92.5% after 8 with none under 70%
    # (docs/results/rehearsal.json), 91.9% after 9.
    epochs=8,
    batch_size=32,
    lr=1e-3,
)


# ----------------------------------------------------------------------------- each script's flags
# Kept apart so that a renamed flag of a script is one edit here.

def train_single_frame_flags(a):
    return ["--pretrained", "none", "--arch", SINGLE_FRAME["arch"], "--train-from", "all",
            "--size", a.size_single_frame, "--epochs", a.epochs_single_frame,
            "--batch-size", a.batch_size_single_frame, "--lr", a.lr_single_frame]


def train_3d_flags(a):
    return ["--pretrained", "none", "--arch", THREE_D["arch"], "--widen-factor", a.widen_factor_3d,
            "--train-from", "all", "--layer4-blocks", 1, "--size", a.size_3d, "--frames", a.clip_frames,
            "--epochs", a.epochs_3d, "--batch-size", a.batch_size_3d, "--lr", a.lr_3d]


def test_flags(subset, checkpoint, out):
    return ["--subset", subset, "--checkpoint", checkpoint, "--out", out]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=Formatter)
    p.add_argument("--data-root", default="data/rehearsal", help="where the synthetic UCF-101 is written")
    p.add_argument("--out", default="runs/rehearsal", help="run folder: checkpoints, predictions, results")
    p.add_argument("--run", dest="out", default=argparse.SUPPRESS, help=argparse.SUPPRESS)  # old name
    p.add_argument("--pdf", "--report", default="report/rehearsal.pdf", help="the report's PDF (and its .md twin)")
    p.add_argument("--results-json", default=None,
                   help="also write a summary (settings, accuracies, the lesson's figures, phase times, "
                        "load averages) to this file, e.g. docs/results/rehearsal.json (default: none)")
    p.add_argument("--max-per-class", type=int, default=None, help="at most this many videos per class, a "
                                                                    "reduced rehearsal (default: all)")
    p.add_argument("--frames", type=int, default=40, help="median video length in frames (UCF-101's / 4)")
    p.add_argument("--size", type=int, default=None, help="input height and width of both models, "
                                                          "for --size-single-frame and --size-3d (default: unset)")
    for key, model, settings in (("single-frame", "single-frame", SINGLE_FRAME), ("3d", "3D", THREE_D)):
        extra = ["--epochs-2d"] if key == "single-frame" else []
        p.add_argument(f"--epochs-{key}", *extra, type=int, default=settings["epochs"],
                       help=f"epochs of the {model} model")
        p.add_argument(f"--size-{key}", type=int, default=settings["size"],
                       help=f"input height and width of the {model} model")
        p.add_argument(f"--batch-size-{key}", type=int, default=settings["batch_size"],
                       help=f"training batch of the {model} model")
        p.add_argument(f"--lr-{key}", type=float, default=settings["lr"], help=f"Adam's learning rate, {model}")
    p.add_argument("--widen-factor-3d", type=float, default=THREE_D["widen_factor"],
                   help="channels of every layer of the 3D ResNet times this")
    p.add_argument("--clip-frames", type=int, default=THREE_D["clip_frames"], help="frames per 3D clip")
    p.add_argument("--seed", type=int, default=0, help="seed of the data and of both trainings")
    p.add_argument("--workers", type=int, default=os.cpu_count(), help="processes per phase")
    args = p.parse_args(argv)
    if args.size is not None:
        args.size_single_frame = args.size_3d = args.size
    return args


class Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The module docstring as written, and every flag's default after its help (unless the help says it)."""

    def _get_help_string(self, action):
        return action.help if "(default:" in (action.help or "") else super()._get_help_string(action)


def run_phase(name, script, argv):
    """Run `python script argv` from the repository root; returns its wall time in seconds. A failing
    phase ends the rehearsal with its name (its own message is printed just above)."""
    # tools/x.py runs as a module (python -m tools.x) so that it finds the repo's modules
    run = ["-m", script[:-3].replace("/", ".")] if script.startswith("tools/") else [script]
    cmd = [sys.executable, *run] + [str(a) for a in argv]
    print(f"\n=== {name}: {' '.join(cmd[1:])}", flush=True)
    # Passive OpenMP waits: PyTorch's threads sleep instead of spinning while the loader processes
    # decode on the same few cores (spinning threads made CPU testing several times slower).
    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    t0 = time.time()
    if subprocess.run(cmd, cwd=REPO, env=env).returncode != 0:
        raise SystemExit(f"rehearsal stopped: the {name} phase failed (its message is above); fix it and run "
                         f"the same command again: finished phases are reused")
    return time.time() - t0


def count_lines(path):
    with open(path, encoding="utf-8") as f:
        return sum(1 for line in f if line.strip())


def load_average():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # not on every platform
        return None


def main(args, argv=None):
    data, run = Path(args.data_root), Path(args.out)
    common = ["--data-root", data, "--workers", args.workers]  # and --seed for the trainings
    phases = []  # (name, seconds, videos the cost is per)
    load_before = load_average()

    gen = ["--like-ucf101", "--out", data, "--seed", args.seed, "--frames", args.frames, "--workers", args.workers]
    gen += ["--max-per-class", args.max_per_class] if args.max_per_class else []
    seconds = run_phase("generate", "tools/make_toy_ucf101.py", gen)
    lists = data / "ucfTrainTestlist"
    n_train, n_test = count_lines(lists / "trainlist01.txt"), count_lines(lists / "testlist01.txt")
    n_all = len(json.loads((data / "toy_classes.json").read_text())["n_frames"])
    try:  # the train list less the held-out groups
        n_fit = len(hf.getUCF101_subsets(str(data), 1, VAL_GROUPS)[1][0])
    except ValueError as e:
        raise SystemExit(f"{e}: a reduced rehearsal needs --max-per-class 4 or more") from None
    phases.append(("generate", seconds, n_all))
    phases.append(("prepare (compact store)", run_phase("prepare", "tools/prepare_data.py",
                                                         ["--data-root", data, "--workers", args.workers]), n_all))

    sf, td = run / "single_frame", run / "3d"
    # One group of every class is held out of the train list (--val-groups 1): the fusion weight is
    # chosen on it, never on the test videos.
    held_out = ["--val-groups", VAL_GROUPS]
    seconds = run_phase("train single frame", "train_single_frame.py",
                        common + ["--seed", args.seed] + train_single_frame_flags(args) + held_out
                        + ["--out", sf, "--resume"])
    phases.append((f"train single frame ({args.epochs_single_frame} epochs)", seconds,
                   n_fit * args.epochs_single_frame))
    seconds = run_phase("train 3D", "train_3d.py",
                        common + ["--seed", args.seed] + train_3d_flags(args) + held_out + ["--out", td, "--resume"])
    phases.append((f"train 3D ({args.epochs_3d} epochs)", seconds, n_fit * args.epochs_3d))
    for name, script, ckpt in (("test single frame", "test_single_frame.py", sf), ("test 3D", "test_3d.py", td)):
        for subset, label, n in (("val", "held-out videos", n_train - n_fit), ("test", "every test video", n_test)):
            seconds = run_phase(f"{name} ({subset})", script,
                                common + held_out + test_flags(subset, ckpt / "checkpoint.pt", f"{ckpt}_{subset}"))
            phases.append((f"{name} ({label})", seconds, n))
    seconds = run_phase("fuse", "combine_results.py", [
        "--single-frame", f"{sf}_test", "--3d", f"{td}_test", "--out", run / "combined",
        "--val-single-frame", f"{sf}_val", "--val-3d", f"{td}_val",
        "--sweep", "--toy-classes", data / "toy_classes.json"])
    # the discussion beside the rehearsal's report: the student's report/discussion.md is not touched
    discussion = Path(args.pdf).with_name(Path(args.pdf).stem + "_discussion.md")
    seconds += run_phase("report", "report/make_report.py", ["--results", run / "combined", "--pdf", args.pdf,
                                                             "--discussion", discussion])
    phases.append(("fuse + report", seconds, n_test))

    results = json.loads((run / "combined" / "results.json").read_text())
    total = sum(s for _, s, _ in phases)
    run.mkdir(parents=True, exist_ok=True)
    (run / "phases.json").write_text(json.dumps(
        {"phases": [{"phase": p, "seconds": round(s, 2), "videos": n} for p, s, n in phases],
         "total_seconds": round(total, 2), "cpu_count": os.cpu_count(), "args": vars(args)}, indent=1))
    summary = make_summary(args, argv, results, phases, dict(classes=len(results["class_list"]), videos=n_all,
                           train=n_train, held_out=n_train - n_fit, test=n_test), load_before, load_average())
    print_summary(summary)
    if args.results_json:
        path = Path(args.results_json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(summary, indent=1) + "\n")
        print(f"wrote {path}")
    return results


# ----------------------------------------------------------------------------- the summary

def make_summary(args, argv, results, phases, counts, load_before, load_after):
    """What --results-json writes: settings, data counts, accuracies, the lesson's figures, phase times."""
    r = lambda x: None if x is None else round(x, 4)
    mp = results.get("motion_pairs", {}).get("models", {})
    return {
        "command": " ".join(["python -m tools.rehearse", *map(str, sys.argv[1:] if argv is None else argv)]),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(terse=True),
                    "python": platform.python_version(), "torch": _torch_version(),
                    "load_average_before": load_before, "load_average_after": load_after},
        "data": counts,
        "models": {k: {f"top{n}": r(results["models"][k][f"top{n}"]) for n in (1, 5, 10)} for k in MODELS},
        "motion_pairs": {k: {"within_pair": r(mp[k]["within_pair"]), "other_top1": r(mp[k]["other_top1"]),
                             "top1": r(mp[k]["top1"]), "n_videos": mp[k]["n_videos"],
                             "pairs": {" / ".join(p["pair"]): r(p["within_pair"]) for p in mp[k]["pairs"]}}
                         for k in MODELS if k in mp},
        "fusion": {"weight": results.get("fusion", {}).get("weight"),
                   "chosen_on": results.get("fusion", {}).get("chosen_on")},
        "phases": [{"phase": p, "seconds": round(s, 1), "videos": n} for p, s, n in phases],
        "total_seconds": round(sum(s for _, s, _ in phases), 1),
    }


def _torch_version():
    try:
        import torch
        return torch.__version__
    except ImportError:
        return None


def print_summary(s):
    d = s["data"]
    print(f"\nRehearsal at UCF-101's scale: {d['classes']} classes, {d['videos']} videos, split 1: "
          f"{d['train']} train / {d['test']} test")
    for key, label in MODELS.items():
        m = s["models"][key]
        print(f"{label:<13} video-level top-1 {100 * m['top1']:6.2f}%  top-5 {100 * m['top5']:6.2f}%  "
              f"top-10 {100 * m['top10']:6.2f}%")
    mp = s["motion_pairs"]
    if mp:
        print("appearance classes, top-1: " + ", ".join(f"{MODELS[k]} {_pct(mp[k]['other_top1'])}" for k in mp))
        print("motion-only pairs, within-pair accuracy (chance 50%): " + ", ".join(
            f"{MODELS[k]} {_pct(mp[k]['within_pair'])}" for k in mp))
    print(f"\n{'phase':<38} {'wall time':>10} {'per video':>11}")
    for p in s["phases"]:
        print(f"{p['phase']:<38} {p['seconds']:9.1f}s {1000 * p['seconds'] / max(p['videos'], 1):9.2f}ms")
    print(f"{'total':<38} {s['total_seconds']:9.1f}s ({s['total_seconds'] / 60:.1f} min)")
    print(f"load average (1, 5, 15 min) before {s['machine']['load_average_before']}, "
          f"after {s['machine']['load_average_after']}, {s['machine']['cpu_count']} CPUs")


def _pct(x, digits=1):
    return "n/a" if x is None else f"{100 * x:.{digits}f}%"


def markdown_table(summary: dict) -> str:
    """The Markdown that docs/rehearsal.md shows of a --results-json summary (pure: no files read):
    the accuracies with the lesson's figures, the 3D model per motion pair, each phase's wall time."""
    s, mp = summary, summary["motion_pairs"]
    lines = ["| model | top-1 | top-5 | top-10 | appearance classes, top-1 | motion-only pairs, within-pair |",
             "|---|---:|---:|---:|---:|---:|"]
    for k, label in MODELS.items():
        m, p = s["models"][k], mp.get(k, {})
        lines.append(f"| {label} | {_pct(m['top1'], 2)} | {_pct(m['top5'], 2)} | {_pct(m['top10'], 2)} | "
                     f"{_pct(p.get('other_top1'))} | {_pct(p.get('within_pair'))} |")
    if mp:
        lines += ["", "| motion-only pair | single frame | 3D | fused |", "|---|---:|---:|---:|"]
        for pair in mp["3d"]["pairs"]:
            lines.append(f"| {pair} | " + " | ".join(_pct(mp[k]["pairs"][pair]) for k in MODELS if k in mp) + " |")
    lines += ["", "| phase | wall time | per video |", "|---|---:|---:|"]
    for p in s["phases"]:
        lines.append(f"| {p['phase']} | {p['seconds']:.1f} s | {1000 * p['seconds'] / max(p['videos'], 1):.2f} ms |")
    lines.append(f"| total | {s['total_seconds']:.1f} s ({s['total_seconds'] / 60:.1f} min) | |")
    m, d = s["machine"], s["data"]
    before, after = m.get("load_average_before"), m.get("load_average_after")
    load = (f"; load average (1, 5, 15 min) {', '.join(map(str, before))} before and {', '.join(map(str, after))} "
            f"after" if before and after else "")
    lines += ["", f"`{s['command']}`: {d['classes']} classes, {d['videos']} videos, split 1 "
                  f"({d['train']} train of which {d['held_out']} held out, {d['test']} test); fusion weight "
                  f"{s['fusion']['weight']} on single frame, chosen on the held-out videos. {m['cpu_count']} CPUs, "
                  f"torch {m['torch']}{load}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main(parse_args())
