"""The full-scale rehearsal (rehearse.py, make rehearsal), made small: the --like-ucf101 generator on
the official lists, its MPEG-4 videos and quirks, and every script at 101 classes.

Usage: pytest -q tests/test_rehearsal.py

The generator's plan is checked on all 13,320 names of the official lists (nothing rendered), and its
motion pairs on rendered clips; the reduced rehearsal writes 4 videos per class (404, all 101 classes)
and runs rehearse.py on them for one epoch per model, then checks its outputs against the split files
and predictions read here; docs/rehearsal.md's table is checked against docs/results/rehearsal.json.
"""
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest

import video_io
from tools import make_toy_ucf101 as toy

REPO = Path(__file__).resolve().parents[1]

PER_CLASS = 4  # groups 1, 8, 15, 22 of each class: split 1 tests group 1
NAME = re.compile(r"v_(.+)_g(\d+)_c(\d+)")


def list_names(path):
    """Video names of a split file, read with plain string operations."""
    return [line.split()[0].split("/")[1][:-4] for line in Path(path).read_text().splitlines() if line.strip()]


# ----------------------------------------------------------------------------- the generator's plan

def test_plan_covers_every_official_name(split_dir):
    class_list, videos, _ = toy.read_official_lists(split_dir)
    expected = set()
    for f in toy.SPLIT_FILES[1:]:
        expected |= set(list_names(split_dir / f))
    assert len(expected) == 13320 and set(videos) == expected
    plan = toy.plan_like_ucf101(videos)
    assert sorted(v["name"] for v in plan) == sorted(expected)
    n = len(plan)
    # every quirk of real files on a few percent of the videos, and 29.97 fps on some
    quirks = Counter(v["quirk"] for v in plan)
    for q in toy.QUIRKS:
        assert 0.01 * n < quirks[q] < 0.04 * n, (q, quirks[q])
    assert 0.1 * n < sum(v["fps"] != 25.0 for v in plan) < 0.3 * n
    lengths = np.array([v["n_frames"] for v in plan])
    assert 0.01 < np.mean(lengths < 16) < 0.06  # shorter than a 3D clip: the loaders pad them
    assert lengths.max() > 3 * np.median(lengths)  # a long tail, as UCF-101's lengths have
    odd = {(v["width"], v["height"]) for v in plan if v["quirk"] == "size"}
    assert odd and (80, 60) not in odd
    # deterministic from the seed, and the seed matters
    assert toy.plan_like_ucf101(videos) == plan
    assert [v["n_frames"] for v in toy.plan_like_ucf101(videos, seed=1)] != list(lengths)


def test_generated_lists_have_ucf101_statistics():
    class_list, videos, lines = toy.generated_lists(seed=0)
    assert class_list == toy.UCF101_CLASSES and len(class_list) == 101
    groups = Counter()
    for name in videos:
        cls, g, c = NAME.fullmatch(name).groups()
        groups[cls, int(g)] += 1
    assert {g for _, g in groups} == set(range(1, 26))
    assert set(groups.values()) <= {4, 5, 6, 7} and len(groups) == 101 * 25
    for s in (1, 2, 3):
        train = set(n.rsplit("_c", 1)[0] for n in (ln.split()[0] for ln in lines[f"trainlist0{s}.txt"]))
        test = set(n.rsplit("_c", 1)[0] for n in lines[f"testlist0{s}.txt"])
        assert not train & test  # group-disjoint
        n_train, n_test = len(lines[f"trainlist0{s}.txt"]), len(lines[f"testlist0{s}.txt"])
        assert n_train + n_test == len(videos)
        assert 9000 < n_train < 10300 and 3300 < n_test < 4200, (s, n_train, n_test)


def test_classes_motion_pairs_and_appearances():
    specs = toy.like_ucf101_specs(toy.UCF101_CLASSES)
    assert set(specs) == set(toy.UCF101_CLASSES)
    pairs = [(a, b) for a, b in toy.LIKE_PAIRS]
    assert 2 * len(pairs) >= 30 and len({c for p in pairs for c in p}) == 2 * len(pairs)
    for a, b in pairs:  # alike in every frame: the same spec but for the motion's sign
        assert specs[a][1:7] == specs[b][1:7] and specs[a][7] == -specs[b][7] != 0
        assert specs[a][6] in ("roll", "spin", "rise", "zoom")  # motions the horizontal flip keeps apart
    looks = [specs[a][1:6] for a, _ in pairs] + [s[1:6] for s in specs.values() if s[6] == "random"]
    assert len(looks) == len(set(looks)) == 101 - len(pairs)  # pairs and appearance classes all look distinct


LIKE_SPECS = toy.like_ucf101_specs(toy.UCF101_CLASSES)


@pytest.mark.parametrize("motion", [m for m, _ in toy.PAIR_MOTIONS])
def test_like_ucf101_pairs_alike_in_any_frame(motion):
    """--like-ucf101's motion pairs as rendered (its own zoom, LIKE_ZOOM): with common random numbers,
    the two members' mean frames differ far less than either differs from another pair's, so no single
    frame tells them apart; the object stands out from the background (PAIR_CONTRAST)."""
    k = next(i for i in range(len(toy.LIKE_PAIRS)) if toy.PAIR_MOTIONS[i % len(toy.PAIR_MOTIONS)][0] == motion)
    (a, b), (c, _) = toy.LIKE_PAIRS[k], toy.LIKE_PAIRS[(k + 2) % len(toy.LIKE_PAIRS)]
    keys = [(0, 1000 + k, g, 1) for g in range(40)]
    mean = {n: np.mean([toy.render_clip(LIKE_SPECS[n], key, 20, 80, 60, toy.LIKE_ZOOM).astype(np.float32).mean(0)
                        for key in keys], 0) for n in (a, b, c)}
    within, between = np.abs(mean[a] - mean[b]).mean(), np.abs(mean[a] - mean[c]).mean()
    assert within < 0.1 * between, (within, between)
    for a, _ in toy.LIKE_PAIRS:
        fg, bg = LIKE_SPECS[a][2], LIKE_SPECS[a][4]
        assert max(abs(x - y) for x, y in zip(fg, bg)) >= toy.PAIR_CONTRAST, a


def test_like_ucf101_zoom_grows_or_shrinks():
    """The first zoom pair: its first member recedes (its discs shrink between most frames), the second
    approaches; between the jumps back to the other end of the sizes, which each disc makes on its own."""
    a, b = next(p for i, p in enumerate(toy.LIKE_PAIRS) if toy.PAIR_MOTIONS[i % len(toy.PAIR_MOTIONS)][0] == "zoom")
    yellow = lambda f: (f[..., 2].astype(int) > 150) & (f[..., 0].astype(int) < 120)  # the yellow disc: R high, B low
    for name, sign in ((a, -1), (b, 1)):
        areas = np.array([[yellow(f).sum() for f in toy.render_clip(LIKE_SPECS[name], (0, 7, g, 1), 24, 80, 60,
                                                                  toy.LIKE_ZOOM)] for g in range(20)])
        steps = np.sign(np.diff(areas, axis=1))
        assert np.mean(steps == sign) > 0.6, (name, np.mean(steps == sign))


# ----------------------------------------------------------------------------- the reduced rehearsal

@pytest.fixture(scope="module")
def rehearsal(split_dir, tmp_path_factory, no_discussion_left):
    """rehearse.py on PER_CLASS videos per class of the official lists, 1 epoch per model at 16x16."""
    tmp = tmp_path_factory.mktemp("rehearsal")
    data, run = tmp / "data", tmp / "run"
    toy.make_like_ucf101(data, lists=split_dir, frames=20, max_per_class=PER_CLASS, workers=2)
    cmd = [sys.executable, "-m", "tools.rehearse", "--data-root", data, "--out", run,
           "--pdf", tmp / "rehearsal.pdf", "--max-per-class", PER_CLASS, "--frames", 20, "--size", 16,
           "--epochs-single-frame", 1, "--epochs-3d", 1, "--workers", 2, "--results-json", tmp / "summary.json"]
    r = subprocess.run([str(c) for c in cmd], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return {"data": data, "run": run, "pdf": tmp / "rehearsal.pdf", "stdout": r.stdout, "stderr": r.stderr,
            "meta": json.loads((data / "toy_classes.json").read_text()),
            "summary": json.loads((tmp / "summary.json").read_text())}


@pytest.mark.slow
def test_rehearsal_outputs_at_101_classes(rehearsal, split_dir):
    data, run = rehearsal["data"], rehearsal["run"]
    classes = [ln.split()[1] for ln in (split_dir / "classInd.txt").read_text().splitlines() if ln.strip()]
    test_names = list_names(data / "ucfTrainTestlist" / "testlist01.txt")
    assert len(test_names) == 101 and {NAME.fullmatch(n).group(1).lower() for n in test_names} == {
        c.lower() for c in classes}
    results = json.loads((run / "combined" / "results.json").read_text())
    assert results["class_list"] == classes and results["n_videos"] == len(test_names)
    for key in ("single_frame", "3d"):
        with h5py.File(run / f"{key}_test" / "predictions.h5", "r") as h:
            names, scores = h["videos"].asstr()[()], h["scores"][()]
            labels = h["labels"][()]
        assert sorted(names) == sorted(test_names) and scores.shape == (101, 101)
        order = np.argsort(-scores, axis=1)  # top-k recomputed here from the saved scores
        for k in (1, 5, 10):
            hit = np.mean([labels[i] in order[i, :k] for i in range(len(labels))])
            assert results["models"][key][f"top{k}"] == pytest.approx(hit)
        cm = np.load(run / "combined" / f"confusion_{key}.npy")
        assert cm.shape == (101, 101)
        np.testing.assert_allclose(cm.sum(1), 1.0, atol=1e-6)  # one test video per class, none failed
    for line in ("single frame  video-level top-1", "3D            video-level top-1", "fused"):
        assert line in rehearsal["stdout"]
    phases = json.loads((run / "phases.json").read_text())["phases"]
    assert [p["phase"].split(" (")[0] for p in phases] == [
        "generate", "prepare", "train single frame", "train 3D", "test single frame", "test single frame",
        "test 3D", "test 3D", "fuse + report"]
    # The fusion weight is chosen on the held-out groups (one per class, from the train list), never on test.
    fusion = results["fusion"]
    assert fusion["chosen_on"] == "validation" and fusion["validation_videos"] == 101
    with h5py.File(run / "single_frame_val" / "predictions.h5", "r") as h:
        val_names = set(h["videos"].asstr()[()])
    train_names = set(list_names(data / "ucfTrainTestlist" / "trainlist01.txt"))
    assert len(val_names) == 101 and val_names <= train_names and not val_names & set(test_names)


@pytest.mark.slow
def test_rehearsal_phases_json(rehearsal):
    """<out>/phases.json: every phase, in order, with a positive wall time; the total is their sum,
    and the summary (--results-json) and the printed table hold the same phases."""
    record = json.loads((rehearsal["run"] / "phases.json").read_text())
    phases = record["phases"]
    assert [p["phase"] for p in phases] == [
        "generate", "prepare (compact store)", "train single frame (1 epochs)", "train 3D (1 epochs)",
        "test single frame (held-out videos)", "test single frame (every test video)",
        "test 3D (held-out videos)", "test 3D (every test video)", "fuse + report"]
    for p in phases:
        assert isinstance(p["seconds"], (int, float)) and p["seconds"] > 0, p
        assert p["videos"] > 0 and p["phase"] in rehearsal["stdout"], p
    assert record["total_seconds"] == pytest.approx(sum(p["seconds"] for p in phases), abs=0.05)
    assert [p["phase"] for p in rehearsal["summary"]["phases"]] == [p["phase"] for p in phases]
    assert all(p["seconds"] > 0 for p in rehearsal["summary"]["phases"]) and "per video" in rehearsal["stdout"]


@pytest.mark.slow
def test_rehearsal_lesson_figures(rehearsal):
    """The lesson's three figures (single frame on the appearance classes and within the motion-only
    pairs, 3D within the pairs) are in results.json, the summary, the printout and the report. Their
    thresholds (docs/rehearsal.md) need the full run: one epoch on 4 videos a class cannot reach them."""
    results = json.loads((rehearsal["run"] / "combined" / "results.json").read_text())
    mp = results["motion_pairs"]["models"]
    figures = {"single frame, appearance classes": mp["single_frame"]["other_top1"],
               "single frame, within pairs": mp["single_frame"]["within_pair"], "3D, within pairs": mp["3d"]["within_pair"]}
    for name, x in figures.items():
        assert isinstance(x, float) and 0 <= x <= 1, (name, x)
    assert mp["3d"]["n_videos"] == 32 and len(mp["3d"]["pairs"]) == 16  # 16 pairs, one test video a class
    summary = rehearsal["summary"]["motion_pairs"]
    assert summary["single_frame"]["other_top1"] == pytest.approx(figures["single frame, appearance classes"], abs=1e-4)
    assert summary["single_frame"]["within_pair"] == pytest.approx(figures["single frame, within pairs"], abs=1e-4)
    assert summary["3d"]["within_pair"] == pytest.approx(figures["3D, within pairs"], abs=1e-4)
    assert len(summary["3d"]["pairs"]) == 16
    out = rehearsal["stdout"]  # printed from the summary (rounded to 4 digits)
    assert f"appearance classes, top-1: single frame {100 * summary['single_frame']['other_top1']:.1f}%" in out
    assert (f"within-pair accuracy (chance 50%): single frame {100 * summary['single_frame']['within_pair']:.1f}%, "
            f"3D {100 * summary['3d']['within_pair']:.1f}%") in out
    md = rehearsal["pdf"].with_suffix(".md").read_text()
    rows = {ln.split("|")[1].strip(): ln for ln in md.splitlines() if ln.startswith("|") and "%" in ln}
    sf_row = next(ln for k, ln in rows.items() if k.lower().startswith("single"))
    td_row = next(ln for k, ln in rows.items() if k.startswith("3D"))
    assert f"{100 * figures['single frame, appearance classes']:.2f}%" in sf_row
    assert f"{100 * figures['single frame, within pairs']:.2f}%" in sf_row
    assert f"{100 * figures['3D, within pairs']:.2f}%" in td_row
    from tools import rehearse
    table = rehearse.markdown_table(rehearsal["summary"])  # the docs' table renders a fresh summary too
    assert table.count("\n| ") > 20 and "motion-only pairs, within-pair" in table


# ----------------------------------------------------------------------------- the docs' figures

GENERATED = ("<!-- generated from docs/results/rehearsal.json by python -m tools.render_docs -->", "<!-- end generated -->")


def test_docs_table_is_generated_from_the_results_file():
    """docs/rehearsal.md's figures are markdown_table(docs/results/rehearsal.json), to the character."""
    from tools import rehearse
    summary = json.loads((REPO / "docs" / "results" / "rehearsal.json").read_text())
    doc = (REPO / "docs" / "rehearsal.md").read_text()
    assert doc.count(GENERATED[0]) == 1 and doc.count(GENERATED[1]) == 1
    block = doc.split(GENERATED[0])[1].split(GENERATED[1])[0]
    assert block.strip("\n") == rehearse.markdown_table(summary).strip("\n")
    # the full run, seed 0, with the settings the rehearsal has now
    assert summary["data"]["videos"] == 13320 and summary["settings"]["seed"] == 0
    assert summary["settings"]["max_per_class"] is None
    defaults = vars(rehearse.parse_args([]))
    for key in ("epochs_single_frame", "epochs_3d", "size_single_frame", "size_3d", "batch_size_single_frame",
                "batch_size_3d", "lr_single_frame", "lr_3d", "widen_factor_3d", "clip_frames", "frames"):
        assert summary["settings"][key] == defaults[key], key


def test_rehearse_flags():
    """The repo's flag names, the old ones kept as aliases, and every default in --help."""
    from tools import rehearse
    new = rehearse.parse_args(["--out", "r", "--pdf", "p.pdf", "--epochs-single-frame", "3", "--epochs-3d", "5"])
    old = rehearse.parse_args(["--run", "r", "--report", "p.pdf", "--epochs-2d", "3", "--epochs-3d", "5"])
    assert vars(new) == vars(old) and new.out == "r" and new.pdf == "p.pdf" and new.epochs_single_frame == 3
    assert vars(rehearse.parse_args(["--size", "24"]))["size_3d"] == 24
    r = subprocess.run([sys.executable, "-m", "tools.rehearse", "--help"], cwd=REPO, capture_output=True, text=True)
    text = " ".join(r.stdout.split())
    assert r.returncode == 0 and "--run" not in text
    for flag in ("--out", "--pdf", "--results-json", "--epochs-single-frame", "--epochs-3d", "--seed", "--workers"):
        assert flag in text
    n_flags = len(re.findall(r"^  --", r.stdout, re.M))
    assert text.count("(default:") == n_flags, (text.count("(default:"), n_flags)


@pytest.mark.slow
def test_rehearsal_report_pages(rehearsal):
    """The report at 101 classes, read back with pypdf: letter pages; the summary, methods and evaluation
    first; then a page each for the three whole confusion matrices and their enlarged blocks (one figure
    each), the per-class figure, the fusion sweep; a page of class tables per model; the discussion last."""
    import pypdf
    reader = pypdf.PdfReader(rehearsal["pdf"])
    md = rehearsal["pdf"].with_suffix(".md").read_text()
    pages = [p.extract_text() for p in reader.pages]
    boxes = {(round(float(p.mediabox.width)), round(float(p.mediabox.height))) for p in reader.pages}
    assert boxes == {(612, 792)}  # letter
    first = lambda i: pages[i].split("\n")[1] if pages[i].startswith("page ") else pages[i].split("\n")[0]
    figures = [i for i, p in enumerate(pages) if reader.pages[i].images]
    text = figures[0]  # pages of text before the first figure
    assert text >= 1 and "Methods" in "".join(pages[:text]) and "Evaluation" in "".join(pages[:text])
    weight = json.loads((rehearsal["run"] / "combined" / "results.json").read_text())["weight_single_frame"]
    names = ["Single-frame (2D ResNet-18)", "3D ResNet-10", f"Fused (weight {weight:g} on single-frame)"]
    titles = [t for n in names for t in (f"Confusion matrix: {n}", f"Most confused classes: {n}")]
    titles += ["Per-class accuracy: single-frame vs 3D", "Fusion weight"]
    assert figures == list(range(text, text + len(titles)))  # one figure a page, in a row
    assert [first(i) for i in figures] == titles
    assert all(len(reader.pages[i].images) == 1 for i in figures)
    after = list(range(figures[-1] + 1, len(pages)))
    assert [first(i) for i in after] == names + ["Discussion"] and len(pages) == text + len(titles) + 4
    assert all("10 best classes" in pages[i] and "10 most confused pairs" in pages[i] for i in after[:3])
    assert md.count("rehearsal_figures/confusion_") == 6 and md.count("_block.png") == 3
    methods = md.split("## Methods")[1].split("##")[0]
    assert "split 1" in methods and "trained for 1 epoch from all" in methods
    assert "16-frame windows every 8 frames" in methods and "checkpoint" in methods
    assert methods.count("(epoch 1)") == 2  # the epoch of each tested checkpoint, as its test run recorded it
    # the 3D model trains at half width (32 conv1 channels, Hara's 64 x 0.5), and the methods say so
    import torch
    ckpt = torch.load(rehearsal["run"] / "3d" / "checkpoint.pt", weights_only=True, map_location="cpu")
    assert ckpt["model"]["conv1.weight"].shape[0] == 32 and ckpt["model"]["fc.weight"].shape == (101, 256)
    assert methods.count("channels x0.5") == 1 and "3D (ResNet-10)" in methods.split("channels x0.5")[0]


@pytest.mark.slow
def test_quirky_videos_are_all_trained_on(rehearsal):
    """Videos whose headers give no or a bogus frame count, raw streams, grayscale and odd sizes:
    every one of the split's training videos was read (no video skipped in either model)."""
    meta, run = rehearsal["meta"], rehearsal["run"]
    train = set(list_names(rehearsal["data"] / "ucfTrainTestlist" / "trainlist01.txt"))
    quirky = Counter(q for name, q in meta["quirks"].items() if name in train)
    assert quirky["no_count"] + quirky["bad_count"] > 0, quirky
    for model in ("single_frame", "3d"):
        rows = (run / model / "log.csv").read_text().splitlines()
        header, last = rows[0].split(","), rows[-1].split(",")
        assert last[header.index("failed_videos")] == "0", rows
    assert "skipping unreadable video" not in rehearsal["stdout"] + rehearsal["stderr"]


# ----------------------------------------------------------------------------- the MPEG-4 videos

def decode_all(path):
    """Every frame of a video, decoded one by one from the start with OpenCV (RGB)."""
    cap, frames = cv2.VideoCapture(str(path)), []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(f, cv2.COLOR_BGR2RGB))
    cap.release()
    return np.stack(frames)


@pytest.mark.slow
def test_seeking_is_exact_on_generated_videos(rehearsal):
    """A clip read by seeking (our AVI path) equals the same frames decoded one by one from the start,
    on a sample of the generated videos that includes every quirk and late starts past keyframes."""
    meta, data = rehearsal["meta"], rehearsal["data"]
    names = sorted(meta["quirks"])[:10] + sorted(n for n in meta["n_frames"] if n not in meta["quirks"])[::40]
    checked = 0
    for name in names:
        path = next((data / "UCF-101").glob(f"*/{name}.avi"))
        frames = decode_all(path)
        assert len(frames) == meta["n_frames"][name], name
        assert video_io.count_frames(str(path)) == len(frames), name
        for start in sorted({0, max(len(frames) - 16, 0), len(frames) // 2, 13} & set(range(len(frames)))):
            idx = list(range(start, min(start + 16, len(frames))))
            clip = video_io.read_frames(str(path), idx, formats=("avi",))
            np.testing.assert_array_equal(clip, frames[idx], err_msg=f"{name} from frame {start}")
            checked += 1
    assert checked > 40


def avi_keyframes(path):
    """Keyframe flags of an AVI's video chunks, from its idx1 index (16-byte entries: chunk id, flags,
    offset, size; AVIIF_KEYFRAME = 0x10)."""
    raw = Path(path).read_bytes()
    at = raw.rfind(b"idx1")
    n = int.from_bytes(raw[at + 4:at + 8], "little") // 16
    entries = [raw[at + 8 + 16 * i:at + 24 + 16 * i] for i in range(n)]
    return [bool(int.from_bytes(e[4:8], "little") & 0x10) for e in entries if e[:4] == b"00dc"]


@pytest.mark.slow
def test_videos_are_mpeg4_with_inter_frames(rehearsal):
    """MPEG-4 Part 2 in AVI, as UCF-101's XviD files, with keyframes more than a frame apart, so that
    seeking really decodes forward from a keyframe."""
    meta, data = rehearsal["meta"], rehearsal["data"]
    name = next(n for n, k in sorted(meta["n_frames"].items()) if k >= 40 and n not in meta["quirks"])
    path = next((data / "UCF-101").glob(f"*/{name}.avi"))
    raw = path.read_bytes()
    strh, strf = raw.find(b"strh"), raw.find(b"strf")  # video stream header; BITMAPINFOHEADER after it
    assert raw[strh + 8:strh + 12] == b"vids" and raw[strh + 12:strh + 16] == b"XVID"  # fccHandler
    assert raw[strf + 24:strf + 28] == b"XVID"  # biCompression, as in UCF-101's files
    cap = cv2.VideoCapture(str(path))  # FFmpeg reads it as MPEG-4 Part 2 (it names that FMP4)
    assert int(cap.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little") == b"FMP4" and cap.read()[0]
    cap.release()
    keys = avi_keyframes(path)
    assert len(keys) == meta["n_frames"][name] and keys[0]
    assert 2 <= sum(keys) <= len(keys) // 4, keys  # a GOP of 12: a few keyframes, mostly inter frames
