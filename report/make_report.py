"""
Build the turn-in report (PDF + Markdown twin) from the output of combine_results.py.

Usage:
    python report/make_report.py --results runs/toy/combined --pdf report/report.pdf \\
        [--splits-summary runs/toy/splits_summary.json] [--discussion report/discussion.md]

Reads <results>/results.json and <results>/confusion_{single_frame,3d,fused}.npy; writes the PDF,
a Markdown twin beside it (same name, .md) and the figures as PNG in <out dir>/<name>_figures/.
All numbers are video-level. The observations are generated from the data; the discussion is the
student's, read from --discussion: a Markdown file made from a template holding the assignment's
three questions when it does not exist, and never overwritten. Paths are relative to the current
folder. The models are named from what their prediction files record, never from their roles.

Exit status: 0 when the report is written; 1 when an input is missing or not what it should be;
2 for a usage error. Either way one line on stderr names the file or flag.
"""
import argparse
import json
import os
import sys
from dataclasses import dataclass, field

import matplotlib

matplotlib.use("Agg")  # headless: no display on the training machines
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import PowerNorm  # noqa: E402
from matplotlib.figure import Figure as MplFigure  # noqa: E402
from reportlab.platypus import CondPageBreak, PageBreak  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)  # the repo's metrics.py and utils.py, one folder up
sys.path.insert(0, HERE)  # discussion.py and layout.py beside this file
import discussion  # noqa: E402
import layout  # noqa: E402

import metrics  # noqa: E402
import utils  # noqa: E402
from utils import atomic_write  # noqa: E402

PROG = "make_report.py"
MODELS = ("single_frame", "3d", "fused")
QUESTIONS = list(discussion.QUESTIONS)
PLACEHOLDER = discussion.PLACEHOLDER
TABLE_ROWS = 10  # rows of the best / worst / most confused tables (combine_results.py writes 10)
BLOCK_PAIRS = 12  # the enlarged block: the classes of this many most confused pairs (at most 2x)
SMALL = 12  # up to this many classes a confusion matrix is read as it is, half a page each
DIMENSION = {"single_frame": "2D", "3d": "3D"}  # what a recorded "model" attribute says
ROLE_TITLE = {"single_frame": "Single-frame", "3d": "3D"}


class ReportError(Exception):
    """A bad input: the message names the file or flag and says what to do."""


# ----------------------------------------------------------------------------- inputs

RESULT_KEYS = ("level", "n_videos", "class_list", "weight_single_frame", "models", "gains")
MODEL_KEYS = ("top1", "top5", "top10", "mean_class_accuracy", "n_failed", "per_class_accuracy",
              "per_class_n_videos", "best", "worst", "most_confused")


def missing_keys(results: object) -> list[str]:
    """What results.json lacks of what combine_results.py writes."""
    if not isinstance(results, dict):
        return ["an object at the top"]
    missing = [k for k in RESULT_KEYS if k not in results]
    models = results.get("models") if isinstance(results.get("models"), dict) else {}
    for m in MODELS:
        if not isinstance(models.get(m), dict):
            missing.append(f"models.{m}")
        else:
            missing += [f"models.{m}.{k}" for k in MODEL_KEYS if k not in models[m]]
    return missing


def load_results(folder: str) -> dict:
    """<folder>/results.json of combine_results.py -> dict; else ReportError naming the file."""
    path = os.path.join(folder, "results.json")
    redo = f"run combine_results.py --out {folder} first"
    if not os.path.isfile(path):
        where = "there" if os.path.isdir(folder) else "(no such folder)"
        raise ReportError(f"--results {folder}: no results.json {where} ({redo})")
    try:
        with open(path, encoding="utf-8") as f:
            results = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ReportError(f"{path}: not JSON ({e}); {redo}") from None
    except OSError as e:
        raise ReportError(f"{path}: cannot read it ({e.strerror})") from None
    missing = missing_keys(results)
    if missing:
        raise ReportError(f"{path}: not a results.json of combine_results.py (no "
                          f"{', '.join(missing[:4])}); {redo}")
    check_roles(results, path)
    return results


def check_roles(results: dict, path: str) -> None:
    """The single-frame and 3D predictions must record the model their role claims: a report that
    calls the 3D model single-frame is worse than none."""
    attrs = results.get("attrs")
    for role in ("single_frame", "3d"):
        a = attrs.get(role) if isinstance(attrs, dict) else None
        got = a.get("model") if isinstance(a, dict) else None
        if got != role:
            found = "no model attribute" if got is None else f"model {got!r}"
            raise ReportError(f"{path}: the {role} predictions record {found}, not {role!r}: "
                              f"rerun combine_results.py with --single-frame <test_single_frame.py "
                              f"output> --3d <test_3d.py output>")


def load_confusions(folder: str, n_classes: int) -> dict:
    """{model: (C, C) row-normalised confusion matrix} from <folder>/confusion_<model>.npy."""
    cms, redo = {}, f"run combine_results.py --out {folder} again"
    for k in MODELS:
        path = os.path.join(folder, f"confusion_{k}.npy")
        if not os.path.isfile(path):
            raise ReportError(f"--results {folder}: no confusion_{k}.npy there ({redo})")
        try:
            cms[k] = np.load(path)
        except (ValueError, OSError, EOFError) as e:
            raise ReportError(f"{path}: not a NumPy array ({e}); {redo}") from None
        if cms[k].shape != (n_classes, n_classes):
            raise ReportError(f"{path}: shape {cms[k].shape}, but results.json has {n_classes} "
                              f"classes; {redo}")
    return cms


def load_summary(path: str | None) -> dict | None:
    """splits_summary.json of tools/splits_summary.py, or None when no path is given."""
    if path is None:
        return None
    if not os.path.isfile(path):
        raise ReportError(f"--splits-summary {path}: no such file (run python -m "
                          f"tools.splits_summary --out {path} first, or leave the flag out)")
    try:
        with open(path, encoding="utf-8") as f:
            summary = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ReportError(f"--splits-summary {path}: not JSON ({e})") from None
    if not isinstance(summary, dict) or not {"splits", "models"} <= set(summary):
        raise ReportError(f"--splits-summary {path}: not a splits_summary.json of "
                          f"tools/splits_summary.py (no splits / models)")
    return summary


def load_discussion(path: str) -> tuple[list, bool]:
    """(blocks, created): the student's discussion, made from the template when missing."""
    try:
        created = discussion.ensure(path)
        return discussion.parse(discussion.read(path)), created
    except UnicodeDecodeError:
        raise ReportError(f"--discussion {path}: not UTF-8 text; save it as UTF-8") from None
    except OSError as e:
        verb = "read" if os.path.exists(path) else "create"
        raise ReportError(f"--discussion {path}: cannot {verb} it ({e.strerror})") from None


# ----------------------------------------------------------------------------- names and numbers

def pretty_arch(name: str) -> str:
    """resnet50 -> ResNet-50."""
    return str(name).replace("resnet", "ResNet-")


def model_name(attrs: dict) -> str:
    """'2D ResNet-50' from recorded prediction attributes ("model" and "arch"); ResNet-50, the
    assignment's, for predictions written before "arch" was recorded."""
    return f"{DIMENSION[attrs['model']]} {pretty_arch(attrs.get('arch', 'resnet50'))}"


def arch(results: dict) -> tuple[str, str]:
    """(name of the single-frame model, name of the 3D model), from what their files record."""
    return tuple(model_name(results["attrs"][k]) for k in ("single_frame", "3d"))


def names(results: dict) -> dict:
    """{role: the name the report gives that model}."""
    two_d, three_d = arch(results)
    return {"single_frame": f"Single-frame ({two_d})", "3d": three_d,
            "fused": f"Fused (weight {results['weight_single_frame']:g} on single-frame)"}


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def per_class(results: dict, model: str) -> np.ndarray:
    """Per-class accuracy `(C,)` of one model, NaN for classes absent from the test set."""
    acc = results["models"][model]["per_class_accuracy"]
    return np.array([np.nan if x is None else x for x in acc])


def gain_text(rows: list, n: int = 5) -> str:
    text = ", ".join(f"{x['class']} ({pct(x['acc_a'])} -> {pct(x['acc_b'])})" for x in rows[:n])
    return text or "none"


def observations(results: dict) -> list[str]:
    """Factual sentences computed from results.json (no interpretation)."""
    m, w, label = results["models"], results["weight_single_frame"], names(results)
    sf, td, fu = m["single_frame"], m["3d"], m["fused"]
    better = "3d" if td["top1"] >= sf["top1"] else "single_frame"
    points = lambda key: f"{100 * (fu[key] - m[better][key]):+.2f} points"
    obs = [f"All accuracies are video-level over {results['n_videos']} test videos; failed videos "
           f"count as wrong.",
           f"3D top-1 is {pct(td['top1'])} against {pct(sf['top1'])} for single-frame "
           f"({100 * (td['top1'] - sf['top1']):+.2f} points).",
           f"Fusion with weight {w:g} on single-frame gives top-1 {pct(fu['top1'])}, "
           f"{points('top1')} relative to the better single model ({label[better]}); top-5 "
           f"{points('top5')}, top-10 {points('top10')}, mean class accuracy "
           f"{points('mean_class_accuracy')}."]
    a, b = per_class(results, "single_frame"), per_class(results, "3d")
    ok = ~np.isnan(a) & ~np.isnan(b)
    up, down, same = (int(x.sum()) for x in (b[ok] > a[ok], b[ok] < a[ok], b[ok] == a[ok]))
    obs.append(f"Per class, 3D is more accurate than single-frame on {up} classes, less accurate "
               f"on {down} and equal on {same}.")
    gains = results["gains"]
    obs.append(f"Largest 3D gains over single-frame: {gain_text(gains['3d_over_single_frame'])}.")
    obs.append(f"Largest single-frame gains over 3D: {gain_text(gains['single_frame_over_3d'])}.")
    perfect = {k: sum(1 for x in m[k]["per_class_accuracy"] if x == 1.0) for k in MODELS}
    obs.append(f"Classes with 100% accuracy: {perfect['single_frame']} (single-frame), "
               f"{perfect['3d']} (3D), {perfect['fused']} (fused); the 10-best tables break such "
               f"ties by class index.")
    worst_3d = {y["class"] for y in td["worst"]}
    worst_both = [x["class"] for x in sf["worst"] if x["class"] in worst_3d]
    obs.append("Classes in the 10 worst of both single-frame and 3D: "
               + (", ".join(worst_both) or "none") + ".")
    for k in ("single_frame", "3d"):
        if m[k]["most_confused"]:
            x = m[k]["most_confused"][0]
            obs.append(f"Most confused pair for {label[k]}: {x['true']} predicted as "
                       f"{x['predicted']} ({pct(x['fraction'])} of its test videos, {x['count']} "
                       f"videos).")
    pairs = [{(x["true"], x["predicted"]) for x in m[k]["most_confused"]}
             for k in ("single_frame", "3d")]
    both = sorted(pairs[0] & pairs[1])
    obs.append("Pairs in the 10 most confused of both models: "
               + (", ".join(f"{t} -> {p}" for t, p in both) or "none") + ".")
    failed = {k: m[k]["n_failed"] for k in MODELS}
    if any(failed.values()):
        obs.append(f"Failed videos (counted wrong): {failed['single_frame']} single-frame, "
                   f"{failed['3d']} 3D, {failed['fused']} fused (a video failed in either model "
                   f"fails in the fusion).")
    fusion = results.get("fusion", {})
    if fusion.get("chosen_on") == "validation" and fusion.get("validation_rows"):
        chosen = [r for r in fusion["validation_rows"] if r["weight"] == fusion["weight"]]
        at = f" (validation top-1 {pct(chosen[0]['top1'])})" if chosen else ""
        obs.append(f"Validation sweep: weight {fusion['weight']:g} on single-frame{at} was chosen "
                   f"on the {fusion['validation_videos']} validation videos.")
    if "sweep" in results:
        best = max(results["sweep"]["rows"], key=lambda r: r["top1"])
        obs.append(f"Weight sweep: the best top-1 on the test set is {pct(best['top1'])} at weight "
                   f"{best['weight']:g} on single-frame ({results['sweep']['note']}).")
    if "motion_pairs" in results:
        mp = results["motion_pairs"]["models"]
        within = {k: pct(mp[k]["within_pair"]) for k in MODELS}
        obs.append(f"Motion-only pairs (toy, {mp['3d']['n_videos']} test videos): within-pair "
                   f"accuracy {within['single_frame']} single-frame, {within['3d']} 3D, "
                   f"{within['fused']} fused (chance 50%).")
    return obs


@dataclass
class Table:
    """A table of the report: header cells, rows of cells (plain text) and its caption."""
    header: list
    rows: list
    caption: str


def motion_pair_tables(results: dict) -> list[Table]:
    """The toy's motion-only pairs (combine_results.py --toy-classes), or [] for other data."""
    if "motion_pairs" not in results:
        return []
    m, label = results["motion_pairs"]["models"], names(results)
    summary = [[label[k], pct(m[k]["within_pair"]), pct(m[k]["top1"]), pct(m[k]["other_top1"]),
                str(m[k]["n_videos"])] for k in MODELS]
    rows = []
    for i, x in enumerate(m["single_frame"]["pairs"]):
        a, b = x["pair"]
        n = len(os.path.commonprefix([a, b]))
        while n and not b[n].isupper():  # cut at a word start: BarSpinClockwise / CounterClockwise
            n -= 1
        cells = [(m[k]["pairs"][i]["within_pair"], m[k]["pairs"][i]["confusion"]) for k in MODELS]
        rows.append([f"{a} / {b[n:]}", str(x["n_videos"])]
                    + [f"{pct(w)} ({c[0][1]} + {c[1][0]})" for w, c in cells])
    return [Table(["Model", "Within-pair acc.", "Top-1, pair videos", "Top-1, other classes",
                   "Pair videos"], summary,
                  "Motion-only pairs (toy): one frame cannot tell the two classes apart; "
                  "within-pair chance is 50%"),
            Table(["Motion pair", "Test videos", "Single-frame", "3D", "Fused"], rows,
                  "Within-pair accuracy per pair (swaps: videos of A predicted as B + of B "
                  "predicted as A)")]


def short_path(path: str) -> str:
    """A path inside the repository, relative to it: the report is read on another machine."""
    full = os.path.abspath(path)
    return os.path.relpath(full, REPO) if full.startswith(REPO + os.sep) else path


# prediction attribute(s) -> its words in the methods line; several spellings of one in a tuple
HYPER = ((("lr",), "Adam lr"), (("batch_size",), "batch"), (("processes",), "training processes"),
         (("train_precision",), "training precision"), (("precision",), "test precision"),
         (("frozen_bn",), "frozen-block BatchNorm"), (("pretrained",), "initial weights"))


def training_text(a: dict) -> str:
    """'trained for 5 epochs from layer4 (layer4 blocks kept: 1), channels x0.5', or ''."""
    text = ""
    if "epochs" in a:
        text = f"trained for {a['epochs']} epoch{'s' if a['epochs'] != 1 else ''}"
    if "train_from" in a:
        text += f" from {a['train_from']}"
    if a.get("layer4_blocks"):
        text += f" (layer4 blocks kept: {a['layer4_blocks']})"
    if a.get("widen_factor", 1) != 1:
        text += f", channels x{a['widen_factor']:g}"
    return text.strip()


def method_line(a: dict) -> str:
    """One model's settings, from the attributes its test script recorded (absent ones left out)."""
    title = f"{ROLE_TITLE[a['model']]} ({pretty_arch(a.get('arch', 'resnet50'))})"
    hyper = ", ".join(f"{words} {a[key]}" for keys, words in HYPER
                      for key in [next((x for x in keys if x in a), None)] if key)
    average, size = a.get("average", "log_softmax"), a.get("size", "?")
    if a["model"] == "single_frame":
        test = f"every frame scored, {average} averaged per video"
        inputs = f"{size}x{size} frames, ImageNet mean/std"
    else:
        test = (f"whole video at once ({average})" if a.get("mode") == "full" else
                f"{a.get('frames', 16)}-frame windows every {a.get('stride', '?')} frames, "
                f"{average} averaged per video")
        norm = ("Hara's (0-255 minus the ActivityNet mean)" if a.get("preprocess") == "hara"
                else "Kinetics mean/std")
        inputs = f"{a.get('frames', 16)}x{size}x{size} clips, {norm}"
    checkpoint = ""
    if "checkpoint" in a:
        checkpoint = (f"checkpoint {short_path(a['checkpoint'])} "
                      f"(epoch {a.get('epochs', '?')})")
    parts = [f"{title}: split {a.get('split', '?')}", training_text(a), hyper, f"inputs {inputs}",
             f"test: {test}", checkpoint]
    return "; ".join(p for p in parts if p) + "."


def methods(results: dict) -> list[str]:
    """The settings the numbers came from: one line per model, then the fusion."""
    return [method_line(results["attrs"][k]) for k in ("single_frame", "3d")] + [
        f"Fusion: log_softmax(w * single-frame + (1 - w) * 3D) of the video-level "
        f"log-probabilities, w = {results['weight_single_frame']:g}."]


ACC_HEADER = ["Model", "Top-1 [95% interval]", "Top-5", "Top-10", "Mean class acc.", "Failed"]


def ci_text(r: dict) -> str:
    """'[low, high]' of a model's top-1 95% interval, or n/a for results.json without them."""
    ci = r.get("top1_ci95")
    return "n/a" if ci is None else f"[{pct(ci[0])}, {pct(ci[1])}]"


def accuracy_rows(results: dict) -> list[list[str]]:
    """One row per model: name, top-1 with its 95% interval, top-5, top-10, mean class, failed."""
    rows = []
    for k in MODELS:
        r = results["models"][k]
        rows.append([names(results)[k], f"{pct(r['top1'])} {ci_text(r)}", pct(r["top5"]),
                     pct(r["top10"]), pct(r["mean_class_accuracy"]), str(r["n_failed"])])
    return rows


def model_tables(r: dict) -> list[Table]:
    """A model's best and worst classes and most confused pairs."""
    best = [[x["class"], pct(x["accuracy"]), str(x["n_videos"])] for x in r["best"]]
    worst = [[x["class"], pct(x["accuracy"]), str(x["n_videos"])] for x in r["worst"]]
    conf = [[x["true"], x["predicted"], pct(x["fraction"]), str(x["count"])]
            for x in r["most_confused"]]
    n = sum(1 for k in r["per_class_n_videos"] if k)  # classes with test videos
    few = (f" (only {n} classes have test videos: all of them)" if n < TABLE_ROWS else
           f" (only {n} classes have test videos: the two tables overlap)" if n < 2 * TABLE_ROWS
           else "")
    return [Table(["Class", "Accuracy", "Test videos"], best,
                  f"{min(n, TABLE_ROWS)} best classes (ties broken by class index){few}"),
            Table(["Class", "Accuracy", "Test videos"], worst,
                  f"{min(n, TABLE_ROWS)} worst classes{few}"),
            Table(["True class", "Predicted as", "Fraction of true class", "Videos"], conf,
                  "10 most confused pairs (largest off-diagonal entries)")]


def gain_tables(results: dict) -> list[Table]:
    """The classes where one model beats the other most (per-class accuracy, video-level)."""
    header = ["Class", "Single-frame", "3D", "Gain (points)"]
    rows = {k: [[x["class"], pct(x["acc_a"]), pct(x["acc_b"]), f"{100 * x['gain']:+.1f}"]
                for x in v] for k, v in results["gains"].items()}
    return [Table(header, rows["3d_over_single_frame"],
                  "Classes where 3D gains most over single-frame"),
            Table(header, rows["single_frame_over_3d"],
                  "Classes where single-frame gains most over 3D")]


# ----------------------------------------------------------------------------- evaluation

PAIR_NAMES = {"3d_vs_single_frame": ("3d", "single_frame"), "fused_vs_3d": ("fused", "3d"),
              "fused_vs_single_frame": ("fused", "single_frame")}
SHORT_NAMES = {"single_frame": "Single-frame", "3d": "3D", "fused": "Fused"}
SETTING_KEYS = ("subset", "split", "val_groups", "crops", "flip", "mode", "stride", "average",
                "precision", "size", "arch", "epochs")


def fusion_text(results: dict) -> str:
    """One sentence: the fusion weight and what it was chosen on."""
    f = results.get("fusion", {"weight": results["weight_single_frame"], "chosen_on": "fixed"})
    if f["chosen_on"] == "validation":
        groups = results["attrs"]["single_frame"].get("val_groups", "?")
        return (f"Fusion weight {f['weight']:g} on single-frame, chosen on validation: the best "
                f"video-level top-1 on the {f['validation_videos']} validation videos (groups held "
                f"out of the training list, --val-groups {groups}); the test set played no part "
                f"in it.")
    return (f"Fusion weight {f['weight']:g} on single-frame: fixed in advance (no validation "
            f"predictions), not chosen on any data.")


def evaluation_tables(results: dict) -> list[Table]:
    """Top-1 with intervals, the McNemar tests, the test-time settings."""
    label, m = SHORT_NAMES, results["models"]
    ci = [[label[k], pct(m[k]["top1"]), ci_text(m[k]),
           str(m[k].get("n_videos", results["n_videos"]))] for k in MODELS]
    paired = [[f"{label[a]} vs {label[b]}", str(r["a_only"]), str(r["b_only"]),
               f"{r['p_value']:.3g}"]
              for key, (a, b) in PAIR_NAMES.items() if (r := results.get("paired", {}).get(key))]
    attrs = results["attrs"]
    settings = [[k] + [str(attrs.get(x, {}).get(k, "-")) for x in ("single_frame", "3d")]
                for k in SETTING_KEYS]
    return [Table(["Model", "Top-1", "95% bootstrap interval", "Test videos"], ci,
                  "Top-1 with 95% bootstrap intervals (test videos resampled 10,000 times, "
                  "seed 0)"),
            Table(["Pair (a vs b)", "Only a right", "Only b right", "p (exact McNemar)"], paired,
                  "Paired tests: exact McNemar, two-sided binomial on the videos the two models "
                  "disagree on"),
            Table(["Test-time setting", "Single-frame", "3D"], settings,
                  "Test-time settings (prediction attributes)")]


def split_table(summary: dict, label: dict) -> Table:
    """splits_summary.json -> a table of top-1 per split, mean and std."""
    splits = [str(s) for s in summary["splits"]]
    rows = [[label.get(k, k)] + [pct(r["per_split"][s]) for s in splits]
            + [pct(r["top1_mean"]), f"{100 * r['top1_std']:.2f}"]
            for k, r in summary["models"].items()]
    return Table(["Model"] + [f"Split {s}" for s in splits] + ["Mean", "Std (points)"], rows,
                 f"Video-level top-1 over the official splits {', '.join(splits)} (std: sample, "
                 f"ddof 1)")


def evaluation_section(results: dict, summary: dict | None = None) -> tuple[list, list[str]]:
    """(tables, text blocks) of the evaluation section: intervals, paired tests, the fusion weight
    and what it was chosen on, the test-time settings and (summary given) the split table."""
    tables = evaluation_tables(results)
    if summary is not None:
        tables = [split_table(summary, names(results))] + tables
    blocks = [fusion_text(results),
              "Intervals: percentile bootstrap of the video-level top-1, resampling the test "
              "videos with replacement (fixed seed, so a rerun gives the same interval). Paired "
              "tests: a p-value under 0.05 says the two models' top-1 differ by more than the "
              "videos they disagree on would give by chance."]
    if "sweep" in results:
        blocks.append("The test-set weight sweep (fusion weight section) scores every weight on "
                      "the test set: an oracle, not a held-out result.")
    return tables, blocks


# ----------------------------------------------------------------------------- the sweep panel

METRIC_LABELS = {"top1": "top-1", "top5": "top-5", "top10": "top-10",
                 "mean_class_accuracy": "mean class"}
COLOURS = {"top1": "tab:blue", "top5": "tab:orange", "top10": "tab:purple",
           "mean_class_accuracy": "tab:green"}


def sweep_series(results: dict) -> list[dict]:
    """The curves of the fusion weight panel: [{"source": "validation" | "test", "metric",
    "label", "weights", "values" (fractions)}]. First the validation rows that chose the weight;
    then the test-set sweep, when there, labelled an oracle. [] when results.json has neither."""
    series = []
    curve = lambda source, key, rows, label: {
        "source": source, "metric": key, "label": label, "weights": [r["weight"] for r in rows],
        "values": [r[key] for r in rows]}
    fusion = results.get("fusion", {})
    if fusion.get("chosen_on") == "validation" and fusion.get("validation_rows"):
        rows, n = fusion["validation_rows"], fusion.get("validation_videos", "?")
        series += [curve("validation", key, rows, f"validation {words} ({n} videos)")
                   for key, words in METRIC_LABELS.items() if all(key in r for r in rows)]
    if "sweep" in results:
        rows = results["sweep"]["rows"]
        series += [curve("test", key, rows, f"test {METRIC_LABELS[key]} (oracle)")
                   for key in ("top1", "top5", "mean_class_accuracy")
                   if all(key in r for r in rows)]
    return series


def sweep_caption(results: dict) -> str:
    """What the fusion weight panel shows, or that there is nothing to show."""
    series, fusion = sweep_series(results), results.get("fusion", {})
    w = results["weight_single_frame"]
    validation = any(s["source"] == "validation" for s in series)
    if not series:
        how = ("chosen on validation, whose per-weight rows results.json does not hold"
               if fusion.get("chosen_on") == "validation" else "fixed in advance")
        return (f"No fusion weight sweep: the weight {w:g} on single-frame was {how}, and "
                f"results.json has no test-set sweep (combine_results.py --sweep adds one, as an "
                f"oracle).")
    parts = []
    if validation:
        parts.append(f"Validation sweep that chose the fusion weight: video-level accuracy on the "
                     f"{fusion['validation_videos']} validation videos for each weight (solid "
                     f"lines); the chosen weight {w:g} on single-frame is marked.")
    if any(s["source"] == "test" for s in series):
        parts.append(("Dashed: the same weights scored on the test set" if validation else
                      f"Fusion weight sweep on the test set (the weight used, {w:g}, is marked)")
                     + " - an oracle (optimistic, not a held-out result), shown for comparison "
                       "only.")
    return " ".join(parts)


def sweep_figure(results: dict) -> MplFigure | None:
    """The fusion weight panel (matplotlib figure), or None when there is nothing to plot."""
    series = sweep_series(results)
    if not series:
        return None
    validation = any(s["source"] == "validation" for s in series)
    fig, ax = plt.subplots(figsize=(7.0, 3.4))
    for s in series:
        val = s["source"] == "validation"
        ax.plot(s["weights"], [100 * v for v in s["values"]], marker="o" if val else "s",
                markersize=4 if val else 3, linestyle="-" if val else "--",
                linewidth=1.6 if val else 1.0, alpha=1 if val else 0.75, color=COLOURS[s["metric"]],
                label=s["label"])
    w = results["weight_single_frame"]
    ax.axvline(w, color="0.3", linestyle=":", linewidth=1)
    ax.annotate(f"weight {w:g} ({'chosen on validation' if validation else 'used'})", (w, 0.02),
                xycoords=("data", "axes fraction"), xytext=(4, 0), textcoords="offset points",
                fontsize=7, color="0.25")
    ax.set(xlabel="fusion weight on single-frame (0 = 3D only, 1 = single-frame only)",
           ylabel="video-level accuracy (%)")
    ax.set_title("Validation sweep that chose the fusion weight" if validation
                 else "Fusion weight sweep on the test set (oracle)", fontsize=10)
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- other figures

def _confusion_axes(fig, ax, cm, labels, size, numbers=False) -> None:
    """Draw a row-normalised confusion matrix `(c, c)` with `labels` on both axes."""
    c = len(labels)
    # zeros are masked (white) so any confusion stands out; sqrt scale lifts small off-diagonals
    cmap = plt.get_cmap("viridis_r").with_extremes(bad="white")
    im = ax.imshow(np.ma.masked_equal(cm, 0), cmap=cmap, norm=PowerNorm(gamma=0.5, vmin=0, vmax=1),
                   interpolation="nearest")
    ax.set_xticks(range(c), labels, rotation=90, fontsize=size)
    ax.set_yticks(range(c), labels, fontsize=size)
    ax.set_xticks(np.arange(-0.5, c, 10 if c > 30 else 1), minor=True)
    ax.set_yticks(np.arange(-0.5, c, 10 if c > 30 else 1), minor=True)
    ax.grid(which="minor", color="0.85", linewidth=0.3)  # to follow a row by eye
    ax.tick_params(which="minor", length=0)
    ax.tick_params(which="major", length=2 if c > 30 else 3.5, pad=1)
    if numbers:
        for i, j in zip(*np.nonzero(cm >= 0.005)):
            ax.text(j, i, f"{100 * cm[i, j]:.0f}", ha="center", va="center", fontsize=6,
                    color="white" if cm[i, j] > 0.4 else "black")
    ax.set_xlabel("predicted class", fontsize=8)
    ax.set_ylabel("true class", fontsize=8)
    bar = fig.colorbar(im, ax=ax, fraction=0.035, pad=0.01,
                       ticks=[0, 0.01, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1])
    bar.set_label("fraction of the true class's test videos", fontsize=7)
    bar.ax.tick_params(labelsize=6)


def confusion_figure(cm: np.ndarray, class_list: list) -> MplFigure:
    """The whole matrix; with many classes, ordered so that confusions cluster near the diagonal
    (metrics.confusion_order)."""
    c = len(class_list)
    order = metrics.confusion_order(cm) if c > SMALL else np.arange(c)
    # drawn at about the size it is shown: half a page when small, a page when large
    side = 7.0 if c > SMALL else 4.4
    fig, ax = plt.subplots(figsize=(side, side))
    fig.subplots_adjust(left=0.18, right=0.95, bottom=0.18, top=0.98)
    # labels as tall as a row of the square axes allows: readable from 6 to 101 classes
    size = float(np.clip(0.85 * 0.74 * side * 72 / max(c, 1), 3.3, 8))
    _confusion_axes(fig, ax, cm[np.ix_(order, order)], [class_list[i] for i in order], size)
    return fig


def confusion_caption(c: int) -> str:
    note = " Classes are ordered so that confusions cluster near the diagonal." if c > SMALL else ""
    return ("Row = true class, each cell divided by the true class's number of test videos "
            f"(video-level); square-root colour scale; white cells are 0.{note}")


def block_members(cm: np.ndarray) -> list[int] | None:
    """The classes of the BLOCK_PAIRS most confused pairs, or None when the whole matrix is small
    enough to read as it is, or nothing is confused."""
    c = len(cm)
    off = np.where(np.eye(c, dtype=bool), 0, np.nan_to_num(cm))
    if c <= 2 * BLOCK_PAIRS or off.max() <= 0:
        return None
    top = np.argsort(-off, axis=None, kind="stable")[:BLOCK_PAIRS]
    return sorted({int(k) for t in top if off.flat[t] > 0 for k in np.unravel_index(t, off.shape)})


def confusion_block_figure(cm: np.ndarray, class_list: list) -> MplFigure | None:
    """An enlarged block of the classes in the most confused pairs (values in %), or None."""
    members = block_members(cm)
    if members is None:
        return None
    order = [members[i] for i in metrics.confusion_order(cm[np.ix_(members, members)])]
    fig, ax = plt.subplots(figsize=(7.0, 6.6))
    fig.subplots_adjust(left=0.25, right=0.95, bottom=0.25, top=0.98)
    _confusion_axes(fig, ax, cm[np.ix_(order, order)], [class_list[i] for i in order], 8,
                    numbers=True)
    return fig


def per_class_figure(results: dict) -> MplFigure:
    """Per-class accuracy of 3D against single-frame, the largest gains labelled."""
    a, b = per_class(results, "single_frame"), per_class(results, "3d")
    fig, ax = plt.subplots(figsize=(7.0, 6.4))
    ax.plot([0, 1], [0, 1], color="0.6", linewidth=0.8, label="equal accuracy")
    colour = np.where(b > a, "tab:blue", np.where(b < a, "tab:red", "0.4"))
    ax.scatter(a, b, s=14, alpha=0.6, c=colour)
    g = results["gains"]
    # labels beside their cluster, spread away from the nearest axis limit: no overprinting
    for rows, dx, ha, sign in ((g["3d_over_single_frame"][:8], 0.1, "left", -1),
                               (g["single_frame_over_3d"][:8], -0.1, "right", 1)):
        last = -sign * np.inf
        for x in sorted(rows, key=lambda r: sign * r["acc_b"]):
            last = sign * max(sign * x["acc_b"], sign * last + 0.04)
            ax.annotate(x["class"], (x["acc_a"], x["acc_b"]), xytext=(x["acc_a"] + dx, last), ha=ha,
                        va="center", fontsize=6.5,
                        arrowprops=dict(arrowstyle="-", color="0.5", linewidth=0.5))
    ax.set_xlim(-0.03, 1.03), ax.set_ylim(-0.03, 1.03), ax.set_aspect("equal")
    ax.set(xlabel="single-frame per-class accuracy (video-level)",
           ylabel="3D per-class accuracy (video-level)")
    fig.tight_layout()
    return fig


PER_CLASS_CAPTION = ("Per-class accuracy (video-level), one dot per class: blue = 3D better, red = "
                     "single-frame better, grey = equal; the largest gains are labelled.")


@dataclass
class Figure:
    """A figure of the report: its PNG file name ('' when there is none), heading and caption."""
    png: str
    heading: str
    caption: str
    page: bool = False  # a page of its own (a large confusion matrix)


def render(fig: MplFigure, path: str, dpi: int) -> None:
    """Save a matplotlib figure as PNG, trimmed to its content (the PDF scales it), and close it."""
    fig.savefig(path, dpi=dpi, bbox_inches="tight", pad_inches=0.04)
    plt.close(fig)


def make_figures(results: dict, cms: dict, fig_dir: str) -> dict:
    """Render every figure into fig_dir -> {"confusion": [Figure], "per_class", "sweep": Figure}."""
    label, c = names(results), len(results["class_list"])
    out = {"confusion": []}
    for k in MODELS:
        # 200 dpi at many classes: the ~3 pt labels stay legible when zoomed
        render(confusion_figure(cms[k], results["class_list"]),
               os.path.join(fig_dir, f"confusion_{k}.png"), 200 if c > 30 else 150)
        out["confusion"].append(Figure(f"confusion_{k}.png", f"Confusion matrix: {label[k]}",
                                       confusion_caption(c), page=c > SMALL))
        block = confusion_block_figure(cms[k], results["class_list"])
        if block is not None:
            render(block, os.path.join(fig_dir, f"confusion_{k}_block.png"), 150)
            out["confusion"].append(Figure(
                f"confusion_{k}_block.png", f"Most confused classes: {label[k]}",
                f"The classes of the {BLOCK_PAIRS} most confused pairs, enlarged; cells: % of the "
                f"true class's test videos (rows do not sum to 100: other classes omitted).",
                page=True))
    render(per_class_figure(results), os.path.join(fig_dir, "per_class.png"), 130)
    out["per_class"] = Figure("per_class.png", "Per-class accuracy: single-frame vs 3D",
                              PER_CLASS_CAPTION)
    sweep = sweep_figure(results)
    if sweep is not None:
        render(sweep, os.path.join(fig_dir, "fusion_sweep.png"), 130)
    out["sweep"] = Figure("fusion_sweep.png" if sweep is not None else "", "Fusion weight",
                          sweep_caption(results))
    return out


# ----------------------------------------------------------------------------- the document

@dataclass
class Report:
    """Everything the PDF and its Markdown twin show, computed once from the inputs."""
    title: str
    intro: str
    accuracy: list
    observations: list
    methods: list
    evaluation: tuple
    gains: list
    models: list  # [(heading, [Table])]
    discussion: list  # [discussion.Block]
    discussion_path: str
    figures: dict = field(default_factory=dict)

    @property
    def unwritten(self) -> bool:
        return discussion.unwritten(self.discussion)


def build_report(results: dict, summary: dict | None, blocks: list, path: str) -> Report:
    """The report's content (figures are added by make_figures)."""
    label, (two_d, three_d) = names(results), arch(results)
    toy = "Toy " if "motion_pairs" in results else ""
    split = results["attrs"]["single_frame"].get("split", "?")
    return Report(
        title=f"{toy}UCF-101 action recognition: single-frame vs {three_d}",
        intro=(f"Test split {split}, {results['n_videos']} test videos, "
               f"{len(results['class_list'])} classes. Single-frame model: {two_d}; 3D model: "
               f"{three_d}. All accuracies are video-level (one prediction per test video)."),
        accuracy=[Table(ACC_HEADER, accuracy_rows(results),
                        "Accuracy (video-level; top-1 with its 95% interval)")]
        + motion_pair_tables(results),
        observations=observations(results), methods=methods(results),
        evaluation=evaluation_section(results, summary), gains=gain_tables(results),
        models=[(label[k], model_tables(results["models"][k])) for k in MODELS],
        discussion=blocks, discussion_path=path)


def not_written_note(path: str) -> str:
    return (f"The discussion is not written yet: write your answers to the three questions in "
            f"{path} and build the report again (make report).")


def titled(blocks: list) -> bool:
    """Whether the discussion starts with its own `#` heading (then that is the section's)."""
    return bool(blocks) and blocks[0].kind == "h" and blocks[0].level == 1


def md_tables(tables: list, level: str = "###") -> list[str]:
    """Tables -> Markdown lines."""
    out = []
    for t in tables:
        out += [f"{level} {t.caption}", ""]
        lines = [t.header, ["---"] * len(t.header)] + t.rows
        out += ["| " + " | ".join(r) + " |" for r in lines] if t.rows else ["none"]
        out += [""]
    return out


def discussion_markdown(report: Report) -> list[str]:
    """The twin's discussion: the student's file, its headings one level down."""
    blocks = report.discussion
    head = discussion.to_markdown(blocks[:1], shift=1) if titled(blocks) else ["## Discussion", ""]
    note = [f"> **{not_written_note(report.discussion_path)}**", ""] if report.unwritten else []
    return head + note + discussion.to_markdown(blocks[1:] if titled(blocks) else blocks, shift=1)


def markdown(report: Report, figs: str) -> str:
    """The Markdown twin; figures referenced in the folder `figs` beside it."""
    md = [f"# {report.title}", "", report.intro, ""] + md_tables(report.accuracy, "##")
    md += ["## Observations", ""] + [f"- {o}" for o in report.observations]
    md += ["", "## Methods", ""] + [f"- {m}" for m in report.methods]
    tables, blocks = report.evaluation
    md += ["", "## Evaluation", ""] + md_tables(tables) + sum(([b, ""] for b in blocks), [])
    md += ["", "## Confusion matrices", ""]
    for f in report.figures["confusion"]:
        md += [f"![{f.heading}]({figs}/{f.png})", "", f.caption, ""]
    per_class, sweep = report.figures["per_class"], report.figures["sweep"]
    md += [f"## {per_class.heading}", "", f"![per-class]({figs}/{per_class.png})", "",
           per_class.caption, ""]
    md += md_tables(report.gains)
    md += [f"## {sweep.heading}", ""]
    md += [f"![fusion weight]({figs}/{sweep.png})", ""] if sweep.png else []
    md += [sweep.caption, ""]
    for heading, tables in report.models:
        md += [f"## {heading}", ""] + md_tables(tables)
    return "\n".join(md + discussion_markdown(report)) + "\n"


def pdf_story(report: Report, fig_dir: str) -> list:
    """The report as platypus flowables, in the order of the Markdown twin."""
    st = layout.styles()
    width, height = layout.frame_size()
    para = lambda text, style="body": layout.para(text, st, style)
    flat = lambda t: layout.table(t.header, t.rows, t.caption, st, width)
    tables = lambda ts: [layout.kept(flat(t)) for t in ts]

    def figure(f: Figure, max_h: float) -> list:
        image = layout.image(os.path.join(fig_dir, f.png), width, max_h)
        return [layout.kept([para(f.heading, "h1"), image, para(f.caption, "figcaption")])]

    story = [para(report.title, "title"), para(report.intro)] + tables(report.accuracy)
    story += [para("Observations (generated from the data)", "h1")]
    story += layout.bullets(report.observations, st)
    story += [para("Methods (the settings these numbers came from)", "h1")]
    story += layout.bullets(report.methods, st)
    eval_tables, eval_blocks = report.evaluation
    story += [CondPageBreak(2.5 * 72),
              para("Evaluation: intervals, paired tests, fusion weight, test-time settings", "h1")]
    story += tables(eval_tables) + [para(b) for b in eval_blocks] + [PageBreak()]
    for i, f in enumerate(report.figures["confusion"]):
        # heading and caption take ~1.1 inch: a large matrix gets the rest of its page
        story += ([PageBreak()] if f.page and i else [])
        story += figure(f, height - 1.1 * 72 if f.page else 0.37 * height)
    story += [PageBreak()] + figure(report.figures["per_class"], 0.62 * height)
    story += tables(report.gains)
    sweep = report.figures["sweep"]
    if sweep.png:
        story += [CondPageBreak(4 * 72)] + figure(sweep, 0.4 * height)
    else:
        story += [para(sweep.heading, "h1"), para(sweep.caption)]
    for heading, ts in report.models:
        # a model's three tables on one page: a table alone would not say whose it is
        story.append(layout.kept([para(heading, "h1")] + sum((flat(t) for t in ts), [])))
    blocks = report.discussion
    story += [PageBreak()]
    story += (layout.markdown_flowables(blocks[:1], st) if titled(blocks)
              else [para("Discussion", "h1")])
    if report.unwritten:
        story += layout.note(not_written_note(report.discussion_path), st, width)
    return story + layout.markdown_flowables(blocks[1:] if titled(blocks) else blocks, st)


# ----------------------------------------------------------------------------- command line

def pdf_path(text: str) -> str:
    """--pdf: a PDF path, else a usage error (the twin is the .md beside it)."""
    if not text.lower().endswith(".pdf"):
        raise argparse.ArgumentTypeError(f"{text!r} does not end in .pdf (the Markdown twin is "
                                         f"written beside the PDF, with the same name and .md)")
    return text


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = utils.ArgumentParser(prog=PROG, description=__doc__)
    p.add_argument("--results", default="runs/combined",
                   help="output folder of combine_results.py")
    p.add_argument("--pdf", "--out", dest="out", default="report/report.pdf", type=pdf_path,
                   help="PDF to write, ending in .pdf; the .md twin and <name>_figures/ go beside "
                        "it")
    p.add_argument("--splits-summary", default=None,
                   help="splits_summary.json of tools/splits_summary.py: adds the table of top-1 "
                        "over the splits")
    p.add_argument("--discussion", default="report/discussion.md",
                   help="the student's discussion (Markdown); made from the template with the "
                        "three questions when missing, never overwritten")
    return p.parse_args(argv)


def prepare_out(out: str) -> tuple[str, str]:
    """-> (figures folder, its name): beside the PDF, one per report name (no overwrites)."""
    folder = os.path.dirname(os.path.abspath(out))
    figs = os.path.splitext(os.path.basename(out))[0] + "_figures"
    where = os.path.dirname(out) or "."
    try:
        os.makedirs(os.path.join(folder, figs), exist_ok=True)
    except OSError as e:
        raise ReportError(f"--pdf {out}: cannot write in {where} ({e.strerror})") from None
    if not os.access(folder, os.W_OK):
        raise ReportError(f"--pdf {out}: cannot write in {where} (permission denied)")
    return os.path.join(folder, figs), figs


def main(args: argparse.Namespace) -> int:
    """Write the PDF, its Markdown twin and the figures -> number of PDF pages."""
    results = load_results(args.results)
    cms = load_confusions(args.results, len(results["class_list"]))
    summary = load_summary(args.splits_summary)
    fig_dir, figs = prepare_out(args.out)
    blocks, created = load_discussion(args.discussion)
    report = build_report(results, summary, blocks, args.discussion)
    md_path = os.path.splitext(args.out)[0] + ".md"
    try:
        report.figures = make_figures(results, cms, fig_dir)
        with atomic_write(args.out) as tmp:  # a failed layout leaves no half PDF behind
            n_pages = layout.build(tmp, pdf_story(report, fig_dir), report.title)
        with atomic_write(md_path) as tmp, open(tmp, "w", encoding="utf-8") as f:
            f.write(markdown(report, figs))
    except OSError as e:  # a full disk, a folder made read-only meanwhile: name the file
        raise ReportError(f"{e.filename or args.out}: cannot write it ({e.strerror})") from None
    print(f"wrote {args.out} ({n_pages} pages), {md_path} and {fig_dir}/")
    if report.unwritten:
        made = " (just made from the template, with the three questions)" if created else ""
        print(f"the discussion is not written yet: write it in {args.discussion}{made}, then "
              f"build the report again")
    return n_pages


if __name__ == "__main__":
    try:
        main(parse_args())
    except ReportError as e:
        sys.exit(f"{PROG}: {e}")
