"""
Build the turn-in report (PDF + Markdown twin) from the output of combine_results.py.

Usage:
    python report/make_report.py --results runs/combined --out report/report.pdf

Reads <results>/results.json and <results>/confusion_{single_frame,3d,fused}.npy; writes the PDF, a
Markdown twin next to it (same name, .md) and the figures as PNG in <out dir>/<name>_figures/ for the Markdown.
All numbers are video-level. Observations are generated from the data; the Discussion is left to the student.
"""
import argparse
import json
import os
import sys
import textwrap

import matplotlib

matplotlib.use("Agg")  # headless: no display on the training machines
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.colors import PowerNorm

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import metrics  # noqa: E402  (the repo's metrics.py, one folder up)

MODELS = ("single_frame", "3d", "fused")
QUESTIONS = ["Did the results improve after combining the outputs?",
             "Are there differences/similarities between the best and worst classes of the models? Can anything "
             "be said about whether particular action classes are discriminated more by spatial information "
             "versus temporal information?",
             "Are there any notable examples among the most confused classes?"]
PLACEHOLDER = "[Student: write your discussion here.]"
TABLE_ROWS = 10  # rows of the best / worst / most confused tables (combine_results.py writes 10)


def arch(results):
    """The models' names from the architectures the test scripts recorded (e.g. "2D ResNet-18" for the
    toy run's small models); ResNet-50, the assignment's, for predictions written before they did."""
    pretty = lambda k, d: d + " " + str(results.get("attrs", {}).get(k, {}).get("arch", "resnet50")).replace(
        "resnet", "ResNet-")
    return pretty("single_frame", "2D"), pretty("3d", "3D")


def names(results):
    return {"single_frame": f"Single-frame ({arch(results)[0]})", "3d": arch(results)[1],
            "fused": f"Fused (weight {results['weight_single_frame']:g} on single-frame)"}


def pct(x):
    return "n/a" if x is None else f"{100 * x:.2f}%"


def per_class(results, model):
    """Per-class accuracy `(C,)` of one model from results.json, NaN for classes absent from the test set."""
    return np.array([np.nan if x is None else x for x in results["models"][model]["per_class_accuracy"]])


def gain_text(rows, n=5):
    return ", ".join(f"{x['class']} ({pct(x['acc_a'])} -> {pct(x['acc_b'])})" for x in rows[:n]) or "none"


def observations(results):
    """Factual sentences computed from results.json (no interpretation)."""
    m, w = results["models"], results["weight_single_frame"]
    sf, td, fu = m["single_frame"], m["3d"], m["fused"]
    better = "3d" if td["top1"] >= sf["top1"] else "single_frame"
    obs = [f"All accuracies are video-level over {results['n_videos']} test videos; failed videos count as wrong.",
           f"3D top-1 is {pct(td['top1'])} against {pct(sf['top1'])} for single-frame "
           f"({100 * (td['top1'] - sf['top1']):+.2f} points).",
           f"Fusion with weight {w:g} on single-frame gives top-1 {pct(fu['top1'])}, "
           f"{100 * (fu['top1'] - m[better]['top1']):+.2f} points relative to the better single model "
           f"({names(results)[better]}); top-5 {100 * (fu['top5'] - m[better]['top5']):+.2f} points, "
           f"top-10 {100 * (fu['top10'] - m[better]['top10']):+.2f} points, mean class accuracy "
           f"{100 * (fu['mean_class_accuracy'] - m[better]['mean_class_accuracy']):+.2f} points."]
    a, b = per_class(results, "single_frame"), per_class(results, "3d")
    ok = ~np.isnan(a) & ~np.isnan(b)
    obs.append(f"Per class, 3D is more accurate than single-frame on {int((b[ok] > a[ok]).sum())} classes, "
               f"less accurate on {int((b[ok] < a[ok]).sum())} and equal on {int((b[ok] == a[ok]).sum())}.")
    obs.append("Largest 3D gains over single-frame: " + gain_text(results["gains"]["3d_over_single_frame"]) + ".")
    obs.append("Largest single-frame gains over 3D: " + gain_text(results["gains"]["single_frame_over_3d"]) + ".")
    perfect = {k: sum(1 for x in m[k]["per_class_accuracy"] if x == 1.0) for k in MODELS}
    obs.append(f"Classes with 100% accuracy: {perfect['single_frame']} (single-frame), {perfect['3d']} (3D), "
               f"{perfect['fused']} (fused); the 10-best tables break such ties by class index.")
    worst_both = [x["class"] for x in sf["worst"] if x["class"] in {y["class"] for y in td["worst"]}]
    obs.append("Classes in the 10 worst of both single-frame and 3D: " + (", ".join(worst_both) or "none") + ".")
    for k in ("single_frame", "3d"):
        if m[k]["most_confused"]:
            x = m[k]["most_confused"][0]
            obs.append(f"Most confused pair for {names(results)[k]}: {x['true']} predicted as {x['predicted']} "
                       f"({pct(x['fraction'])} of its test videos, {x['count']} videos).")
    pairs = [{(x["true"], x["predicted"]) for x in m[k]["most_confused"]} for k in ("single_frame", "3d")]
    both = sorted(pairs[0] & pairs[1])
    obs.append("Pairs in the 10 most confused of both models: " + (", ".join(f"{t} -> {p}" for t, p in both)
                                                                     or "none") + ".")
    failed = {k: m[k]["n_failed"] for k in MODELS}
    if any(failed.values()):
        obs.append(f"Failed videos (counted wrong): {failed['single_frame']} single-frame, {failed['3d']} 3D, "
                   f"{failed['fused']} fused (a video failed in either model fails in the fusion).")
    if "sweep" in results:
        best = max(results["sweep"]["rows"], key=lambda r: r["top1"])
        obs.append(f"Weight sweep: the best top-1 on the test set is {pct(best['top1'])} at weight "
                   f"{best['weight']:g} on single-frame ({results['sweep']['note']}).")
    if "motion_pairs" in results:
        mp = results["motion_pairs"]["models"]
        obs.append(f"Motion-only pairs (toy, {mp['3d']['n_videos']} test videos): within-pair accuracy "
                   f"{pct(mp['single_frame']['within_pair'])} single-frame, {pct(mp['3d']['within_pair'])} 3D, "
                   f"{pct(mp['fused']['within_pair'])} fused (chance 50%).")
    return obs


def motion_pair_tables(results):
    """The toy's motion-only pairs (combine_results.py --toy-classes), or [] for other data."""
    if "motion_pairs" not in results:
        return []
    m, label = results["motion_pairs"]["models"], names(results)
    summary = [[label[k], pct(m[k]["within_pair"]), pct(m[k]["top1"]), pct(m[k]["other_top1"]), str(m[k]["n_videos"])]
               for k in MODELS]
    rows = []
    for i, x in enumerate(m["single_frame"]["pairs"]):
        a, b = x["pair"]
        n = len(os.path.commonprefix([a, b]))
        while n and not b[n].isupper():  # cut at a word start: BarSpinClockwise / CounterClockwise
            n -= 1
        cells = [(m[k]["pairs"][i]["within_pair"], m[k]["pairs"][i]["confusion"]) for k in MODELS]
        rows.append([f"{a} / {b[n:]}", str(x["n_videos"])] + [
            f"{pct(w)} ({c[0][1]} + {c[1][0]})" for w, c in cells])
    return [(["Model", "Within-pair acc.", "Top-1, pair videos", "Top-1, other classes", "Pair videos"], summary,
             "Motion-only pairs (toy): one frame cannot tell the two classes apart; within-pair chance is 50%"),
            (["Motion pair", "Test videos", "Single-frame", "3D", "Fused"], rows,
             "Within-pair accuracy per pair (swaps: videos of A predicted as B + of B predicted as A)")]


def methods(results):
    """The settings the numbers came from, one line per model, from the attributes the test scripts
    recorded (older predictions lack some: those are left out)."""
    lines = []
    for k, title in (("single_frame", "Single-frame"), ("3d", "3D")):
        a = results.get("attrs", {}).get(k, {})
        trained = (f"trained for {a['epochs']} epoch{'s' if a['epochs'] != 1 else ''}" if "epochs" in a else "") + (
            f" from {a['train_from']}" if "train_from" in a else "") + (
            f" (layer4 blocks kept: {a['layer4_blocks']})" if a.get("layer4_blocks") else "") + (
            f", channels x{a['widen_factor']:g}" if a.get("widen_factor", 1) != 1 else "")
        hyper = ", ".join(f"{n} {a[key]}" for key, n in (("lr", "Adam lr"), ("batch_size", "batch"),
                                                        ("pretrained", "initial weights")) if key in a)
        if k == "single_frame":
            test = f"every frame scored, {a.get('average', 'log_softmax')} averaged per video"
            inputs = f"{a.get('size', '?')}x{a.get('size', '?')} frames, ImageNet mean/std"
        else:
            test = (f"whole video at once ({a.get('average', 'log_softmax')})" if a.get("mode") == "full" else
                    f"{a.get('frames', 16)}-frame windows every {a.get('stride', '?')} frames, "
                    f"{a.get('average', 'log_softmax')} averaged per video")
            norm = "Hara's (0-255 minus the ActivityNet mean)" if a.get("preprocess") == "hara" else "Kinetics mean/std"
            side = a.get("size", "?")
            inputs = f"{a.get('frames', 16)}x{side}x{side} clips, {norm}"
        arch = str(a.get("arch", "resnet50")).replace("resnet", "ResNet-")
        parts = [f"{title} ({arch}): split {a.get('split', '?')}",
                 trained.strip(), hyper, f"inputs {inputs}", f"test: {test}",
                 f"checkpoint {a['checkpoint']} (epoch {a.get('checkpoint_epoch', '?')})" if "checkpoint" in a else ""]
        lines.append("; ".join(p for p in parts if p) + ".")
    lines.append(f"Fusion: log_softmax(w * single-frame + (1 - w) * 3D) of the video-level log-probabilities, "
                 f"w = {results['weight_single_frame']:g}.")
    return lines


def accuracy_rows(results):
    keys = ("top1", "top5", "top10", "mean_class_accuracy")
    return [[names(results)[k]] + [pct(results["models"][k][c]) for c in keys] + [str(results["models"][k]["n_failed"])]
            for k in MODELS]


ACC_HEADER = ["Model", "Top-1", "Top-5", "Top-10", "Mean class acc.", "Failed"]


def text_page(title, blocks, tables=(), subtitle=""):
    """Portrait page: title, subtitle, (header, rows, caption) tables, then wrapped paragraphs."""
    fig = plt.figure(figsize=(8.5, 11))
    fig.text(0.5, 0.96, title, ha="center", va="top", fontsize=15, weight="bold")
    fig.text(0.5, 0.93, "\n".join(textwrap.wrap(subtitle, 110)), ha="center", va="top", fontsize=9)
    y = 0.90 if subtitle else 0.92
    for header, rows, caption in tables:
        h = 0.022 * (len(rows) + 1)
        fig.text(0.07, y, caption, fontsize=9.5, weight="bold", va="top")
        ax = fig.add_axes([0.07, y - 0.015 - h, 0.86, h])
        ax.axis("off")
        if rows:
            # the first column holds names (model or class) and needs the room
            widths = [2.3] + [1.0] * (len(header) - 1) if len(header) > 4 else None
            widths = widths and [w / sum(widths) for w in widths]
            t = ax.table(cellText=rows, colLabels=header, colWidths=widths, cellLoc="left", bbox=[0, 0, 1, 1])
            t.auto_set_font_size(False)
            t.set_fontsize(7.5)
        else:
            ax.text(0, 0.5, "none", fontsize=8)
        y -= h + 0.05
    for block in blocks:
        lines = textwrap.wrap(block, 120, subsequent_indent="  ") if block else [""]
        fig.text(0.07, y, "\n".join(lines), fontsize=8.5, va="top")
        y -= 0.0155 * len(lines) + 0.008
    return fig


PAGE = (8.5, 11)  # US letter, portrait; fits A4 when printed to fit
BLOCK_PAIRS = 12  # the enlarged block holds the classes of this many most confused pairs (at most 2x)


def _confusion_axes(fig, ax, cm, labels, title, size, numbers=False):
    """Draw a row-normalised confusion matrix `(c, c)` with `labels` on both axes."""
    c = len(labels)
    # zeros are masked (white) so any non-zero confusion stands out; sqrt scale lifts small off-diagonals
    im = ax.imshow(np.ma.masked_equal(cm, 0), cmap=plt.get_cmap("viridis_r").with_extremes(bad="white"),
                   norm=PowerNorm(gamma=0.5, vmin=0, vmax=1), interpolation="nearest")
    ax.set_xticks(range(c), labels, rotation=90, fontsize=size)
    ax.set_yticks(range(c), labels, fontsize=size)
    ax.set_xticks(np.arange(-0.5, c, 10 if c > 30 else 1), minor=True)
    ax.set_yticks(np.arange(-0.5, c, 10 if c > 30 else 1), minor=True)
    ax.grid(which="minor", color="0.85", linewidth=0.3)  # to follow a row by eye
    ax.tick_params(which="minor", length=0)
    if numbers:
        for i, j in zip(*np.nonzero(cm >= 0.005)):
            ax.text(j, i, f"{100 * cm[i, j]:.0f}", ha="center", va="center", fontsize=6,
                    color="white" if cm[i, j] > 0.4 else "black")
    ax.set(xlabel="predicted class", ylabel="true class")
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.035, pad=0.01, ticks=[0, 0.01, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1],
                 label="fraction of the true class's test videos")


def confusion_page(cm, class_list, title):
    """One letter page: the whole matrix, classes ordered so that confusions cluster near the diagonal
    (metrics.confusion_order) when there are many of them."""
    c = len(class_list)
    order = metrics.confusion_order(cm) if c > 12 else np.arange(c)
    fig, ax = plt.subplots(figsize=PAGE)
    fig.subplots_adjust(left=0.2, right=0.95, bottom=0.17, top=0.93)
    note = "classes ordered so that confusions cluster; " if c > 12 else ""
    _confusion_axes(fig, ax, cm[np.ix_(order, order)], [class_list[i] for i in order],
                    f"{title}\nrow = true class, divided by its number of test videos (video-level);\n"
                    f"{note}square-root colour scale, white = 0", float(np.clip(480 / max(c, 1), 4.2, 9)))
    return fig


def confusion_block_page(cm, class_list, title):
    """An enlarged block of the classes in the most confused pairs (values in %), or None when the
    whole matrix is small enough to read as it is, or nothing is confused."""
    c = len(class_list)
    off = np.where(np.eye(c, dtype=bool), 0, np.nan_to_num(cm))
    if c <= 2 * BLOCK_PAIRS or off.max() <= 0:
        return None
    top = np.argsort(-off, axis=None, kind="stable")[:BLOCK_PAIRS]
    members = sorted({int(k) for t in top if off.flat[t] > 0 for k in np.unravel_index(t, off.shape)})
    sub = cm[np.ix_(members, members)]
    order = [members[i] for i in metrics.confusion_order(sub)]
    fig, ax = plt.subplots(figsize=PAGE)
    fig.subplots_adjust(left=0.25, right=0.95, bottom=0.25, top=0.9)
    _confusion_axes(fig, ax, cm[np.ix_(order, order)], [class_list[i] for i in order],
                    f"{title}: the classes of the {BLOCK_PAIRS} most confused pairs, enlarged\n"
                    "cells: % of the true class's test videos (rows do not sum to 100: other classes omitted)",
                    8, numbers=True)
    return fig


def per_class_page(results):
    a, b = per_class(results, "single_frame"), per_class(results, "3d")
    fig, axes = plt.subplots(2, 1, figsize=(8.5, 11), height_ratios=(3, 1.4))
    ax = axes[0]
    ax.plot([0, 1], [0, 1], color="0.6", linewidth=0.8, label="equal accuracy")
    ax.scatter(a, b, s=14, alpha=0.6, c=np.where(b > a, "tab:blue", np.where(b < a, "tab:red", "0.4")))
    g = results["gains"]
    # labels go beside their cluster, spread away from the nearest axis limit so neighbours do not overprint
    for rows, dx, ha, sign in ((g["3d_over_single_frame"][:8], 0.1, "left", -1),
                               (g["single_frame_over_3d"][:8], -0.1, "right", 1)):
        last = -sign * np.inf
        for x in sorted(rows, key=lambda r: sign * r["acc_b"]):
            last = sign * max(sign * x["acc_b"], sign * last + 0.04)
            ax.annotate(x["class"], (x["acc_a"], x["acc_b"]), xytext=(x["acc_a"] + dx, last), ha=ha, va="center",
                        fontsize=6.5, arrowprops=dict(arrowstyle="-", color="0.5", linewidth=0.5))
    ax.set_xlim(-0.03, 1.03), ax.set_ylim(-0.03, 1.03), ax.set_aspect("equal")
    ax.set(xlabel="single-frame per-class accuracy (video-level)", ylabel="3D per-class accuracy (video-level)")
    ax.set_title("Per-class accuracy: blue = 3D better, red = single-frame better\n"
                 "(largest gains labelled)", fontsize=10)
    ax = axes[1]
    if "sweep" in results:
        rows = results["sweep"]["rows"]
        for key, label in (("top1", "top-1"), ("top5", "top-5"), ("mean_class_accuracy", "mean class")):
            ax.plot([r["weight"] for r in rows], [100 * r[key] for r in rows], marker="o", markersize=3, label=label)
        ax.set(xlabel="fusion weight on single-frame (0 = 3D only, 1 = single-frame only)",
               ylabel="video-level accuracy (%)")
        ax.legend(fontsize=7)
        ax.set_title("Fusion weight sweep: " + results["sweep"]["note"], fontsize=9)
    else:
        ax.axis("off")
        ax.text(0.5, 0.5, "No fusion weight sweep (run combine_results.py --sweep).", ha="center")
    fig.tight_layout()
    return fig


def model_tables(r):
    best = [[x["class"], pct(x["accuracy"]), str(x["n_videos"])] for x in r["best"]]
    worst = [[x["class"], pct(x["accuracy"]), str(x["n_videos"])] for x in r["worst"]]
    conf = [[x["true"], x["predicted"], pct(x["fraction"]), str(x["count"])] for x in r["most_confused"]]
    n = sum(1 for k in r["per_class_n_videos"] if k)  # classes with test videos
    few = (f" (only {n} classes have test videos: all of them)" if n < TABLE_ROWS else
           f" (only {n} classes have test videos: the two tables overlap)" if n < 2 * TABLE_ROWS else "")
    return [(["Class", "Accuracy", "Test videos"], best,
             f"{min(n, TABLE_ROWS)} best classes (ties broken by class index){few}"),
            (["Class", "Accuracy", "Test videos"], worst, f"{min(n, TABLE_ROWS)} worst classes{few}"),
            (["True class", "Predicted as", "Fraction of true class", "Videos"], conf,
             "10 most confused pairs (largest off-diagonal entries)")]


def gain_tables(results):
    header = ["Class", "Single-frame", "3D", "Gain (points)"]
    rows = {k: [[x["class"], pct(x["acc_a"]), pct(x["acc_b"]), f"{100 * x['gain']:+.1f}"] for x in v]
            for k, v in results["gains"].items()}
    return [(header, rows["3d_over_single_frame"], "Classes where 3D gains most over single-frame"),
            (header, rows["single_frame_over_3d"], "Classes where single-frame gains most over 3D")]


def md_tables(tables, level="###"):
    """(header, rows, caption) tables -> Markdown lines."""
    out = []
    for header, rows, caption in tables:
        out += [f"{level} {caption}", ""]
        out += ["| " + " | ".join(r) + " |" for r in [header, ["---"] * len(header)] + rows] if rows else ["none"]
        out += [""]
    return out


# ----------------------------------------------------------------------------- evaluation (issue 16)

PAIR_NAMES = {"3d_vs_single_frame": ("3d", "single_frame"), "fused_vs_3d": ("fused", "3d"),
              "fused_vs_single_frame": ("fused", "single_frame")}
SHORT_NAMES = {"single_frame": "Single-frame", "3d": "3D", "fused": "Fused"}
SETTING_KEYS = ("subset", "split", "val_groups", "crops", "flip", "mode", "stride", "average", "size", "arch",
                "checkpoint_epoch")


def ci_text(r):
    """'[low, high]' of a model's top-1 95% interval, or n/a for results.json written before them."""
    ci = r.get("top1_ci95")
    return "n/a" if ci is None else f"[{pct(ci[0])}, {pct(ci[1])}]"


def accuracy_rows_ci(results):
    """accuracy_rows with the 95% bootstrap interval beside each top-1."""
    rows = accuracy_rows(results)
    for row, k in zip(rows, MODELS):
        row[1] = f"{row[1]} {ci_text(results['models'][k])}"
    return rows


def fusion_text(results):
    """One sentence: the fusion weight and what it was chosen on."""
    f = results.get("fusion", {"weight": results["weight_single_frame"], "chosen_on": "fixed"})
    if f["chosen_on"] == "validation":
        return (f"Fusion weight {f['weight']:g} on single-frame, chosen on validation: the best video-level top-1 "
                f"on the {f['validation_videos']} validation videos (groups held out of the training list, "
                f"--val-groups {results['attrs']['single_frame'].get('val_groups', '?')}); the test set played no "
                f"part in it.")
    return (f"Fusion weight {f['weight']:g} on single-frame: fixed in advance (no validation predictions), "
            f"not chosen on any data.")


def evaluation_tables(results):
    """Tables of the evaluation page: top-1 with intervals, McNemar tests, test-time settings."""
    label, m = SHORT_NAMES, results["models"]  # short: the four-column tables share the width equally
    ci = [[label[k], pct(m[k]["top1"]), ci_text(m[k]), str(m[k]["n_videos"])] for k in MODELS]
    paired = [[f"{label[a]} vs {label[b]}", str(r["a_only"]), str(r["b_only"]), f"{r['p_value']:.3g}"]
              for key, (a, b) in PAIR_NAMES.items() if (r := results.get("paired", {}).get(key))]
    attrs = results.get("attrs", {})
    settings = [[k] + [str(attrs.get(x, {}).get(k, "-")) for x in ("single_frame", "3d")] for k in SETTING_KEYS]
    return [(["Model", "Top-1", "95% bootstrap interval", "Test videos"], ci,
             "Top-1 with 95% bootstrap intervals (test videos resampled 10,000 times, seed 0)"),
            (["Pair (a vs b)", "Only a right", "Only b right", "p (exact McNemar)"], paired,
             "Paired tests: exact McNemar, two-sided binomial on the videos the two models disagree on"),
            (["Test-time setting", "Single-frame", "3D"], settings, "Test-time settings (prediction attributes)")]


def split_table(summary, label):
    """splits_summary.json -> a (header, rows, caption) table of top-1 per split, mean and std."""
    splits = [str(s) for s in summary["splits"]]
    rows = [[label[k]] + [pct(r["per_split"][s]) for s in splits] + [pct(r["top1_mean"]), f"{100 * r['top1_std']:.2f}"]
            for k, r in summary["models"].items()]
    return (["Model"] + [f"Split {s}" for s in splits] + ["Mean", "Std (points)"], rows,
            f"Video-level top-1 over the official splits {', '.join(splits)} (std: sample, ddof 1)")


def evaluation_section(results, summary=None):
    """(tables, text blocks) of the evaluation page and section: intervals, paired tests, the fusion
    weight and what it was chosen on, the test-time settings and (summary given) the split table."""
    tables = evaluation_tables(results)
    if summary is not None:
        tables = [split_table(summary, names(results))] + tables
    blocks = [fusion_text(results),
              "Intervals: percentile bootstrap of the video-level top-1, resampling the test videos with replacement "
              "(fixed seed, so a rerun gives the same interval). Paired tests: a p-value under 0.05 says the two "
              "models' top-1 differ by more than the videos they disagree on would give by chance."]
    if "sweep" in results:
        blocks.append("The weight sweep (per-class page) scores every weight on the test set: an oracle, "
                      "not a held-out result.")
    return tables, blocks


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default="runs/combined",
                   help="output folder of combine_results.py (default: %(default)s)")
    p.add_argument("--pdf", "--out", dest="out", default="report/report.pdf",
                   help="PDF path; the .md twin is written next to it (default: %(default)s)")
    p.add_argument("--splits-summary", default=None,
                   help="splits_summary.json of splits_summary.py: adds the table of top-1 over splits")
    return p.parse_args(argv)


def main(args):
    with open(os.path.join(args.results, "results.json")) as f:
        results = json.load(f)
    cms = {k: np.load(os.path.join(args.results, f"confusion_{k}.npy")) for k in MODELS}
    figs = os.path.splitext(os.path.basename(args.out))[0] + "_figures"  # one folder per report: no overwrites
    fig_dir = os.path.join(os.path.dirname(os.path.abspath(args.out)), figs)
    os.makedirs(fig_dir, exist_ok=True)
    label, obs = names(results), observations(results)
    toy = "Toy " if "motion_pairs" in results else ""
    title = f"{toy}UCF-101 action recognition: single-frame vs {arch(results)[1]}"
    split = results.get("attrs", {}).get("single_frame", {}).get("split", "?")
    intro = (f"Test split {split}, {results['n_videos']} test videos, {len(results['class_list'])} classes. "
             "All accuracies are video-level (one prediction per test video).")
    accuracy = [(ACC_HEADER, accuracy_rows_ci(results), "Accuracy (video-level; top-1 with its 95% interval)")
                ] + motion_pair_tables(results)
    summary = None
    if args.splits_summary:
        with open(args.splits_summary) as f:
            summary = json.load(f)
    eval_tables, eval_blocks = evaluation_section(results, summary)
    md = [f"# {title}", "", intro, ""] + md_tables(accuracy, "##") + ["## Observations", ""] + [f"- {o}" for o in obs]
    md += ["", "## Methods", ""] + [f"- {m}" for m in methods(results)]
    pages = []
    with PdfPages(args.out) as pdf:
        def save(fig, png=None, dpi=110):
            if png:
                fig.savefig(os.path.join(fig_dir, png), dpi=dpi)
            pdf.savefig(fig)
            plt.close(fig)
            pages.append(png)

        save(text_page(title, ["Observations (generated from the data):"] + [f"- {o}" for o in obs]
                       + ["", "Methods (the settings these numbers came from):"] + [f"- {m}" for m in methods(results)],
                       accuracy, subtitle=intro))
        save(text_page("Evaluation: intervals, paired tests, fusion weight, test-time settings", eval_blocks,
                       eval_tables))
        md += ["", "## Evaluation", ""] + md_tables(eval_tables) + sum(([b, ""] for b in eval_blocks), [])
        md += ["", "## Confusion matrices", ""]
        for k in MODELS:
            save(confusion_page(cms[k], results["class_list"], f"Confusion matrix: {label[k]}"),
                 f"confusion_{k}.png", dpi=150)
            md += [f"![Confusion matrix: {label[k]}]({figs}/confusion_{k}.png)", ""]
            block = confusion_block_page(cms[k], results["class_list"], f"Confusion matrix: {label[k]}")
            if block is not None:
                save(block, f"confusion_{k}_block.png", dpi=130)
                md += [f"![Most confused classes: {label[k]}]({figs}/confusion_{k}_block.png)", ""]
        save(per_class_page(results), "per_class.png")
        md += ["## Per-class accuracy: single-frame vs 3D", "", f"![per-class]({figs}/per_class.png)", ""]
        md += md_tables(gain_tables(results))
        for k in MODELS:
            save(text_page(f"{label[k]}: classes", [], model_tables(results["models"][k])))
            md += [f"## {label[k]}", ""] + md_tables(model_tables(results["models"][k]))
        questions = [f"Q{i + 1}. {q}" for i, q in enumerate(QUESTIONS)]
        save(text_page("Discussion", sum(([q, PLACEHOLDER, "", ""] for q in questions), []), gain_tables(results)))
        md += ["## Discussion", ""] + sum(([f"**{q}**", "", PLACEHOLDER, ""] for q in questions), [])
    md_path = os.path.splitext(args.out)[0] + ".md"
    with open(md_path, "w") as f:
        f.write("\n".join(md))
    print(f"wrote {args.out} ({len(pages)} pages), {md_path} and {fig_dir}/")
    return len(pages)


if __name__ == "__main__":
    main(parse_args())
