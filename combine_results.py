"""
Combine the single-frame and 3D models' video-level predictions (late fusion) and compare all three.

Usage:
    python combine_results.py --single-frame runs/single_frame_test --three-d runs/3d_test --out runs/combined
    python combine_results.py --weight 0.3 --sweep
    python combine_results.py ... --val-single-frame runs/single_frame_val --val-three-d runs/3d_val

With validation predictions (test scripts run with --subset val on the groups that training held out,
--val-groups N) the fusion weight is the one with the best video-level top-1 on them, and the test
accuracy is reported at that weight; without, the fixed --weight is used and results.json says so
(fusion.chosen_on "fixed"). --sweep scores every weight on the test set: an oracle, not a result.
Every model's top-1 gets a 95% bootstrap interval (videos resampled, fixed seed) and each pair of
models an exact McNemar test on the videos one gets right and the other wrong.

--single-frame / --three-d take a run folder (its predictions.h5 is used) or a predictions.h5 file.
Videos are matched by name, never by file order. Fused scores are
log_softmax(w * single_frame + (1 - w) * 3d) of the per-video log-probabilities (see metrics.fuse).
Writes <out>/results.json and <out>/confusion_{single_frame,3d,fused}.npy (row-normalised, rows divided
by the number of test videos of each class, failed videos included). All accuracies are video-level.
"""
import argparse
import json
import os

import numpy as np

import metrics
import scoring
from utils import atomic_write

MODELS = ("single_frame", "3d", "fused")
SWEEP_NOTE = "oracle: weights scored on the test set itself, optimistic, not a fair held-out result"
# pairs compared by McNemar's test, (a, b) -> results.json paired.<a>_vs_<b>
PAIRS = (("3d", "single_frame"), ("fused", "3d"), ("fused", "single_frame"))
# prediction attributes that must agree between all inputs of one fusion (absent: the defaults then)
SETTINGS = {"split": 1, "val_groups": 0, "crops": "center", "flip": False}


def check_inputs(inputs):
    """inputs {role: Predictions}, roles "single_frame", "3d" and optionally "val_single_frame",
    "val_3d". Raises ValueError naming the files when a test input holds another subset than test,
    a validation input another than val, or the inputs were made with other SETTINGS (split,
    --val-groups, --crops, --flip): fused scores must come from views and videos made alike."""
    for role, p in inputs.items():
        want = "val" if role.startswith("val_") else "test"
        got = p.attrs.get("subset", "test")
        if got != want:
            raise ValueError(f"{p.path} holds predictions of the {got} subset, but was given as "
                             f"{'validation' if want == 'val' else 'test'} predictions (--subset {want})")
    first = next(iter(inputs.values()))
    for key, default in SETTINGS.items():
        values = {p.path: p.attrs.get(key, default) for p in inputs.values()}
        if len(set(map(str, values.values()))) > 1:
            raise ValueError(f"predictions made with different {key} cannot be fused: "
                             + ", ".join(f"{path} has {v}" for path, v in values.items()))
    return first


def fusion_weight(args, inputs):
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
                         f"{inputs['single_frame'].path} (e.g. {overlap[0]}): validation must be held out")
    w, rows = metrics.choose_fusion_weight(vs.scores, vt.scores, vs.labels, prefer=args.weight)
    return w, {"weight": w, "chosen_on": "validation", "validation_videos": len(vs.videos),
               "validation_inputs": {"single_frame": vs.path, "3d": vt.path}, "validation_rows": rows}


def uncertainty(scores, labels):
    """{model: (N, C) scores} -> ({model: [low, high]} 95% bootstrap intervals of top-1,
    {"<a>_vs_<b>": {"a_only", "b_only", "p_value"}} exact McNemar tests for PAIRS)."""
    correct = {k: metrics.correct_top1(v, labels) for k, v in scores.items()}
    ci = {k: list(metrics.bootstrap_ci(c)) for k, c in correct.items()}
    paired = {}
    for a, b in PAIRS:
        a_only, b_only, p = metrics.mcnemar_exact(correct[a], correct[b])
        paired[f"{a}_vs_{b}"] = {"a_only": a_only, "b_only": b_only, "p_value": p}
    return ci, paired


def to_json(summary, videos, class_list, n=10):
    """metrics.summarize output -> JSON-able dict with best/worst classes and most confused pairs."""
    acc, counts = summary["per_class"]["accuracy"], summary["per_class"]["n_videos"]
    best, worst = metrics.best_worst_classes(acc, counts, class_list, n)
    out = {k: summary[k] for k in ("level", "n_videos", "n_failed", "top1", "top5", "top10",
                                   "mean_class_accuracy")}
    out["failed"] = [str(v) for v in videos[summary["predictions"] < 0]]
    out["per_class_accuracy"] = [None if np.isnan(x) else float(x) for x in acc]
    out["per_class_n_videos"] = [int(x) for x in counts]
    out["best"], out["worst"] = best, worst
    out["most_confused"] = metrics.most_confused_pairs(summary["confusion"], summary["confusion_counts"],
                                                       class_list, n)
    return out


def sweep(sf, td, labels, class_list, steps=11):
    """Video-level metrics of the fused model for weights 0..1 (weight of the single-frame model)."""
    rows = []
    for w in np.linspace(0.0, 1.0, steps):
        s = metrics.summarize(metrics.fuse(sf, td, float(w)), labels, class_list)
        rows.append({"weight": round(float(w), 4), **{k: s[k] for k in ("top1", "top5", "top10",
                                                                         "mean_class_accuracy")}})
    return rows


def motion_pairs(scores, labels, class_list, pairs):
    """Accuracy on the toy's motion-only class pairs (make_toy_ucf101.py), whose members look alike in
    any single frame. scores `(N, C)`, labels `(N,)`, pairs [(A, B), ...] -> dict with top1 over the
    pairs' videos, within_pair (only the pair's two scores decide: chance is 50%), top1 of the other
    videos, and per pair its 2x2 confusion counts [[A->A, A->B], [B->A, B->B]] (top-1 predictions)."""
    index, preds = {str(c): i for i, c in enumerate(class_list)}, metrics.predictions(scores)
    failed = metrics.failed_rows(scores)
    within, in_pair, rows = np.zeros(len(labels), bool), np.zeros(len(labels), bool), []
    mean = lambda x: float(x.mean()) if len(x) else None
    for a, b in pairs:
        ab = np.array([index[a], index[b]])
        sel = np.isin(labels, ab)
        choice = ab[np.argmax(np.nan_to_num(scores[sel][:, ab], nan=-np.inf), axis=1)]
        within[sel] = (choice == labels[sel]) & ~failed[sel]  # a failed video is wrong here too
        in_pair |= sel
        rows.append({"pair": [a, b], "n_videos": int(sel.sum()), "top1": mean(preds[sel] == labels[sel]),
                     "within_pair": mean(within[sel]),
                     "confusion": [[int(np.sum((labels == t) & (preds == p))) for p in ab] for t in ab]})
    return {"n_videos": int(in_pair.sum()), "top1": mean(preds[in_pair] == labels[in_pair]),
            "within_pair": mean(within[in_pair]), "other_top1": mean(preds[~in_pair] == labels[~in_pair]),
            "pairs": rows}


def pct(x):
    return f"{100 * x:6.2f}%"


def print_model(name, r):
    print(f"\n== {name}: video-level, {r['n_videos']} videos, {r['n_failed']} failed (counted wrong) ==")
    print(f"video-level top-1 {pct(r['top1'])}  top-5 {pct(r['top5'])}  top-10 {pct(r['top10'])}  "
          f"mean class accuracy {pct(r['mean_class_accuracy'])}")
    if "top1_ci95" in r:
        print(f"top-1 95% bootstrap interval (videos resampled): {pct(r['top1_ci95'][0])} - {pct(r['top1_ci95'][1])}")
    for title, rows in (("10 best classes", r["best"]), ("10 worst classes", r["worst"])):
        print(f"{title} (video-level accuracy, n test videos):")
        for x in rows:
            print(f"  {x['class']:<24} {pct(x['accuracy'])}  n={x['n_videos']}")
    print("10 most confused pairs (true -> predicted: fraction of the true class's videos, count):")
    for x in r["most_confused"]:
        print(f"  {x['true']:<24} -> {x['predicted']:<24} {pct(x['fraction'])}  {x['count']}")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--single-frame", default="runs/single_frame_test",
                   help="run folder or predictions.h5 of test_single_frame.py (default: %(default)s)")
    p.add_argument("--three-d", default="runs/3d_test",
                   help="run folder or predictions.h5 of test_3d.py (default: %(default)s)")
    p.add_argument("--weight", type=float, default=0.5,
                   help="weight of the single-frame model in [0, 1] (default: %(default)s)")
    p.add_argument("--sweep", action="store_true", help="also report fused accuracy for weights 0, 0.1, .., 1")
    p.add_argument("--out", default="runs/combined", help="output folder (default: %(default)s)")
    p.add_argument("--val-single-frame", default=None,
                   help="run folder or predictions.h5 of test_single_frame.py --subset val: the fusion weight is "
                        "chosen on it and --val-three-d (default: the fixed --weight)")
    p.add_argument("--val-three-d", default=None, help="run folder or predictions.h5 of test_3d.py --subset val")
    p.add_argument("--toy-classes", default=None,
                   help="toy_classes.json of a toy data root (make_toy_ucf101.py): adds motion-pair accuracies")
    return p.parse_args(argv)


def main(args):
    if (args.val_single_frame is None) != (args.val_three_d is None):
        raise ValueError("--val-single-frame and --val-three-d go together: give both or neither")
    sf = scoring.load_run(args.single_frame)
    inputs = {"single_frame": sf, "3d": scoring.load_run(args.three_d)}
    if args.val_single_frame:
        inputs.update(val_single_frame=scoring.load_run(args.val_single_frame),
                      val_3d=scoring.load_run(args.val_three_d))
    check_inputs(inputs)  # subsets and views first: they explain a mismatch better than the video sets
    td = inputs["3d"] = scoring.align(sf, inputs["3d"])
    weight, fusion = fusion_weight(args, inputs)
    class_list = [str(c) for c in sf.class_list]
    scores = {"single_frame": sf.scores, "3d": td.scores, "fused": metrics.fuse(sf.scores, td.scores, weight)}
    os.makedirs(args.out, exist_ok=True)
    results = {"level": "video", "weight_single_frame": weight, "fusion": fusion,
               "inputs": {"single_frame": sf.path, "3d": td.path},
               "attrs": {"single_frame": sf.attrs, "3d": td.attrs},
               "n_videos": len(sf.videos), "class_list": class_list, "models": {}}
    if fusion["chosen_on"] == "validation":
        print(f"fusion weight {weight:g} on single-frame: the best video-level top-1 on the "
              f"{fusion['validation_videos']} validation videos (" + ", ".join(
                  f"{r['weight']:g}: {pct(r['top1']).strip()}" for r in fusion["validation_rows"]) + ")")
    else:
        print(f"fusion weight {weight:g} on single-frame: fixed (--weight; no validation predictions given, "
              f"so it was not chosen on held-out videos)")
    ci, results["paired"] = uncertainty(scores, sf.labels)
    per_class = {}
    for name in MODELS:
        s = metrics.summarize(scores[name], sf.labels, class_list)
        per_class[name] = s["per_class"]["accuracy"]
        np.save(os.path.join(args.out, f"confusion_{name}.npy"), s["confusion"])
        results["models"][name] = {**to_json(s, sf.videos, class_list), "top1_ci95": ci[name]}
        print_model(f"{name} (fusion weight {weight:g} on single-frame, {fusion['chosen_on']})" if name == "fused"
                    else name, results["models"][name])
    print("\nExact McNemar tests (videos only the first model gets right / only the second, two-sided p):")
    for key, r in results["paired"].items():
        print(f"  {key:<26} {r['a_only']:5d} / {r['b_only']:<5d} p = {r['p_value']:.3g}")
    gain_3d, gain_sf = metrics.class_gains(per_class["single_frame"], per_class["3d"], class_list)
    results["gains"] = {"3d_over_single_frame": gain_3d, "single_frame_over_3d": gain_sf}
    for title, rows in (("3D over single-frame", gain_3d), ("single-frame over 3D", gain_sf)):
        print(f"\nClasses where {title} gains most (video-level accuracy, single-frame -> 3D):")
        for x in rows:
            print(f"  {x['class']:<24} {pct(x['acc_a'])} -> {pct(x['acc_b'])}  ({100 * x['gain']:+.2f} points)")
    if args.sweep:
        results["sweep"] = {"note": SWEEP_NOTE, "rows": sweep(sf.scores, td.scores, sf.labels, class_list)}
        print(f"\nFusion weight sweep, video-level ({SWEEP_NOTE}):")
        print("  weight(single-frame)   top-1    top-5   top-10  mean-class")
        for r in results["sweep"]["rows"]:
            print(f"  {r['weight']:20.2f} {pct(r['top1'])} {pct(r['top5'])} {pct(r['top10'])} "
                  f"{pct(r['mean_class_accuracy'])}")
    if args.toy_classes:
        with open(args.toy_classes) as f:
            pairs = json.load(f)["pairs"]
        if not {c for p in pairs for c in p} <= set(class_list):
            raise SystemExit(f"{args.toy_classes} names classes that the predictions do not have")
        results["motion_pairs"] = {"source": args.toy_classes, "models": {
            k: motion_pairs(scores[k], sf.labels, class_list, pairs) for k in MODELS}}
        print("\nMotion-only pairs (toy; one frame cannot tell the members apart), video-level:")
        for k, r in results["motion_pairs"]["models"].items():
            print(f"  {k:<13} within-pair accuracy {pct(r['within_pair'] or 0)} (chance 50%)  top-1 on the "
                  f"pairs' {r['n_videos']} videos {pct(r['top1'] or 0)}, "
                  f"on the other classes {pct(r['other_top1'] or 0)}")
    with atomic_write(os.path.join(args.out, "results.json")) as tmp, open(tmp, "w") as f:
        json.dump(results, f, indent=1)
    print(f"\nwrote {os.path.join(args.out, 'results.json')} and confusion_*.npy")
    return results


if __name__ == "__main__":
    scoring.run_cli(main, parse_args, "combine_results.py")
