"""Tests for make_toy_ucf101: layout, split-file format, determinism, group separation (toy and official
splits), the motion-pair property, and short clips. Usage: pytest -q tests/test_toy.py"""
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from tools import make_toy_ucf101 as toy

ROOT = Path(__file__).resolve().parents[1]

OFFICIAL = Path(__file__).resolve().parents[1].parent / "shared/data" / "ucfTrainTestlist"
SMALL = dict(classes=6, groups=4, clips=2, frames=20, width=64, height=48)
INDEX = {c[0]: k for k, c in enumerate(toy.CLASSES)}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("toy") / "toy"
    return out, toy.make_toy(out, seed=0, workers=1, **SMALL)


def read_lines(path):
    """Lines of an official-style list file; asserts CRLF endings throughout."""
    raw = path.read_bytes()
    assert raw.endswith(b"\r\n") and raw.count(b"\n") == raw.count(b"\r\n"), f"{path} is not CRLF"
    return raw.decode().split("\r\n")[:-1]


def decode(path):
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    return np.stack(frames)


def check_groups_disjoint(split_dir):
    """No (class, group) and no group number in both the train and test list of each split; returns sizes."""
    sizes = []
    for s in (1, 2, 3):
        train = [line.split(" ")[0] for line in read_lines(split_dir / f"trainlist0{s}.txt")]
        test = read_lines(split_dir / f"testlist0{s}.txt")
        groups = [{(p.split("/")[0], int(re.search(r"_g(\d+)_c\d+\.avi$", p).group(1))) for p in lst}
                  for lst in (train, test)]
        assert not groups[0] & groups[1], f"split {s}: groups in both lists"
        assert not {g for _, g in groups[0]} & {g for _, g in groups[1]}, f"split {s}: group number in both lists"
        sizes.append((len(train), len(test)))
    return sizes


def test_layout_and_format(small):
    out, summary = small
    lists = out / "ucfTrainTestlist"
    classes = [line.split(" ") for line in read_lines(lists / "classInd.txt")]
    assert [int(i) for i, _ in classes] == list(range(1, 7))
    names = [c for _, c in classes]
    assert names == summary["classes"] == toy.select_classes(6)
    videos = sorted(p.relative_to(out / "UCF-101").as_posix() for p in (out / "UCF-101").glob("*/*.avi"))
    assert len(videos) == 6 * 4 * 2
    for v in videos:
        assert re.fullmatch(r"(\w+)/v_\1_g0[1-4]_c0[12]\.avi", v), v
    for s in (1, 2, 3):
        train = [line.split(" ") for line in read_lines(lists / f"trainlist0{s}.txt")]
        test = read_lines(lists / f"testlist0{s}.txt")
        assert all(len(t) == 2 and int(t[1]) == names.index(t[0].split("/")[0]) + 1 for t in train)
        assert all(" " not in t for t in test)
        assert sorted([t[0] for t in train] + test) == videos  # every video in exactly one list
        assert [t[0] for t in train] == sorted(t[0] for t in train)  # official order: class, group, clip
    meta = json.loads((out / "toy_classes.json").read_text())
    kinds = {c["name"]: (c["kind"], c["pair"]) for c in meta["classes"]}
    assert kinds["RedCircle"] == ("appearance", None)
    assert kinds["BallRollLeft"] == ("motion", "BallRollRight")
    assert [tuple(p) for p in meta["pairs"]] == toy.motion_pairs(names) == \
        [("BallRollLeft", "BallRollRight"), ("BarSpinClockwise", "BarSpinCounterClockwise")]


def test_toy_groups_disjoint(small):
    out, summary = small
    sizes = check_groups_disjoint(out / "ucfTrainTestlist")
    assert sizes == list(zip(summary["train_sizes"], summary["test_sizes"])) == [(36, 12)] * 3


@pytest.mark.skipif(not OFFICIAL.is_dir(), reason=f"official split files not found at {OFFICIAL}")
def test_official_groups_disjoint():
    assert check_groups_disjoint(OFFICIAL) == [(9537, 3783), (9586, 3734), (9624, 3696)]


def test_determinism_and_skip(small, tmp_path):
    out, _ = small
    again = toy.make_toy(tmp_path / "same", seed=0, workers=2, **SMALL)  # parallel must equal serial
    other = toy.make_toy(tmp_path / "other", seed=1, workers=1, **SMALL)
    assert not again["skipped"] and not other["skipped"]
    for f in toy.SPLIT_FILES:
        assert (out / "ucfTrainTestlist" / f).read_bytes() == (tmp_path / "same/ucfTrainTestlist" / f).read_bytes()
    video = "UCF-101/BarSpinClockwise/v_BarSpinClockwise_g02_c01.avi"
    assert np.array_equal(decode(out / video), decode(tmp_path / "same" / video))
    a, b = decode(out / video), decode(tmp_path / "other" / video)
    assert a.shape != b.shape or not np.array_equal(a, b)
    assert toy.make_toy(tmp_path / "same", seed=0, **SMALL)["skipped"]
    with pytest.raises(FileExistsError):
        toy.make_toy(tmp_path / "same", seed=2, **SMALL)  # complete but made with other settings
    (tmp_path / "same/ucfTrainTestlist/testlist03.txt").unlink()  # as if interrupted
    assert not toy.make_toy(tmp_path / "same", seed=0, workers=1, **SMALL)["skipped"]


def test_short_clips(small):
    out, _ = small
    plan = toy.plan_videos(toy.select_classes(12))  # the default configuration
    short = sum(v["n_frames"] < 16 for v in plan)
    assert 0 < short < 0.15 * len(plan)
    meta = json.loads((out / "toy_classes.json").read_text())
    for name, n in list(meta["n_frames"].items())[::5]:
        assert len(decode(out / "UCF-101" / name.split("_")[1] / f"{name}.avi")) == n


# One scalar per frame that tracks each pair's motion (from colours of the rendered objects, BGR),
# and the sign its frame-to-frame change must have for the first class of the pair.
def _centroid(mask, axis):
    w = mask.sum()
    return np.nan if w == 0 else (np.nonzero(mask)[axis].mean())


def _bar_angle(f):
    b, g, r = (f[..., k].astype(int) for k in range(3))
    dot, bar = (r > 150) & (g < 100), (r > 150) & (g > 150)
    if dot.sum() == 0 or bar.sum() == 0:
        return np.nan
    return np.arctan2(_centroid(dot, 0) - _centroid(bar, 0), _centroid(dot, 1) - _centroid(bar, 1))


MOTION_STAT = {
    "BallRollLeft": (lambda f: _centroid(f.min(2) > 150, 1), -1),  # x of the white ball
    "BarSpinClockwise": (_bar_angle, 1),  # image y points down: clockwise = increasing angle
    "BoxRise": (lambda f: _centroid(f[..., 2].astype(int) > f[..., 0].astype(int) + 30, 0), -1),  # y of the box
    "DiscApproach": (lambda f: np.log1p(((f[..., 2] > 120) & (f[..., 1] < 100)).sum()), 1),  # red area
}


@pytest.mark.parametrize("pair", toy.motion_pairs(toy.select_classes(12)))
def test_motion_pair(pair):
    a, b = pair
    # Both members rendered with the same seed keys (common random numbers): any difference between their
    # mean frames then comes from the class, not from sampling, so a small tolerance is meaningful.
    keys = [(0, INDEX[a], g, 0) for g in range(40)]
    clips = {c: [toy.render_clip(c, k, 20, 64, 48) for k in keys] for c in (a, b, "RedCircle")}
    mean = {c: np.mean([x.astype(np.float32).mean(0) for x in v], 0) for c, v in clips.items()}
    within, between = np.abs(mean[a] - mean[b]).mean(), np.abs(mean[a] - mean["RedCircle"]).mean()
    assert within < 0.1 * between, (within, between)
    stat, sign = MOTION_STAT[a]
    steps = {c: np.concatenate([np.diff([stat(f) for f in x]) for x in clips[c]]) for c in (a, b)}
    if a == "BarSpinClockwise":
        steps = {c: np.angle(np.exp(1j * d)) for c, d in steps.items()}  # wrap to (-pi, pi]
    da, db = (np.nanmedian(steps[c]) for c in (a, b))
    assert np.sign(da) == sign and np.sign(db) == -sign, (da, db)
