"""Summarise the assignment run on several UCF-101 splits: per model, top-1 per split, mean and
std.

Usage:
    python -m tools.splits_summary --runs runs/toy/split1 runs/toy/split2 runs/toy/split3
        --out runs/toy

Each run folder holds combined/results.json (combine_results.py) of one split (or pass the
results.json files or combined/ folders themselves). The runs must differ in their split only:
the same models and training settings, test-time settings (mode, stride, crops, flip, ...),
validation groups and way of choosing the fusion weight: everything the prediction files record
but the split and what follows from it (the checkpoints, their digests). Writes
<out>/splits_summary.json. UCF-101 papers report the mean over the three official splits; the std
is the sample standard deviation (ddof 1) over splits, 0 for a single split. All accuracies are
video-level top-1.
"""
import argparse
import json
import os

import numpy as np

import utils

MODELS = ("single_frame", "3d", "fused")
# recorded attributes that may differ between the runs of one summary: the split and what follows
# from it, and the number of processes (an optimizer step's batch is the same whatever their number)
VARYING = ("split", "checkpoint", "checkpoint_sha256", "processes")


def results_path(run: str) -> str:
    """A run folder, its combined/ folder or a results.json -> the results.json path."""
    for candidate in (run, os.path.join(run, "results.json"),
                      os.path.join(run, "combined", "results.json")):
        if os.path.isfile(candidate):
            return candidate
    raise FileNotFoundError(f"no results.json in {run} (expected {run}/combined/results.json from "
                            f"combine_results.py)")


def load_results(run: str) -> tuple[str, dict, int]:
    """-> (path, results dict, split); ValueError naming the file when it is not results.json of
    combine_results.py."""
    path = results_path(run)
    try:
        with open(path) as f:
            results = json.load(f)
        split = int(results["attrs"]["single_frame"]["split"])
        # built only to fail here, naming the file, when a model's top1 is missing
        {m: results["models"][m]["top1"] for m in MODELS}
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a results.json written by combine_results.py "
                         f"({e!r})") from None
    return path, results, split


def settings(results: dict) -> dict:
    """What must agree between the runs of one summary, as a flat {name: value}: per model its
    prediction attributes other than VARYING ("3d.crops", ...), the classes, and how the fusion
    weight was chosen (and the weight itself when it was fixed)."""
    out = {f"{m}.{k}": v for m in ("single_frame", "3d") for k, v in results["attrs"][m].items()
           if k not in VARYING}
    fusion = results["fusion"]
    out["fusion.chosen_on"] = fusion["chosen_on"]
    if fusion["chosen_on"] == "fixed":
        out["fusion.weight"] = fusion["weight"]
    out["class_list"] = results["class_list"]
    return out


def summarize(runs: list[tuple[str, dict, int]]) -> dict:
    """[(path, results, split)] -> the splits_summary dict; ValueError naming the files when the
    runs repeat a split or differ in anything but the split."""
    splits = [s for _, _, s in runs]
    if len(set(splits)) != len(splits):
        raise ValueError("several runs of the same split: "
                         + ", ".join(f"{p} (split {s})" for p, _, s in runs))
    ref_path, ref, _ = runs[0]
    ref_settings = settings(ref)
    for path, results, _ in runs[1:]:
        other = settings(results)
        diff = sorted(k for k in set(ref_settings) | set(other)
                      if ref_settings.get(k) != other.get(k))
        if diff:
            k = diff[0]
            raise ValueError(f"{ref_path} and {path} were made with different settings "
                             f"({', '.join(diff)}; e.g. {k}: {ref_settings.get(k)} vs "
                             f"{other.get(k)}): a split summary needs runs that differ in the "
                             f"split only")
    models = {}
    for m in MODELS:
        top1 = np.array([r["models"][m]["top1"] for _, r, _ in runs])
        models[m] = {"per_split": {str(s): float(t) for s, t in zip(splits, top1)},
                     "top1_mean": float(top1.mean()),
                     "top1_std": float(top1.std(ddof=1)) if len(top1) > 1 else 0.0}
    fusion = {str(s): r["fusion"]["weight"] for _, r, s in runs}
    return {"level": "video", "metric": "top1", "std_ddof": 1, "splits": splits,
            "runs": {str(s): p for p, _, s in runs}, "models": models, "fusion_weight": fusion,
            "settings": ref_settings}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = utils.ArgumentParser(description=__doc__)
    p.add_argument("--runs", nargs="+", required=True,
                   help="run folders (each with combined/results.json), one per split")
    p.add_argument("--out", required=True, help="folder to write splits_summary.json into")
    return p.parse_args(argv)


def main(args: argparse.Namespace) -> dict:
    summary = summarize([load_results(r) for r in args.runs])
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "splits_summary.json")
    utils.write_json(path, summary)
    print(f"video-level top-1 over splits {', '.join(map(str, summary['splits']))}:")
    for m, r in summary["models"].items():
        per = "  ".join(f"split {s} {100 * t:6.2f}%" for s, t in r["per_split"].items())
        print(f"  {m:<13} {per}  mean {100 * r['top1_mean']:6.2f}%  std {100 * r['top1_std']:5.2f}")
    print(f"wrote {path}")
    return summary


if __name__ == "__main__":
    utils.run_cli(main, parse_args(), "tools/splits_summary.py")
