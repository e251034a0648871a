"""Rehearse the whole assignment at UCF-101's scale on a laptop: 101 classes, 13,320 videos, every script.

Usage: python rehearse.py [--data-root data/rehearsal] [--run runs/rehearsal] [--max-per-class N]

Runs, each as its own process exactly as a user would type it: make_toy_ucf101.py --like-ucf101 (one
synthetic MPEG-4 video for every name of the official lists), prepare_data.py, train_single_frame.py,
train_3d.py, test_single_frame.py and test_3d.py on every test video of the split, combine_results.py
and report/make_report.py. One group of every class is held out of the train list, and the fusion
weight is chosen on it (--val-groups 1). The models are small ResNets trained from scratch on small frames, so that
the whole job fits a few CPU cores; the lesson (3D above single-frame overall and on the motion-only
pairs, the fusion at least as good as the better one) should show all the same. Every phase resumes:
a rerun after an interruption redoes only what is missing.

Ends by printing the video-level top-1/5/10 lines and a table of each phase's wall time and cost per
video; the table is also written to <run>/phases.json.
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import helperFunctions as hf

REPO = Path(__file__).resolve().parents[1]
VAL_GROUPS = 1
# The 3D ResNet-10 at half width: at 16x16 inputs layer3 and layer4 see 1x1 maps, where the full width's
# 512x512x27 weight gradients cost most of a training step on a CPU (3.4x faster a step at 0.5).
WIDEN_3D = 0.5
MODELS = {"single_frame": "single frame", "3d": "3D", "fused": "fused"}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default="data/rehearsal", help="where the synthetic UCF-101 is written")
    p.add_argument("--run", default="runs/rehearsal", help="run folder: checkpoints, predictions, results")
    p.add_argument("--report", default="report/rehearsal.pdf", help="the report's PDF")
    p.add_argument("--max-per-class", type=int, default=None, help="at most this many videos per class "
                                                                    "(a reduced rehearsal; default: all)")
    p.add_argument("--frames", type=int, default=40, help="median video length in frames (UCF-101's / 4)")
    p.add_argument("--size", type=int, default=16, help="input height and width of both models")
    # The 3D model learns the motion-only pairs from its third epoch on (appearance comes first).
    p.add_argument("--epochs-2d", type=int, default=2)
    p.add_argument("--epochs-3d", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=os.cpu_count(), help="processes per phase")
    return p.parse_args(argv)


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


def main(args):
    data, run = Path(args.data_root), Path(args.run)
    common = ["--data-root", data, "--workers", args.workers]  # the test scripts take no --seed: training does
    phases = []  # (name, seconds, videos the cost is per)

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
    small_2d = ["--weights", "none", "--arch", "resnet18", "--train-from", "all", "--size", args.size,
                "--epochs", args.epochs_2d, "--batch-size", 64, "--lr", 1e-3, "--seed", args.seed]
    small_3d = ["--kinetics-checkpoint", "none", "--arch", "resnet10", "--widen-factor", WIDEN_3D,
                "--train-from", "all", "--layer4-blocks", 1, "--size", args.size, "--epochs", args.epochs_3d,
                "--batch-size", 32, "--lr", 1e-3, "--seed", args.seed]
    # One group of every class is held out of the train list (--val-groups 1): the fusion weight is
    # chosen on it, never on the test videos.
    held_out = ["--val-groups", VAL_GROUPS]
    seconds = run_phase("train single frame", "train_single_frame.py",
                        common + small_2d + held_out + ["--out", sf, "--resume"])
    phases.append((f"train single frame ({args.epochs_2d} epochs)", seconds, n_fit * args.epochs_2d))
    seconds = run_phase("train 3D", "train_3d.py", common + small_3d + held_out + ["--out", td, "--resume"])
    phases.append((f"train 3D ({args.epochs_3d} epochs)", seconds, n_fit * args.epochs_3d))
    for name, script, ckpt in (("test single frame", "test_single_frame.py", sf), ("test 3D", "test_3d.py", td)):
        for subset, label, n in (("val", "held-out videos", n_train - n_fit), ("test", "every test video", n_test)):
            seconds = run_phase(f"{name} ({subset})", script, common + held_out + [
                "--subset", subset, "--checkpoint", ckpt / "checkpoint.pt", "--out", f"{ckpt}_{subset}"])
            phases.append((f"{name} ({label})", seconds, n))
    seconds = run_phase("fuse", "combine_results.py", [
        "--single-frame", f"{sf}_test", "--three-d", f"{td}_test", "--out", run / "combined",
        "--val-single-frame", f"{sf}_val", "--val-three-d", f"{td}_val",
        "--sweep", "--toy-classes", data / "toy_classes.json"])
    seconds += run_phase("report", "report/make_report.py", ["--results", run / "combined", "--out", args.report])
    phases.append(("fuse + report", seconds, n_test))

    results = json.loads((run / "combined" / "results.json").read_text())
    print(f"\nRehearsal at UCF-101's scale: {len(results['class_list'])} classes, {n_all} videos, split 1: "
          f"{n_train} train / {n_test} test")
    for key, label in MODELS.items():
        r = results["models"][key]
        print(f"{label:<13} video-level top-1 {100 * r['top1']:6.2f}%  top-5 {100 * r['top5']:6.2f}%  "
              f"top-10 {100 * r['top10']:6.2f}%")
    pairs = results.get("motion_pairs", {}).get("models")
    if pairs:
        print("motion-only pairs, within-pair accuracy (chance 50%): " + ", ".join(
            f"{MODELS[k]} {100 * (pairs[k]['within_pair'] or 0):.1f}%" for k in MODELS))
    total = sum(s for _, s, _ in phases)
    print(f"\n{'phase':<38} {'wall time':>10} {'per video':>11}")
    for name, seconds, n in phases:
        print(f"{name:<38} {seconds:9.1f}s {1000 * seconds / max(n, 1):9.2f}ms")
    print(f"{'total':<38} {total:9.1f}s ({total / 60:.1f} min)")
    run.mkdir(parents=True, exist_ok=True)
    (run / "phases.json").write_text(json.dumps(
        {"phases": [{"phase": p, "seconds": round(s, 2), "videos": n} for p, s, n in phases],
         "total_seconds": round(total, 2), "cpu_count": os.cpu_count(), "args": vars(args)}, indent=1))
    return results


if __name__ == "__main__":
    main(parse_args())
