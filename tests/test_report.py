"""The turn-in report (report/make_report.py) and the submission zip (report/make_submission.py).

Synthetic predictions.h5 files (scoring.save_run) of both models, test and validation, go
through combine_results.main; the report is built from its output at 6 classes (toy-like, with
motion pairs and a class without test videos) and at UCF-101's 101 classes. The expected text is
computed here from the synthetic scores (per-class accuracies, confusions, top-k, gains, McNemar),
never by the report's own functions, and looked for in the PDF's text (pypdf).

Usage: pytest -q tests/test_report.py
"""
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import matplotlib
import numpy as np
import pypdf
import pytest
from reportlab.lib.pagesizes import letter
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen import canvas
from scipy import special, stats

import combine_results
import metrics
import scoring
from tools import splits_summary

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "report"))  # the report's own modules, as report/make_report.py finds them
import discussion  # noqa: E402
import layout  # noqa: E402
import make_report  # noqa: E402

CLASS_IND = ROOT.parent / "shared" / "data" / "ucfTrainTestlist" / "classInd.txt"
SIX = ["BallRollLeft", "BallRollRight", "BarSpinClockwise", "BarSpinCounterClockwise", "Archery",
       "YoYo"]
PAIRS = [SIX[:2], SIX[2:4]]
MODELS = ("single_frame", "3d", "fused")
QUESTIONS = ["Did the results improve after combining the outputs?",
             "Are there differences/similarities between the best and worst classes of the "
             "models? Can anything be said about whether particular action classes are "
             "discriminated more by spatial information versus temporal information?",
             "Are there any notable examples among the most confused classes?"]
# long enough to wrap over lines; &, < and > must come out as they are, not as markup
SENTENCE = ("Fusing the two streams lifted top-1 on the motion pairs because the 3D network sees "
            "the direction of motion that no single frame can show, while the appearance classes "
            "such as Archery stayed where the single-frame model already had them & nothing got "
            "worse (single-frame<fused and fused>3D on two classes).")
DISCUSSION = f"""# Discussion

<!-- a comment the report leaves out -->

## 1. {QUESTIONS[0]}

{SENTENCE}

- The 3D model separates **BallRollLeft** from *BallRollRight* on most videos.
- Single frames tell only the appearance classes apart.

## 2. {QUESTIONS[1]}

[Student: write your answer here.]
"""
NAMES = {"single_frame": "Single-frame (2D ResNet-50)", "3d": "3D ResNet-18"}


# ----------------------------------------------------------------------------- synthetic runs

def attrs(model, subset):
    """Prediction attributes as the test scripts record them (scoring: the identity, then model_attrs)."""
    common = {"model": model, "checkpoint_sha256": f"{model:0<64}"[:64], "split": 1, "subset": subset,
              "val_groups": 1, "crops": "center", "flip": False, "average": "log_softmax",
              "epochs": 5, "train_from": "layer4", "frozen_bn": "eval"}
    if model == "single_frame":
        return {**common, "arch": "resnet50", "size": 224, "frames": 1, "lr": 0.0001, "batch_size": 32,
                "processes": 2, "train_precision": "bf16", "precision": "bf16", "pretrained": "imagenet",
                "checkpoint": "runs/x/single_frame/checkpoint.pt"}
    return {**common, "arch": "resnet18", "mode": "windows", "stride": 8, "frames": 16, "size": 112,
            "preprocess": "hara", "layer4_blocks": 1, "widen_factor": 1.0, "lr": 0.0005, "batch_size": 8,
            "processes": 4, "train_precision": "fp16", "precision": "fp16",
            "pretrained": "kinetics.pth", "checkpoint": "runs/x/3d/checkpoint.pt"}


# the methods lines those attributes must give, written out by hand
METHODS = [
    "Single-frame (ResNet-50): split 1; trained for 5 epochs from layer4; Adam lr 0.0001, batch "
    "32, training processes 2, training precision bf16, test precision bf16, frozen-block "
    "BatchNorm eval, initial weights imagenet; inputs 224x224 frames, ImageNet mean/std; test: "
    "every frame scored, log_softmax averaged per video; checkpoint "
    "runs/x/single_frame/checkpoint.pt (epoch 5).",
    "3D (ResNet-18): split 1; trained for 5 epochs from layer4 (layer4 blocks kept: 1); Adam lr "
    "0.0005, batch 8, training processes 4, training precision fp16, test precision fp16, "
    "frozen-block BatchNorm eval, initial weights kinetics.pth; inputs 16x112x112 clips, Hara's "
    "(0-255 minus the ActivityNet mean); test: 16-frame windows every 8 frames, log_softmax "
    "averaged per video; checkpoint runs/x/3d/checkpoint.pt (epoch 5).",
]


def synthetic_run(tmp, classes, per_class, seed, pairs=None):
    """Test and validation predictions of both models (one 3D test video failed), combined with the
    weight chosen on validation, --sweep and (pairs given) --toy-classes. With few classes the last
    one has no test video. -> dict with the folders and the test scores and labels."""
    rng = np.random.default_rng(seed)
    c = len(classes)
    out = {"tmp": tmp, "classes": classes}
    for subset, n in (("test", per_class), ("val", 2)):
        labels = np.repeat(np.arange(c), n)
        if subset == "test" and c < 12:
            labels = labels[labels != c - 1]
        groups = np.tile(np.arange(1, n + 1), c)[:len(labels)] + (0 if subset == "test" else 20)
        for model, boost in (("single_frame", 1.4), ("3d", 2.0)):
            logits = rng.normal(0, 1, (len(labels), c))
            logits[np.arange(len(labels)), labels] += boost
            logits[np.arange(len(labels)), (labels + 1) % c] += rng.uniform(0, 2, len(labels))
            scores = special.log_softmax(logits, axis=1).astype(np.float32)
            if subset == "test" and model == "3d":
                scores[3] = np.nan
            paths = [f"/d/UCF-101/{classes[k]}/v_{classes[k]}_g{g:02d}_c01.avi"
                     for k, g in zip(labels, groups)]
            failed = [p for p, bad in zip(paths, np.isnan(scores).any(1)) if bad]
            scoring.save_run(str(tmp / f"{model}_{subset}"), paths, labels, scores, classes,
                                 metrics.summarize(scores, labels, classes), failed,
                                 attrs(model, subset))
            if subset == "test":
                out[model], out["labels"] = scores.astype(np.float64), labels
    argv = ["--single-frame", str(tmp / "single_frame_test"), "--3d", str(tmp / "3d_test"),
            "--val-single-frame", str(tmp / "single_frame_val"),
            "--val-3d", str(tmp / "3d_val"), "--sweep", "--out", str(tmp / "combined")]
    if pairs:
        (tmp / "toy_classes.json").write_text(json.dumps({"pairs": pairs}))
        argv += ["--toy-classes", str(tmp / "toy_classes.json")]
    combine_results.main(combine_results.parse_args(argv))
    out["combined"] = tmp / "combined"
    out["results"] = json.loads((tmp / "combined" / "results.json").read_text())
    w = out["results"]["fusion"]["weight"]
    out["fused"] = special.log_softmax(w * special.log_softmax(out["single_frame"], 1)
                                       + (1 - w) * special.log_softmax(out["3d"], 1), 1)
    return out


def fake_split(path, split, top1):
    """A results.json of one split, enough for splits_summary.py."""
    a = {m: attrs(m, "test") | {"split": split} for m in ("single_frame", "3d")}
    results = {"class_list": SIX, "attrs": a,
               "fusion": {"weight": 0.4, "chosen_on": "validation"},
               "models": {m: {"top1": t} for m, t in zip(MODELS, top1)}}
    os.makedirs(path / "combined", exist_ok=True)
    (path / "combined" / "results.json").write_text(json.dumps(results))
    return path


def build(run, tmp, name="report", text=DISCUSSION, summary=None):
    """make_report.main on a run, with a discussion file holding `text` (None: no file) ->
    {"pdf", "n_pages", "raw" / "text" (the PDF's text as extracted / flattened), "md", ...}."""
    disc = tmp / f"{name}_discussion.md"
    if text is not None:
        disc.write_text(text, encoding="utf-8")
    pdf = tmp / f"{name}.pdf"
    argv = ["--results", str(run["combined"]), "--pdf", str(pdf), "--discussion", str(disc)]
    argv += ["--splits-summary", str(summary)] if summary else []
    n_pages = make_report.main(make_report.parse_args(argv))
    raw = "\n".join(p.extract_text() for p in pypdf.PdfReader(pdf).pages)
    return {"pdf": pdf, "n_pages": n_pages, "raw": raw, "text": flat(raw), "discussion": disc,
            "md": (tmp / f"{name}.md").read_text(encoding="utf-8"),
            "figures": tmp / f"{name}_figures"}


def flat(text):
    """Whitespace and line breaks normalised to single spaces."""
    return " ".join(text.split())


@pytest.fixture(scope="module")
def run6(tmp_path_factory):
    return synthetic_run(tmp_path_factory.mktemp("six"), SIX, 4, 0, PAIRS)


@pytest.fixture(scope="module")
def summary6(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("splits")
    runs = [fake_split(tmp / f"split{s}", s, (0.5 + s / 100, 0.6, 0.7)) for s in (1, 2, 3)]
    splits_summary.main(splits_summary.parse_args(["--runs", *map(str, runs), "--out", str(tmp)]))
    return tmp / "splits_summary.json"


@pytest.fixture(scope="module")
def report6(run6, summary6, tmp_path_factory):
    return build(run6, tmp_path_factory.mktemp("report6"), summary=summary6)


@pytest.fixture(scope="module")
def run101(tmp_path_factory):
    if not CLASS_IND.is_file():
        pytest.skip(f"{CLASS_IND} not found: the 101-class report test needs the official "
                    f"class list")
    classes = [line.split()[1] for line in CLASS_IND.read_text().splitlines() if line.strip()]
    assert len(classes) == 101
    return synthetic_run(tmp_path_factory.mktemp("big"), classes, 4, 1)


@pytest.fixture(scope="module")
def report101(run101, tmp_path_factory):
    return build(run101, tmp_path_factory.mktemp("report101"))


# ----------------------------------------------------------------------------- expected, by hand

def pct(x):
    return f"{100 * x:.2f}%"


def preds_by_hand(scores):
    """argmax, -1 for a failed (NaN) video."""
    return np.where(np.isnan(scores).any(1), -1, np.nan_to_num(scores, nan=-np.inf).argmax(1))


def per_class_by_hand(scores, labels, c):
    """Per-class accuracy (None: no test video) and test videos per class."""
    preds = preds_by_hand(scores)
    acc = [float(np.mean(preds[labels == k] == k)) if (labels == k).any() else None
           for k in range(c)]
    return acc, np.bincount(labels, minlength=c)


def topk_by_hand(scores, labels, k):
    ok = ~np.isnan(scores).any(1)
    order = np.argsort(-np.nan_to_num(scores, nan=0), axis=1, kind="stable")[:, :k]
    return float(np.mean([ok[i] and labels[i] in order[i] for i in range(len(labels))]))


def class_table_rows(acc, counts, classes, worst):
    present = [k for k in range(len(classes)) if acc[k] is not None]
    order = sorted(present, key=lambda k: (acc[k] if worst else -acc[k], k))[:10]
    return [[classes[k], pct(acc[k]), str(counts[k])] for k in order]


def confused_rows(scores, labels, classes):
    c, preds = len(classes), preds_by_hand(scores)
    counts = np.zeros((c, c), int)
    for t, p in zip(labels, preds):
        if p >= 0:
            counts[t, p] += 1
    totals = np.bincount(labels, minlength=c)
    cells = [(counts[t, p] / totals[t], counts[t, p], t, p) for t in range(c) for p in range(c)
             if t != p and counts[t, p]]
    cells.sort(key=lambda x: (-x[0], -x[1], x[2], x[3]))
    return [[classes[t], classes[p], pct(f), str(n)] for f, n, t, p in cells[:10]]


def gain_rows(run):
    c = len(run["classes"])
    a, _ = per_class_by_hand(run["single_frame"], run["labels"], c)
    b, _ = per_class_by_hand(run["3d"], run["labels"], c)
    both = [k for k in range(c) if a[k] is not None]
    up = sorted((k for k in both if b[k] > a[k]), key=lambda k: (a[k] - b[k], k))[:10]
    down = sorted((k for k in both if b[k] < a[k]), key=lambda k: (b[k] - a[k], k))[:10]
    row = lambda k: [run["classes"][k], pct(a[k]), pct(b[k]), f"{100 * (b[k] - a[k]):+.1f}"]
    return [row(k) for k in up], [row(k) for k in down]


def expected_tables(run):
    """(header, rows) of every table the report must show whole, computed from the scores."""
    res, labels, c = run["results"], run["labels"], len(run["classes"])
    w = res["fusion"]["weight"]
    names = {**NAMES, "fused": f"Fused (weight {w:g} on single-frame)"}
    tables = []
    acc_rows = []
    for m in MODELS:
        s = run[m]
        acc, counts = per_class_by_hand(s, labels, c)
        present = [x for x in acc if x is not None]
        lo, hi = res["models"][m]["top1_ci95"]
        acc_rows.append([names[m], f"{pct(topk_by_hand(s, labels, 1))} [{pct(lo)}, {pct(hi)}]",
                         pct(topk_by_hand(s, labels, 5)), pct(topk_by_hand(s, labels, 10)),
                         pct(np.mean(present)), str(int(np.isnan(s).any(1).sum()))])
        classes = ["Class", "Accuracy", "Test videos"]
        tables += [(classes, class_table_rows(acc, counts, run["classes"], worst=False)),
                   (classes, class_table_rows(acc, counts, run["classes"], worst=True)),
                   (["True class", "Predicted as", "Fraction of true class", "Videos"],
                    confused_rows(s, labels, run["classes"]))]
    tables.append((["Model", "Top-1 [95% interval]", "Top-5", "Top-10", "Mean class acc.",
                    "Failed"], acc_rows))
    up, down = gain_rows(run)
    tables += [(["Class", "Single-frame", "3D", "Gain (points)"], rows)
               for rows in (up, down) if rows]
    tables.append(paired_table(run))
    a = {m: attrs(m, "test") for m in ("single_frame", "3d")}
    keys = ("subset", "split", "val_groups", "crops", "flip", "mode", "stride", "average", "precision",
            "size", "arch", "epochs")
    settings = [[k, str(a["single_frame"].get(k, "-")), str(a["3d"].get(k, "-"))] for k in keys]
    tables.append((["Test-time setting", "Single-frame", "3D"], settings))
    if "motion_pairs" in res:
        tables.append(motion_pair_table(run))
    return tables


def paired_table(run):
    """McNemar: videos only a / only b gets right, and scipy's two-sided binomial p."""
    correct = {m: preds_by_hand(run[m]) == run["labels"] for m in MODELS}
    rows = []
    for a, b, label in (("3d", "single_frame", "3D vs Single-frame"),
                        ("fused", "3d", "Fused vs 3D"),
                        ("fused", "single_frame", "Fused vs Single-frame")):
        a_only = int((correct[a] & ~correct[b]).sum())
        b_only = int((correct[b] & ~correct[a]).sum())
        n = a_only + b_only
        p = 1.0 if n == 0 else stats.binomtest(a_only, n, 0.5).pvalue
        rows.append([label, str(a_only), str(b_only), f"{p:.3g}"])
    return ["Pair (a vs b)", "Only a right", "Only b right", "p (exact McNemar)"], rows


def motion_pair_table(run):
    """Within-pair accuracy (the higher of the pair's two scores decides) and swaps, per pair."""
    labels, rows = run["labels"], []
    preds = {m: preds_by_hand(run[m]) for m in MODELS}
    for (ca, cb), short in zip(PAIRS, ("BallRollLeft / Right",
                                       "BarSpinClockwise / CounterClockwise")):
        ia, ib = run["classes"].index(ca), run["classes"].index(cb)
        sel = np.isin(labels, [ia, ib])
        cells = []
        for m in MODELS:
            s = np.nan_to_num(run[m][sel][:, [ia, ib]], nan=-np.inf)
            ok = ~np.isnan(run[m][sel]).any(1)
            right = (np.where(s[:, 0] >= s[:, 1], ia, ib) == labels[sel]) & ok
            a_as_b = int(np.sum((labels == ia) & (preds[m] == ib)))
            b_as_a = int(np.sum((labels == ib) & (preds[m] == ia)))
            cells.append(f"{pct(right.mean())} ({a_as_b} + {b_as_a})")
        rows.append([short, str(int(sel.sum()))] + cells)
    return ["Motion pair", "Test videos", "Single-frame", "3D", "Fused"], rows


def assert_tables(text, tables):
    for header, rows in tables:
        assert rows, header
        whole = flat(" ".join(header + [cell for row in rows for cell in row]))
        assert whole in text, (header, rows)


# ----------------------------------------------------------------------------- layout

def register_dejavu():
    """The report's fonts (matplotlib's DejaVu), registered here for their metrics."""
    ttf = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    for name in ("DejaVuSans", "DejaVuSans-Bold", "DejaVuSans-Oblique", "DejaVuSans-BoldOblique",
                 "DejaVuSansMono"):
        if name not in pdfmetrics.getRegisteredFontNames():
            pdfmetrics.registerFont(TTFont(name, str(ttf / f"{name}.ttf")))


def text_runs(pdf):
    """Every piece of text drawn in the PDF: (page, x, y, width, text), width from the embedded
    font's metrics."""
    register_dejavu()
    runs = []
    for i, page in enumerate(pypdf.PdfReader(pdf).pages):
        # pypdf gives a piece the text matrix of its line, not the advance of the pieces before it
        cursor = {}

        def visit(text, cm, tm, font, size, i=i):
            text = text.replace("\n", "")
            if not text or font is None:
                return
            base = str(font["/BaseFont"]).lstrip("/").split("+")[-1]
            x = tm[4] * cm[0] + tm[5] * cm[2] + cm[4]
            y = tm[4] * cm[1] + tm[5] * cm[3] + cm[5]
            w = pdfmetrics.stringWidth(text, base, size) * tm[0] * cm[0]
            start = cursor.get((x, y), x)
            cursor[(x, y)] = start + w
            if text.strip():
                runs.append((i, start, y, w, text))
        page.extract_text(visitor_text=visit)
    return runs


def assert_nothing_cut(pdf):
    """Every text run lies on its page (a quarter inch from each edge at least) and no two runs on
    one line overlap (a cell's text never runs into the next cell)."""
    box = pypdf.PdfReader(pdf).pages[0].mediabox
    runs = text_runs(pdf)
    assert runs
    for page, x, y, w, text in runs:
        inside = 18 <= x and x + w <= float(box.width) - 18 and 18 <= y <= float(box.height) - 18
        assert inside, (page, x, y, w, text)
    lines = {}
    for page, x, y, w, text in runs:
        lines.setdefault((page, round(y)), []).append((x, w, text))
    for key, line in lines.items():
        line.sort()
        for (x0, w0, t0), (x1, _, t1) in zip(line, line[1:]):
            assert x0 + w0 <= x1 + 0.5, (key, t0, t1)


def test_layout_check_catches_cut_and_overlapping_text(tmp_path):
    """The check above fails on text off the page and on text running into the next cell."""
    register_dejavu()
    bad = {"off the page": [(72, 700, "fine"), (560, 400, "runs off the right edge")],
           "overlap": [(72, 700, "fine"), (100, 400, "a long cell text"), (130, 400, "next cell")]}
    for name, strings in bad.items():
        path = tmp_path / f"{name}.pdf"
        c = canvas.Canvas(str(path), pagesize=letter)
        c.setFont("DejaVuSans", 9)
        for x, y, text in strings:
            c.drawString(x, y, text)
        c.save()
        with pytest.raises(AssertionError):
            assert_nothing_cut(path)


def test_a_long_table_continues_on_the_next_page_under_its_header(tmp_path):
    """130 rows with a cell too long for its column: the rows flow over pages, each page repeats
    the header, the long cell wraps inside its column and every row is there once."""
    st = layout.styles()
    long = "a cell that is far too long for the width its column could ever get " * 3
    rows = [[f"class{i:03d}", f"{i / 130:.2%}", long if i == 7 else str(i)] for i in range(130)]
    width, _ = layout.frame_size()
    pdf = tmp_path / "long.pdf"
    story = layout.table(["Class", "Accuracy", "Note"], rows, "Long", st, width)
    pages = layout.build(str(pdf), story, title="long")
    texts = [flat(p.extract_text()) for p in pypdf.PdfReader(pdf).pages]
    assert pages == len(texts) >= 3
    assert all(t.count("Class Accuracy Note") == 1 for t in texts)
    body = " ".join(texts)
    assert all(body.count(f"class{i:03d} {i / 130:.2%}") == 1 for i in range(130))
    assert f"class007 {7 / 130:.2%} {flat(long)}" in body
    assert_nothing_cut(pdf)


# ----------------------------------------------------------------------------- the PDF

def check_report(rep, run):
    text = rep["text"]
    assert_tables(text, expected_tables(run))
    fusion = (f"Fusion: log_softmax(w * single-frame + (1 - w) * 3D) of the video-level "
              f"log-probabilities, w = {run['results']['fusion']['weight']:g}.")
    for line in METHODS + [fusion]:
        assert flat(line) in text, line
    # the student's paragraph, wrapped over lines in the PDF, is there whole, its & < > as written
    assert SENTENCE in text and SENTENCE not in rep["raw"]
    assert "The 3D model separates BallRollLeft from BallRollRight on most videos." in text
    assert "**" not in text and "*BallRollRight*" not in text
    assert "a comment the report leaves out" not in text
    assert "not written yet" not in text  # one answer is written: no note
    assert f"single-frame vs {NAMES['3d']}" in text and "3D ResNet-50" not in text
    assert rep["n_pages"] == len(pypdf.PdfReader(rep["pdf"]).pages)
    assert_nothing_cut(rep["pdf"])
    # the Markdown twin holds the same discussion, its headings one level down
    md = rep["md"]
    assert SENTENCE in md and f"### 1. {QUESTIONS[0]}" in md and "## Discussion" in md


def test_report_at_6_classes(report6, run6):
    check_report(report6, run6)
    assert "Motion-only pairs (toy)" in report6["text"]


def test_report_at_101_classes(report101, run101):
    check_report(report101, run101)
    assert "101 classes" in report101["text"]
    # 3 whole matrices and 3 enlarged blocks
    assert report101["md"].count("report_figures/confusion_") == 6


def test_report_shows_intervals_tests_weight_splits_and_settings(report6, run6):
    md, res = report6["md"], run6["results"]
    low, high = res["models"]["3d"]["top1_ci95"]
    assert f"[{100 * low:.2f}%, {100 * high:.2f}%]" in md
    assert re.search(r"\| Split 1 \| Split 2 \| Split 3 \| Mean \| Std \(points\) \|", md)
    assert "| 51.00% | 52.00% | 53.00% | 52.00% | 1.00 |" in md
    assert f"{res['paired']['fused_vs_3d']['p_value']:.3g}" in md and "exact McNemar" in md
    assert f"Fusion weight {res['fusion']['weight']:g} on single-frame, chosen on validation" in md
    assert "| crops | center | center |" in md and "| subset | test | test |" in md
    # and the PDF has the split table whole
    header = ["Model", "Split 1", "Split 2", "Split 3", "Mean", "Std (points)"]
    row = [NAMES["single_frame"], "51.00%", "52.00%", "53.00%", "52.00%", "1.00"]
    assert_tables(report6["text"], [(header, [row])])


# ----------------------------------------------------------------------------- the discussion

def test_discussion_made_from_the_template_when_missing(run6, tmp_path, capsys):
    rep = build(run6, tmp_path, text=None)
    template = (ROOT / "report" / "templates" / "discussion.md").read_bytes()
    assert rep["discussion"].read_bytes() == template
    for q in QUESTIONS:
        assert q in template.decode()
        assert q in rep["text"]
    # (a path longer than the note's line breaks anywhere: compared without spaces)
    note = rep["text"].split("The discussion is not written yet: write your answers to the three "
                             "questions in ")
    assert len(note) == 2 and note[1].replace(" ", "").startswith(str(rep["discussion"]))
    said = [line for line in capsys.readouterr().out.splitlines() if "not written yet" in line]
    assert len(said) == 1 and str(rep["discussion"]) in said[0]
    # what the old report checked: pages, the twin, the figures
    pdf = rep["pdf"].read_bytes()
    pages = len(pypdf.PdfReader(rep["pdf"]).pages)
    assert rep["n_pages"] == len(re.findall(rb"/Type\s*/Page\b", pdf)) == pages
    assert "video-level" in rep["md"] and "## Discussion" in rep["md"] and "[Student:" in rep["md"]
    assert "not written yet" in rep["md"]
    for name in MODELS:
        assert (rep["figures"] / f"confusion_{name}.png").is_file()


def test_discussion_is_never_overwritten(report6, run6, tmp_path):
    assert report6["discussion"].read_bytes() == DISCUSSION.encode()  # after the first run
    args = make_report.parse_args(["--results", str(run6["combined"]),
                                   "--pdf", str(tmp_path / "again.pdf"),
                                   "--discussion", str(report6["discussion"])])
    make_report.main(args)
    assert report6["discussion"].read_bytes() == DISCUSSION.encode()
    assert SENTENCE in flat(pypdf.PdfReader(tmp_path / "again.pdf").pages[-1].extract_text())


def test_discussion_markdown():
    assert discussion.inline_markup("a & b < c > d **bold** and *it* `x_y`", mono="M") == (
        'a &amp; b &lt; c &gt; d <b>bold</b> and <i>it</i> <font face="M">x_y</font>')
    blocks = discussion.parse("# T\n\npara one\ngoes on\n\n- item\n  more\n- two\n\n1. first\n"
                              "2. second\n<!-- gone -->\n## Sub")
    assert [(b.kind, b.text, b.level, b.items) for b in blocks] == [
        ("h", "T", 1, []), ("p", "para one goes on", 0, []), ("ul", "", 0, ["item more", "two"]),
        ("ol", "", 0, ["first", "second"]), ("h", "Sub", 2, [])]
    template = discussion.parse((ROOT / "report" / "templates" / "discussion.md").read_text())
    assert discussion.unwritten(template) and not discussion.unwritten(discussion.parse(DISCUSSION))


# ----------------------------------------------------------------------------- the sweep panel

def test_sweep_panel_plots_the_validation_rows_that_chose_the_weight(run6, report6):
    res = run6["results"]
    rows, test_rows = res["fusion"]["validation_rows"], res["sweep"]["rows"]
    fig = make_report.sweep_figure(res)
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    validation = [v for k, v in lines.items() if k.startswith("validation top-1")]
    assert len(validation) == 1
    np.testing.assert_allclose(validation[0].get_xdata(), [r["weight"] for r in rows])
    np.testing.assert_allclose(validation[0].get_ydata(), [100 * r["top1"] for r in rows])
    oracle = lines["test top-1 (oracle)"]
    np.testing.assert_allclose(oracle.get_ydata(), [100 * r["top1"] for r in test_rows])
    assert oracle.get_linestyle() == "--" and validation[0].get_linestyle() == "-"
    assert fig.axes[0].get_title() == "Validation sweep that chose the fusion weight"
    text = report6["text"]
    assert "Validation sweep that chose the fusion weight" in text and "oracle" in text
    assert "No fusion weight sweep" not in text
    # validation only: no oracle; neither: said so
    only_val = {k: v for k, v in res.items() if k != "sweep"}
    assert [s["source"] for s in make_report.sweep_series(only_val)] == ["validation"]
    assert "oracle" not in make_report.sweep_caption(only_val)
    fixed = {**only_val, "fusion": {"weight": 0.5, "chosen_on": "fixed", "validation_videos": 0}}
    assert make_report.sweep_series(fixed) == [] and make_report.sweep_figure(fixed) is None
    assert make_report.sweep_caption(fixed).startswith("No fusion weight sweep")


# ----------------------------------------------------------------------------- bad input

def cli(*argv, cwd=ROOT):
    p = subprocess.run([sys.executable, str(ROOT / "report" / "make_report.py"), *map(str, argv)],
                       cwd=cwd, capture_output=True, text=True, timeout=120)
    assert "Traceback" not in p.stderr, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    return p.returncode, lines[0]


def test_swapped_roles_refuse_in_one_line(run6, tmp_path):
    swapped = tmp_path / "swapped"
    shutil.copytree(run6["combined"], swapped)
    res = json.loads((swapped / "results.json").read_text())
    res["attrs"] = {"single_frame": res["attrs"]["3d"], "3d": res["attrs"]["single_frame"]}
    (swapped / "results.json").write_text(json.dumps(res))
    rc, line = cli("--results", swapped, "--pdf", tmp_path / "r.pdf",
                   "--discussion", tmp_path / "d.md")
    assert rc == 1 and str(swapped / "results.json") in line
    assert "the single_frame predictions record model '3d', not 'single_frame'" in line
    assert not (tmp_path / "r.pdf").exists() and not (tmp_path / "d.md").exists()


def test_out_must_be_a_pdf(tmp_path):
    rc, line = cli("--pdf", tmp_path / "x.md", "--results", tmp_path)
    assert rc == 2 and "--pdf" in line and "does not end in .pdf" in line
    rc, line = cli("--out", tmp_path / "x.md", "--results", tmp_path)  # the old name, an alias
    assert rc == 2 and "--out" in line and "does not end in .pdf" in line
    assert not (tmp_path / "x.md").exists()
    with pytest.raises(SystemExit) as e:
        make_report.parse_args(["--out", "report.md"])
    assert e.value.code == 2


def test_missing_results_json_is_one_line(tmp_path):
    rc, line = cli("--results", tmp_path, "--pdf", tmp_path / "r.pdf")
    assert rc == 1 and line == (f"make_report.py: --results {tmp_path}: no results.json there "
                                f"(run combine_results.py --out {tmp_path} first)")


def test_other_bad_inputs_name_the_file(run6, tmp_path):
    def error(folder=run6["combined"], *extra, out=tmp_path / "r.pdf"):
        args = make_report.parse_args(["--results", str(folder), "--pdf", str(out),
                                       "--discussion", str(tmp_path / "d.md"), *map(str, extra)])
        with pytest.raises(make_report.ReportError) as e:
            make_report.main(args)
        return str(e.value)

    part = tmp_path / "part"
    shutil.copytree(run6["combined"], part)
    os.remove(part / "confusion_3d.npy")
    assert error(part) == (f"--results {part}: no confusion_3d.npy there (run combine_results.py "
                           f"--out {part} again)")
    (part / "results.json").write_text(json.dumps({"models": {}}))
    assert error(part).startswith(f"{part / 'results.json'}: not a results.json of "
                                  f"combine_results.py")
    (part / "results.json").write_text("{not json")
    assert error(part).startswith(f"{part / 'results.json'}: not JSON")
    assert error(run6["combined"], "--splits-summary", tmp_path / "none.json").startswith(
        f"--splits-summary {tmp_path / 'none.json'}: no such file")
    (tmp_path / "file").write_text("")
    assert error(out=tmp_path / "file" / "r.pdf").startswith(
        f"--pdf {tmp_path / 'file' / 'r.pdf'}: cannot write in")
    nomodel = tmp_path / "nomodel"
    shutil.copytree(run6["combined"], nomodel)
    res = json.loads((nomodel / "results.json").read_text())
    del res["attrs"]["3d"]["model"]
    (nomodel / "results.json").write_text(json.dumps(res))
    assert "the 3d predictions record no model attribute" in error(nomodel)
    assert not (tmp_path / "d.md").exists() and not (tmp_path / "r.pdf").exists()


def test_help_runs_from_the_repo_root():
    p = subprocess.run([sys.executable, "report/make_report.py", "--help"], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "usage: make_report.py" in p.stdout
    for flag in ("--results", "--out", "--splits-summary", "--discussion"):
        assert flag in p.stdout
    # three flags have defaults; --splits-summary is optional and shows none (not "None")
    assert p.stdout.count("(default:") == 3 and "(default: None)" not in p.stdout
    for default in ("runs/combined", "report/report.pdf", "report/discussion.md"):
        assert default in " ".join(p.stdout.split())


# ----------------------------------------------------------------------------- the submission zip

def git(repo, *argv):
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *argv],
                   check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path):
    """A small repository: code tracked; a checkpoint, data, a venv, the report and the discussion
    ignored; the results older than the report."""
    r = tmp_path / "repo"
    files = {".gitignore": ".venv\ndata/\nruns/\nreport/*.pdf\nreport/*.md\n*.tmp\n",
             "train.py": "print(1)\n", "report/make_report.py": "# report\n",
             "README.md": "# readme\n",
             "runs/toy/3d/checkpoint.pt": "weights", "runs/toy/3d_test/predictions.h5": "scores",
             "runs/toy/combined/results.json": "{}", "data/toy/v.avi": "video",
             ".venv/bin/python": "#!", "report/report.pdf": "%PDF",
             "report/discussion.md": "# Discussion\n\nMine.\n"}
    for name, text in files.items():
        (r / name).parent.mkdir(parents=True, exist_ok=True)
        (r / name).write_text(text)
    git(r, "init", "-q")
    git(r, "add", ".")
    git(r, "commit", "-q", "-m", "code")
    (r / "train.py").write_text("print(2)\n")  # changed since the commit
    (r / "notes.txt").write_text("untracked\n")
    os.utime(r / "runs/toy/combined/results.json", (1e9, 1e9))
    os.utime(r / "report/discussion.md", (1e9 + 50, 1e9 + 50))
    os.utime(r / "report/report.pdf", (1e9 + 100, 1e9 + 100))
    return r


def submission(repo, *argv):
    return subprocess.run([sys.executable, str(ROOT / "report" / "make_submission.py"),
                           "--results", "runs/toy/combined/results.json",
                           "--out", "submission/hw.zip", *argv],
                          cwd=repo, capture_output=True, text=True, timeout=120)


def test_submission_zips_tracked_code_report_and_discussion(repo):
    p = submission(repo)
    assert p.returncode == 0, p.stderr
    with zipfile.ZipFile(repo / "submission" / "hw.zip") as z:
        assert sorted(z.namelist()) == sorted(f"hw/{n}" for n in (
            ".gitignore", "README.md", "train.py", "report/make_report.py", "report/report.pdf",
            "report/discussion.md"))
        assert z.read("hw/train.py") == b"print(2)\n"  # the working tree's content
    lines = p.stdout.splitlines()
    assert lines[0].startswith("wrote submission/hw.zip (6 files, ")
    assert [x for x in lines if x.startswith("differ from the last commit")] == [
        "differ from the last commit (zipped as they are now): train.py"]
    assert [x for x in lines if x.startswith("not in the zip")] == [
        "not in the zip (untracked; git add them to hand them in): notes.txt"]
    again = submission(repo)  # the zip of the first run is not listed as untracked
    assert again.returncode == 0 and "hw.zip" not in again.stdout.split("\n", 1)[1]


def test_submission_refuses_a_missing_or_stale_report(repo):
    os.utime(repo / "report/report.pdf", (1e9 - 10, 1e9 - 10))
    p = submission(repo)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines() == [
        "make_submission.py: --report report/report.pdf is older than --results "
        "runs/toy/combined/results.json: run make report again so the zip holds the report of "
        "these results"]
    # newer than the results, older than the discussion
    os.utime(repo / "report/report.pdf", (1e9 + 20, 1e9 + 20))
    p = submission(repo)
    assert p.returncode == 1 and "older than --discussion report/discussion.md" in p.stderr
    os.remove(repo / "report/report.pdf")
    p = submission(repo)
    assert p.returncode == 1 and p.stderr.strip().splitlines() == [
        "make_submission.py: --report report/report.pdf: no such file (run make report first)"]
    assert not (repo / "submission").exists()
