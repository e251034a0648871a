"""
Combine the single-frame and 3D models' video-level predictions (late fusion) and compare all
three.

Usage:
    python combine_results.py --single-frame runs/single_frame_test --3d runs/3d_test
        --out runs/combined
    python combine_results.py --weight 0.3 --sweep
    python combine_results.py ... --val-single-frame runs/single_frame_val --val-3d runs/3d_val

With validation predictions (test scripts run with --subset val on the groups that training held
out, --val-groups N) the fusion weight is the one with the best video-level top-1 on them, and the
test accuracy is reported at that weight; without, the fixed --weight is used and results.json says
so (fusion.chosen_on "fixed"). --sweep scores every weight on the test set: an oracle, not a result.
Every model's top-1 gets a 95% bootstrap interval (videos resampled, fixed seed) and each pair of
models an exact McNemar test on the videos one gets right and the other wrong.

--single-frame / --3d take a run folder (its predictions.h5 is used) or a predictions.h5 file.
Videos are matched by name, never by file order. Fused scores are
log_softmax(w * single_frame + (1 - w) * 3d) of the per-video log-probabilities (see metrics.fuse).
Writes <out>/results.json and <out>/confusion_{single_frame,3d,fused}.npy (row-normalised, rows
divided by the number of test videos of each class, failed videos included). All accuracies are
video-level.
"""
import argparse
import json
import os

import numpy as np

import metrics
import scoring
import utils

MODELS = ("single_frame", "3d", "fused")
SWEEP_NOTE = "oracle: weights scored on the test set itself, optimistic, not a fair held-out result"
# pairs compared by McNemar's test, (a, b) -> results.json paired.<a>_vs_<b>
PAIRS = (("3d", "single_frame"), ("fused", "3d"), ("fused", "single_frame"))
# prediction attributes that must agree between all inputs of one fusion: fused scores must come
# from views and videos made alike
SETTINGS = ("split", "val_groups", "crops", "flip")
ROLES = {"single_frame": ("single_frame", "--single-frame"), "3d": ("3d", "--3d"),
         "val_single_frame": ("single_frame", "--val-single-frame"), "val_3d": ("3d", "--val-3d")}


def check_inputs(inputs: dict) -> None:
    """inputs {role: Predictions}, roles "single_frame", "3d" and optionally "val_single_frame",
    "val_3d". Raises ValueError naming the files and flags when an input holds the other model (from
    the model its file records, never its path), a test input holds another subset than test or a
    validation input another than val, the inputs were made with other SETTINGS (split,
    --val-groups, --crops, --flip), or validation predictions come from other checkpoints than the
    test predictions."""
    for role, p in inputs.items():
        model, flag = ROLES[role]
        if p.attrs["model"] != model:
            raise ValueError(f"{flag} {p.path} holds predictions of the {p.attrs['model']} model, "
                             f"not the {model} one: swap the inputs or pass the right run folder")
        want = "val" if role.startswith("val_") else "test"
        if p.attrs["subset"] != want:
            raise ValueError(f"{flag} {p.path} holds predictions of the {p.attrs['subset']} "
                             f"subset, but was given as "
                             f"{'validation' if want == 'val' else 'test'} predictions "
                             f"(--subset {want})")
    for key in SETTINGS:
        values = {p.path: p.attrs[key] for p in inputs.values()}
        if len(set(map(str, values.values()))) > 1:
            raise ValueError(f"predictions made with different {key} cannot be fused: "
                             + ", ".join(f"{path} has {v}" for path, v in values.items()))
    for model in ("single_frame", "3d"):
        val = inputs.get(f"val_{model}")
        if (val is not None
                and val.attrs["checkpoint_sha256"] != inputs[model].attrs["checkpoint_sha256"]):
            raise ValueError(f"{val.path} and {inputs[model].path} were scored with different "
                             f"{model} checkpoints: the fusion weight must be chosen on the model "
                             f"it is used with")


def fusion_weight(args: argparse.Namespace, inputs: dict) -> tuple[float, dict]:
    """The fusion weight and how it was chosen -> (weight, results.json "fusion" dict)."""
    if "val_single_frame" not in inputs:
        return args.weight, {"weight": args.weight, "chosen_on": "fixed", "validation_videos": 0}
    vs = inputs["val_single_frame"]
    vt = scoring.align(vs, inputs["val_3d"])
    if len(vs.videos) == 0:
        raise ValueError(f"{vs.path} and {vt.path} hold no validation video")
    overlap = sorted(set(vs.videos) & set(inputs["single_frame"].videos))
    if overlap:
        raise ValueError(f"{vs.path} shares {len(overlap)} videos with the test predictions "
                         f"{inputs['single_frame'].path} (e.g. {overlap[0]}): validation must be "
                         f"held out")
    w, rows = metrics.choose_fusion_weight(vs.scores, vt.scores, vs.labels, prefer=args.weight)
    return w, {"weight": w, "chosen_on": "validation", "validation_videos": len(vs.videos),
               "validation_inputs": {"single_frame": vs.path, "3d": vt.path},
               "validation_rows": rows}


def uncertainty(scores: dict, labels: np.ndarray) -> tuple[dict, dict]:
    """{model: (N, C) scores} -> ({model: [low, high]} 95% bootstrap intervals of top-1,
    {"<a>_vs_<b>": {"a_only", "b_only", "p_value"}} exact McNemar tests for PAIRS)."""
    correct = {k: metrics.correct_top1(v, labels) for k, v in scores.items()}
    ci = {k: list(metrics.bootstrap_ci(c)) for k, c in correct.items()}
    paired = {}
    for a, b in PAIRS:
        a_only, b_only, p = metrics.mcnemar_exact(correct[a], correct[b])
        paired[f"{a}_vs_{b}"] = {"a_only": a_only, "b_only": b_only, "p_value": p}
    return ci, paired


def to_json(summary: dict, videos: np.ndarray, class_list: list[str], n: int = 10) -> dict:
    """metrics.summarize output -> JSON-able dict with best/worst classes and most confused
    pairs."""
    acc, counts = summary["per_class"]["accuracy"], summary["per_class"]["n_videos"]
    best, worst = metrics.best_worst_classes(acc, counts, class_list, n)
    out = {k: summary[k] for k in ("level", "n_videos", "n_failed", "top1", "top5", "top10",
                                   "mean_class_accuracy")}
    out["failed"] = [str(v) for v in videos[summary["predicted"] < 0]]
    out["per_class_accuracy"] = [None if np.isnan(x) else float(x) for x in acc]
    out["per_class_n_videos"] = [int(x) for x in counts]
    out["best"], out["worst"] = best, worst
    out["most_confused"] = metrics.most_confused_pairs(summary["confusion"],
                                                       summary["confusion_counts"], class_list, n)
    return out


def sweep(sf: np.ndarray, td: np.ndarray, labels: np.ndarray, class_list: list[str],
          steps: int = 11) -> list[dict]:
    """Video-level metrics of the fused model for weights 0..1 (weight of the single-frame
    model)."""
    rows = []
    for w in np.linspace(0.0, 1.0, steps):
        s = metrics.summarize(metrics.fuse(sf, td, float(w)), labels, class_list)
        rows.append({"weight": round(float(w), 4), **{k: s[k] for k in ("top1", "top5", "top10",
                                                                         "mean_class_accuracy")}})
    return rows


def motion_pairs(scores: np.ndarray, labels: np.ndarray, class_list: list[str],
                 pairs: list) -> dict:
    """Accuracy on the toy's motion-only class pairs (make_toy_ucf101.py), whose members look alike
    in any single frame. scores `(N, C)`, labels `(N,)`, pairs [(A, B), ...] -> dict with top1 over
    the pairs' videos, within_pair (only the pair's two scores decide: chance is 50%), top1 of the
    other videos, and per pair its 2x2 confusion counts [[A->A, A->B], [B->A, B->B]] (top-1
    predictions)."""
    index, preds = {str(c): i for i, c in enumerate(class_list)}, metrics.predicted_classes(scores)
    failed = metrics.failed_rows(scores)
    within, in_pair, rows = np.zeros(len(labels), bool), np.zeros(len(labels), bool), []
    mean = lambda x: float(x.mean()) if len(x) else None
    for a, b in pairs:
        ab = np.array([index[a], index[b]])
        sel = np.isin(labels, ab)
        choice = ab[np.argmax(np.nan_to_num(scores[sel][:, ab], nan=-np.inf), axis=1)]
        within[sel] = (choice == labels[sel]) & ~failed[sel]  # a failed video is wrong here too
        in_pair |= sel
        rows.append({"pair": [a, b], "n_videos": int(sel.sum()),
                     "top1": mean(preds[sel] == labels[sel]),
                     "within_pair": mean(within[sel]),
                     "confusion": [[int(np.sum((labels == t) & (preds == p))) for p in ab]
                                   for t in ab]})
    return {"n_videos": int(in_pair.sum()), "top1": mean(preds[in_pair] == labels[in_pair]),
            "within_pair": mean(within[in_pair]),
            "other_top1": mean(preds[~in_pair] == labels[~in_pair]),
            "pairs": rows}


def pct(x: float) -> str:
    return f"{100 * x:6.2f}%"


def print_model(name: str, r: dict) -> None:
    print(f"\n== {name}: video-level, {r['n_videos']} videos, {r['n_failed']} failed "
          f"(counted wrong) ==")
    print(f"video-level top-1 {pct(r['top1'])}  top-5 {pct(r['top5'])}  top-10 {pct(r['top10'])}  "
          f"mean class accuracy {pct(r['mean_class_accuracy'])}")
    if "top1_ci95" in r:
        print(f"top-1 95% bootstrap interval (videos resampled): {pct(r['top1_ci95'][0])} - "
              f"{pct(r['top1_ci95'][1])}")
    for title, rows in (("10 best classes", r["best"]), ("10 worst classes", r["worst"])):
        print(f"{title} (video-level accuracy, n test videos):")
        for x in rows:
            print(f"  {x['class']:<24} {pct(x['accuracy'])}  n={x['n_videos']}")
    print("10 most confused pairs (true -> predicted: fraction of the true class's videos, count):")
    for x in r["most_confused"]:
        print(f"  {x['true']:<24} -> {x['predicted']:<24} {pct(x['fraction'])}  {x['count']}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = utils.ArgumentParser(description=__doc__)
    p.add_argument("--single-frame", default="runs/single_frame_test",
                   help="run folder or predictions.h5 of test_single_frame.py")
    p.add_argument("--3d", "--three-d", dest="three_d", default="runs/3d_test",
                   help="run folder or predictions.h5 of test_3d.py")
    p.add_argument("--weight", type=utils.unit_interval, default=0.5,
                   help="weight of the single-frame model, from 0 (3D alone) to 1 (single-frame "
                        "alone); with validation predictions, only where weights tie")
    p.add_argument("--sweep", action="store_true",
                   help="also report fused accuracy for weights 0, 0.1, .., 1")
    p.add_argument("--out", default="runs/combined",
                   help="run folder: results.json, confusion_*.npy")
    p.add_argument("--val-single-frame", default=None,
                   help="run folder or predictions.h5 of test_single_frame.py --subset val: the "
                        "fusion weight is chosen on it and --val-3d (default: the fixed --weight)")
    p.add_argument("--val-3d", "--val-three-d", dest="val_three_d", default=None,
                   help="run folder or predictions.h5 of test_3d.py --subset val")
    p.add_argument("--toy-classes", default=None,
                   help="toy_classes.json of a toy data root (tools/make_toy_ucf101.py): adds "
                        "motion-pair accuracies")
    args = p.parse_args(argv)
    if (args.val_single_frame is None) != (args.val_three_d is None):
        p.error("--val-single-frame and --val-3d go together: give both or neither")
    return args


def read_toy_pairs(path: str | None) -> list | None:
    """The motion-only pairs of a toy data root's toy_classes.json, or None without
    --toy-classes."""
    if path is None:
        return None
    try:
        with open(path) as f:
            return json.load(f)["pairs"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"--toy-classes {path}: cannot read its motion pairs "
                         f"({utils.first_line(e)}); pass the toy_classes.json of the toy data "
                         f"root, or leave the flag out") from None


def main(args: argparse.Namespace) -> dict:
    pairs = read_toy_pairs(args.toy_classes)  # before any work: a wrong path costs nothing
    sf = scoring.load_run(args.single_frame)
    inputs = {"single_frame": sf, "3d": scoring.load_run(args.three_d)}
    if args.val_single_frame:
        inputs.update(val_single_frame=scoring.load_run(args.val_single_frame),
                      val_3d=scoring.load_run(args.val_three_d))
    # roles, subsets and views first: they explain a mismatch better than the video sets
    check_inputs(inputs)
    td = inputs["3d"] = scoring.align(sf, inputs["3d"])
    weight, fusion = fusion_weight(args, inputs)
    class_list = [str(c) for c in sf.class_list]
    if pairs is not None and not {c for p in pairs for c in p} <= set(class_list):  # before results
        raise ValueError(f"--toy-classes {args.toy_classes} names classes that the predictions do "
                         f"not have")
    scores = {"single_frame": sf.scores, "3d": td.scores,
              "fused": metrics.fuse(sf.scores, td.scores, weight)}
    os.makedirs(args.out, exist_ok=True)
    results = {"level": "video", "weight_single_frame": weight, "fusion": fusion,
               "inputs": {"single_frame": sf.path, "3d": td.path},
               "attrs": {"single_frame": sf.attrs, "3d": td.attrs},
               "n_videos": len(sf.videos), "class_list": class_list, "models": {}}
    if fusion["chosen_on"] == "validation":
        print(f"fusion weight {weight:g} on single-frame: the best video-level top-1 on the "
              f"{fusion['validation_videos']} validation videos (" + ", ".join(
                  f"{r['weight']:g}: {pct(r['top1']).strip()}"
                  for r in fusion["validation_rows"]) + ")")
    else:
        print(f"fusion weight {weight:g} on single-frame: fixed (--weight; no validation "
              f"predictions given, so it was not chosen on held-out videos)")
    ci, results["paired"] = uncertainty(scores, sf.labels)
    per_class = {}
    for name in MODELS:
        s = metrics.summarize(scores[name], sf.labels, class_list)
        per_class[name] = s["per_class"]["accuracy"]
        np.save(os.path.join(args.out, f"confusion_{name}.npy"), s["confusion"])
        results["models"][name] = {**to_json(s, sf.videos, class_list), "top1_ci95": ci[name]}
        print_model(f"{name} (fusion weight {weight:g} on single-frame, {fusion['chosen_on']})"
                    if name == "fused" else name, results["models"][name])
    print("\nExact McNemar tests (videos only the first model gets right / only the second, "
          "two-sided p):")
    for key, r in results["paired"].items():
        print(f"  {key:<26} {r['a_only']:5d} / {r['b_only']:<5d} p = {r['p_value']:.3g}")
    gain_3d, gain_sf = metrics.class_gains(per_class["single_frame"], per_class["3d"], class_list)
    results["gains"] = {"3d_over_single_frame": gain_3d, "single_frame_over_3d": gain_sf}
    for title, rows in (("3D over single-frame", gain_3d), ("single-frame over 3D", gain_sf)):
        print(f"\nClasses where {title} gains most (video-level accuracy, single-frame -> 3D):")
        for x in rows:
            print(f"  {x['class']:<24} {pct(x['acc_a'])} -> {pct(x['acc_b'])}  "
                  f"({100 * x['gain']:+.2f} points)")
    if args.sweep:
        results["sweep"] = {"note": SWEEP_NOTE,
                            "rows": sweep(sf.scores, td.scores, sf.labels, class_list)}
        print(f"\nFusion weight sweep, video-level ({SWEEP_NOTE}):")
        print("  weight(single-frame)   top-1    top-5   top-10  mean-class")
        for r in results["sweep"]["rows"]:
            print(f"  {r['weight']:20.2f} {pct(r['top1'])} {pct(r['top5'])} {pct(r['top10'])} "
                  f"{pct(r['mean_class_accuracy'])}")
    if pairs is not None:
        results["motion_pairs"] = {"source": args.toy_classes, "models": {
            k: motion_pairs(scores[k], sf.labels, class_list, pairs) for k in MODELS}}
        print("\nMotion-only pairs (toy; one frame cannot tell the members apart), video-level:")
        for k, r in results["motion_pairs"]["models"].items():
            print(f"  {k:<13} within-pair accuracy {pct(r['within_pair'] or 0)} (chance 50%)  "
                  f"top-1 on the pairs' {r['n_videos']} videos {pct(r['top1'] or 0)}, "
                  f"on the other classes {pct(r['other_top1'] or 0)}")
    utils.write_json(os.path.join(args.out, "results.json"), results)
    print(f"\nwrote {os.path.join(args.out, 'results.json')} and confusion_*.npy")
    return results


if __name__ == "__main__":
    utils.run_cli(main, parse_args(), "combine_results.py")
