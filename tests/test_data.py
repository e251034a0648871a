"""Tests for the data pipeline: split files, decoding of the three video formats, the assignment's
loaders, augmentation, corrupt videos, DataLoader reproducibility and prepare_data.

Usage: .venv/bin/pytest -q tests/test_data.py

Runs on the real UCF-101 split files and 4 real clips in ../shared/data (skipped when absent).
"""
import os
import re
import shutil

import cv2
import h5py
import numpy as np
import pytest
import torch
from conftest import REAL_CLIPS

import helperFunctions as hf
import video_io
from tools import prepare_data

torch.set_num_threads(2)

N_TRAIN = {1: 9537, 2: 9586, 3: 9624}
N_TEST = {1: 3783, 2: 3734, 3: 3696}


def _undo(x, mean, std):
    """Normalised float (3, ..., H, W) -> 0-255 float (..., H, W, 3)."""
    return (np.moveaxis(np.asarray(x, dtype=np.float64), 0, -1) * np.array(std) + np.array(mean)) * 255


def _resize(frames, size):
    return np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_LINEAR) for f in frames])


# ----------------------------------------------------------------------------- split files

@pytest.mark.parametrize("split", [1, 2, 3])
def test_official_splits(shared_data, split_dir, split):
    classes, (tr_p, tr_l), (te_p, te_l) = hf.getUCF101(str(shared_data), split)
    with open(split_dir / "classInd.txt") as f:
        expected = [line.split()[1] for line in f if line.strip()]
    assert list(classes) == expected and len(classes) == 101
    assert classes[0] == "ApplyEyeMakeup" and classes[100] == "YoYo"
    assert len(tr_p) == len(tr_l) == N_TRAIN[split] and len(te_p) == len(te_l) == N_TEST[split]
    for paths, labels in ((tr_p, tr_l), (te_p, te_l)):
        assert labels.dtype == np.int64 and labels.min() == 0 and labels.max() == 100
        assert set(labels.tolist()) == set(range(101))
        for p, y in zip(paths, labels):
            base, sub, cls, fname = p.rsplit("/", 3)
            assert (base, sub, cls) == (str(shared_data), "UCF-101", classes[y]), p
            assert fname.endswith(".avi") and fname.lower().startswith("v_" + cls.lower() + "_")
    # test labels come from the class folder of each line (the test lists carry no label)
    with open(split_dir / f"testlist0{split}.txt") as f:
        folders = [line.split("/")[0] for line in f if line.strip()]
    assert [classes[y] for y in te_l] == folders
    # train and test are disjoint, groups kept apart
    names = lambda ps: {os.path.basename(p) for p in ps}  # noqa: E731
    assert not names(tr_p) & names(te_p)
    groups = lambda ps: {re.sub(r"_c\d+\.avi$", "", os.path.basename(p)) for p in ps}  # noqa: E731
    assert not groups(tr_p) & groups(te_p)


def test_handstand_pushups_quirk(shared_data):
    classes, (tr_p, tr_l), (te_p, te_l) = hf.getUCF101(str(shared_data), 1)
    hs = int(np.flatnonzero(classes == "HandstandPushups")[0])
    quirk = [(p, y) for p, y in zip(list(tr_p) + list(te_p), list(tr_l) + list(te_l))
             if "/HandstandPushups/v_HandStandPushups_" in p]
    assert len(quirk) > 100 and all(y == hs for _, y in quirk)


def _copy_splits(split_dir, root, edit=lambda name, text: text):
    """Copy classInd + split 1 into root/ucfTrainTestlist, passing each file's text through `edit`."""
    d = root / "ucfTrainTestlist"
    d.mkdir(parents=True, exist_ok=True)
    for name in ("classInd.txt", "trainlist01.txt", "testlist01.txt"):
        text = (split_dir / name).read_bytes().decode()
        (d / name).write_bytes(edit(name, text).encode())
    return d


def test_split_whitespace_tolerance(shared_data, split_dir, tmp_path):
    def messy(name, text):
        lines = text.replace("\r\n", "\n").split("\n")
        out = ["", "  "]
        for i, line in enumerate(lines):  # mixed LF/CRLF, trailing spaces and tabs, blank lines
            out.append(line + ("  \t" if i % 3 == 0 else "") + ("\r" if i % 2 else ""))
            if i % 50 == 0:
                out += ["", " \r"]
        return "\n".join(out) + "\n\n"

    ref = hf.getUCF101(str(shared_data), 1)
    _copy_splits(split_dir, tmp_path, messy)
    got = hf.getUCF101(str(tmp_path), 1)
    assert list(got[0]) == list(ref[0])
    for (gp, gl), (rp, rl) in zip(got[1:], ref[1:]):
        assert [p.replace(str(tmp_path), "") for p in gp] == [p.replace(str(shared_data), "") for p in rp]
        assert np.array_equal(gl, rl)


def test_split_errors_name_file_and_line(split_dir, tmp_path):
    d = _copy_splits(split_dir, tmp_path)
    (d / "testlist01.txt").unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(str(d / "testlist01.txt"))):
        hf.getUCF101(str(tmp_path), 1)

    def insert(target, line_no, bad):  # `bad` becomes physical line `line_no` (blank lines before)
        def edit(name, text):
            if name != target:
                return text
            lines = text.split("\r\n")
            lines[1:1] = [""] * 2  # blank lines still count as lines
            lines.insert(line_no - 1, bad)
            return "\r\n".join(lines)
        return edit

    for target, bad, what in [("trainlist01.txt", "this line is not valid", "expected"),
                              ("trainlist01.txt", "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 7", "label"),
                              ("trainlist01.txt", "ApplyEyeMakeup_v_x.avi 1", "expected"),
                              ("testlist01.txt", "NoSuchClass/v_NoSuchClass_g01_c01.avi", "NoSuchClass"),
                              ("classInd.txt", "7 NotInOrder", "index"),
                              # a video listed twice would be trained on or counted twice
                              ("trainlist01.txt", "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1",
                               r"ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi is listed a second time \(first on line 1\)"),
                              ("testlist01.txt", "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi",
                               r"is listed a second time \(first on line 1\)")]:
        _copy_splits(split_dir, tmp_path, insert(target, 5, bad))
        with pytest.raises(ValueError, match=re.escape(f"{d / target}:5") + ".*" + what):
            hf.getUCF101(str(tmp_path), 1)


@pytest.mark.parametrize("split", [0, 4, -1])
def test_split_number_checked(shared_data, split):
    with pytest.raises(ValueError, match="split"):
        hf.getUCF101(str(shared_data), split)


# ----------------------------------------------------------------------------- decoding

def test_formats_decode_same_frames(real_root):
    for p in real_root.paths:
        avi, raw, jpg = real_root.source[p], real_root.copy(p, "hdf5"), real_root.copy(p, "jpeg")
        n = REAL_CLIPS[video_io.video_name(p)]
        assert [video_io.count_frames(x) for x in (p, avi, raw, jpg)] == [n] * 4
        a, r, j = video_io.read_frames(avi), video_io.read_frames(raw), video_io.read_frames(jpg)
        assert a.dtype == r.dtype == j.dtype == np.uint8 and a.shape == r.shape == j.shape == (n, 240, 320, 3)
        assert np.array_equal(a, r)
        cap = cv2.VideoCapture(avi)  # an independent decode of frame 0 (BGR) fixes the channel order
        ok, bgr = cap.read()
        cap.release()
        assert ok and np.array_equal(a[0], bgr[:, :, ::-1])
        err = np.abs(a.astype(np.int16) - j).mean(axis=(1, 2, 3))
        assert err.max() < 2, (p, err.max())  # every frame, and RGB order kept
        with h5py.File(jpg, "r") as h:
            assert h.attrs["n_frames"] == n and (h.attrs["height"], h.attrs["width"]) == (240, 320)
            assert h.attrs["quality"] == 90
            assert h.attrs["fps"] == pytest.approx(29.97 if "Basketball" in p else 25, abs=0.01)
            assert bytes(h["jpeg"][0][:2]) == b"\xff\xd8"  # a standard JPEG byte string, of BGR
            assert np.abs(cv2.imdecode(h["jpeg"][0], cv2.IMREAD_COLOR).astype(int) - bgr).mean() < 2
            # our decoder (simplejpeg) gives OpenCV's pixels exactly: both are libjpeg-turbo
            assert np.array_equal(j[[0, n - 1]], [cv2.imdecode(h["jpeg"][k], cv2.IMREAD_COLOR_RGB) for k in (0, n - 1)])
        with h5py.File(raw, "r") as h:
            assert h["video"].dtype == np.uint8 and h["video"].shape == (n, 240, 320, 3)


def test_read_frames_indices(real_root):
    p = real_root.paths[0]
    n = real_root.frames[p]
    idx = [100, 3, 50, 50, 0, n - 1, 3]
    for src in (real_root.source[p], real_root.copy(p, "hdf5"), real_root.copy(p, "jpeg")):
        full = video_io.read_frames(src)
        assert np.array_equal(video_io.read_frames(src, idx), full[idx]), src
        for s in (0, 37, n - 16):  # clips, including ones that need an AVI seek
            assert np.array_equal(video_io.read_frames(src, np.arange(s, s + 16)), full[s:s + 16]), (src, s)
        with pytest.raises(video_io.VideoReadError, match=re.escape(src)):
            video_io.read_frames(src, [n])


def test_clip_read_opens_file_once(real_root, monkeypatch):
    """A training clip is chosen (from the frame count) and read with one open of an HDF5 copy, and
    it is the clip, crop and flip that the same random draws made before."""
    opened, h5_file = [], h5py.File
    monkeypatch.setattr(h5py, "File", lambda name, *a, **k: (opened.append(name), h5_file(name, *a, **k))[1])
    p = real_root.paths[1]
    for src in (real_root.copy(p, "hdf5"), real_root.copy(p, "jpeg")):
        for seed in range(4):
            opened.clear()
            clip = hf.load_clip(src, True, 64, 16, np.random.default_rng(seed))
            assert opened == [src]
            rng = np.random.default_rng(seed)  # the same draws, in the same order, made by hand
            idx = hf.clip_indices(real_root.frames[p], 16, rng)
            aug = hf.draw_augment(rng, 240, 320)
            assert np.array_equal(clip, hf.apply_augment(video_io.read_frames(src, idx), aug, 64))


def test_resolve_order(make_root):
    data = make_root(copy=False, names=["v_Archery_g01_c01"])
    p = data.paths[0]
    exact = video_io.read_frames(data.source[p])
    for fmt in ("jpeg", "hdf5", "avi"):  # compact store first, then raw HDF5, then the AVI
        assert video_io.resolve_video(p) == (fmt, video_io.store_path(p, fmt))
        frames = video_io.read_frames(p)
        if fmt == "jpeg":
            assert not np.array_equal(frames, exact) and np.abs(frames.astype(int) - exact).mean() < 2
        else:
            assert np.array_equal(frames, exact)
        os.remove(video_io.store_path(p, fmt))
    with pytest.raises(video_io.VideoReadError, match=re.escape(p)):
        video_io.resolve_video(p)


# ----------------------------------------------------------------------------- loaders

def test_loader_shapes_default_size(real_root):
    p = real_root.paths[1]
    f = hf.loadFrame((p, True))
    s = hf.loadSequence((p, True))
    assert f.shape == (3, 224, 224) and f.dtype == np.float32
    assert s.shape == (3, 16, 224, 224) and s.dtype == np.float32
    assert hf.loadFrame((p, False), size=40).shape == (3, 40, 40)
    assert hf.loadSequence((p, False), size=48, frames=8).shape == (3, 8, 48, 48)
    # the assignment's calling convention: the global NumPy seed controls the draw
    np.random.seed(3)
    a = hf.loadSequence((p, True), size=32)
    np.random.seed(3)
    assert np.array_equal(a, hf.loadSequence((p, True), size=32))


def test_loader_normalisation(real_root):
    for p in real_root.paths[:2]:
        frames = _resize(video_io.read_frames(p), 64).astype(np.float64)
        n = len(frames)
        for seed in range(3):
            x = _undo(hf.loadFrame((p, False), size=64, rng=np.random.default_rng(seed)),
                      hf.IMAGENET_MEAN, hf.IMAGENET_STD)
            assert np.abs(frames - x).max(axis=(1, 2, 3)).min() < 1e-3
            c = _undo(hf.loadSequence((p, False), size=64, rng=np.random.default_rng(seed)),
                      hf.KINETICS_MEAN, hf.KINETICS_STD)
            err = [np.abs(frames[s:s + 16] - c).max() for s in range(n - 15)]
            assert min(err) < 1e-3


def test_loaders_same_from_all_formats(make_root):
    roots = {fmt: make_root(formats=(fmt,)) for fmt in video_io.FORMATS}
    for i in range(len(roots["avi"].paths)):
        out = {}
        for fmt, data in roots.items():
            assert video_io.resolve_video(data.paths[i])[0] == fmt
            seq = hf.loadSequence((data.paths[i], True), size=64, rng=np.random.default_rng(i))
            frm = hf.loadFrame((data.paths[i], True), size=64, rng=np.random.default_rng(i))
            out[fmt] = (_undo(seq, hf.KINETICS_MEAN, hf.KINETICS_STD),
                        _undo(frm, hf.IMAGENET_MEAN, hf.IMAGENET_STD))
        for k in range(2):
            assert np.abs(out["avi"][k] - out["hdf5"][k]).max() < 1e-3
            assert np.abs(out["avi"][k] - out["jpeg"][k]).mean() < 2


def test_short_video_loops(tmp_path, write_video):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (5, 48, 64, 3), dtype=np.uint8)
    p = write_video(tmp_path, "v_Short_g01_c01", frames)
    assert video_io.count_frames(p) == 5
    clip = _undo(hf.loadSequence((p, False), size=32), hf.KINETICS_MEAN, hf.KINETICS_STD)
    assert clip.shape == (16, 32, 32, 3)
    expected = _resize(frames, 32)[np.arange(16) % 5]
    assert np.abs(clip - expected).max() < 1e-3
    for seed in range(5):  # augmented and single frames work too
        assert hf.loadSequence((p, True), size=32, rng=np.random.default_rng(seed)).shape == (3, 16, 32, 32)
        assert hf.loadFrame((p, True), size=32, rng=np.random.default_rng(seed)).shape == (3, 32, 32)
    s = hf.ClipDataset([p], [0], augment=True, size=32, frames=16)[0]
    assert s["video"].shape == (16, 32, 32, 3)


def _decode_avi(path):
    """All frames of an AVI, RGB uint8 (T, H, W, 3), decoded here with OpenCV from the start."""
    cap, frames = cv2.VideoCapture(str(path)), []
    while (f := cap.read())[0]:
        frames.append(cv2.cvtColor(f[1], cv2.COLOR_BGR2RGB))
    cap.release()
    return np.stack(frames)


def _load_by_hand(frames, rng, size, n, mean, std):
    """The assignment's loader written out in numpy: a clip of n frames started uniformly (1 frame: a
    uniform frame), with probability 1/2 a crop of 70-100% of each side at a uniform position, a flip
    with probability 1/2, a resize to size x size, an integer brightness shift in -15..15 clipped to
    0-255, then ((x / 255) - mean) / std, channels first. The draws in that order from `rng`.
    Returns (float64 (3, n, size, size), (brightness, cropped, flipped))."""
    T, H, W = frames.shape[:3]
    start = int(rng.integers(T - n + 1))
    clip = frames[start:start + n]
    cropped = rng.integers(2) == 0
    if cropped:
        w = int(W * (0.3 * rng.random() + 0.7))
        h = int(H * (0.3 * rng.random() + 0.7))
        y, x = int(rng.integers(H - h + 1)), int(rng.integers(W - w + 1))
        clip = clip[:, y:y + h, x:x + w]
    flipped = rng.integers(2) == 0
    if flipped:
        clip = clip[:, :, ::-1]
    b = int(rng.integers(31)) - 15
    clip = _resize(np.ascontiguousarray(clip), size).astype(np.float64)
    x = (np.clip(clip + b, 0, 255) / 255 - np.array(mean)) / np.array(std)
    return np.moveaxis(x, -1, 0), (b, bool(cropped), bool(flipped))


def test_float_loaders_equal_uint8_fast_path(make_root):
    """loadSequence / loadFrame (float) and the datasets' uint8 path + normalize (the fast path) both
    equal the loader computed by hand from frames decoded here with OpenCV."""
    data = make_root(formats=("avi",))  # lossless: the loaders see exactly the AVIs' pixels
    paths = data.paths
    clips = hf.ClipDataset(paths, range(4), augment=True, size=48, frames=8, seed=5)
    single = hf.ClipDataset(paths, range(4), augment=True, size=48, frames=1, seed=5)
    draws = []
    for index in range(4):
        frames = _decode_avi(data.source[paths[index]])
        for epoch in (0, 3):
            rng = lambda: np.random.default_rng([5, epoch, index])  # noqa: E731
            want, draw = _load_by_hand(frames, rng(), 48, 8, hf.KINETICS_MEAN, hf.KINETICS_STD)
            s = clips[(index, epoch)]  # uint8, brightness already applied (saturating), as the workers hand it over
            fast = hf.normalize(s["video"][None], hf.KINETICS_MEAN, hf.KINETICS_STD)[0]
            slow = hf.loadSequence((paths[index], True), size=48, frames=8, rng=rng())
            np.testing.assert_allclose(slow, want, atol=1e-5)
            assert np.array_equal(fast.numpy(), slow)
            want, draw = _load_by_hand(frames, rng(), 48, 1, hf.IMAGENET_MEAN, hf.IMAGENET_STD)
            s = single[(index, epoch)]
            fast = hf.normalize(s["video"][None], hf.IMAGENET_MEAN, hf.IMAGENET_STD)[0]
            slow = hf.loadFrame((paths[index], True), size=48, rng=rng())
            np.testing.assert_allclose(slow, want[:, 0], atol=1e-5)
            assert np.array_equal(fast.numpy(), slow)
            draws.append(draw)
    b, cropped, flipped = zip(*draws)
    assert any(b) and set(cropped) == set(flipped) == {True, False}  # every part of the draw was compared


# ----------------------------------------------------------------------------- augmentation

def test_draw_augment_distribution():
    rng = np.random.default_rng(0)
    H, W, N = 240, 320, 4000
    draws = [hf.draw_augment(rng, H, W) for _ in range(N)]
    crops = np.array([d.crop for d in draws if d.crop is not None])
    assert 0.45 < len(crops) / N < 0.55
    assert 0.45 < np.mean([d.flip for d in draws]) < 0.55
    y, x, h, w = crops.T
    assert (w >= 0.7 * W - 1).all() and (w <= W).all() and (h >= 0.7 * H - 1).all() and (h <= H).all()
    assert w.min() < 0.72 * W and w.max() > 0.98 * W and h.min() < 0.72 * H and h.max() > 0.98 * H
    assert abs(np.corrcoef(w / W, h / H)[0, 1]) < 0.1  # width and height drawn independently
    assert (x >= 0).all() and (y >= 0).all() and (x + w <= W).all() and (y + h <= H).all()
    assert (x == 0).any() and (x + w == W).any() and (y == 0).any() and (y + h == H).any()
    b = np.array([d.brightness for d in draws])
    assert all(isinstance(d.brightness, int) for d in draws)
    assert set(b.tolist()) == set(range(-15, 16))
    assert abs(b.mean()) < 1


def test_apply_augment_crop_and_flip(real_root):
    f = video_io.read_frames(real_root.paths[0], [10])
    sq = np.ascontiguousarray(f[:, :200, :200])
    aug = hf.apply_augment
    assert np.array_equal(aug(sq, hf.Augment(), 200), sq)
    assert np.array_equal(aug(sq, hf.Augment(flip=True), 200), sq[:, :, ::-1])
    assert np.array_equal(aug(sq, hf.Augment(crop=(30, 50, 120, 120)), 120), sq[:, 30:150, 50:170])
    assert np.array_equal(aug(sq, hf.Augment(crop=(30, 50, 120, 120), flip=True), 120),
                          sq[:, 30:150, 50:170][:, :, ::-1])
    flipped, plain = aug(f, hf.Augment(flip=True), 64), aug(f, hf.Augment(), 64)
    assert np.abs(flipped.astype(int) - plain[:, :, ::-1]).max() <= 1
    assert np.abs(flipped.astype(int) - plain).mean() > 5  # and it did change the frame
    # a non-square crop is stretched to size x size (aspect ratio not kept)
    crop = aug(f, hf.Augment(crop=(0, 0, 240, 224)), 64)[0]
    assert np.array_equal(crop, cv2.resize(f[0, :, :224], (64, 64), interpolation=cv2.INTER_LINEAR))


def test_brightness_saturates_in_apply_augment():
    """The brightness shift is added to the uint8 pixels and saturates at 0 and 255 (values by hand)."""
    row = np.array([0, 10, 128, 250, 255], dtype=np.uint8)
    frames = np.repeat(np.repeat(row[None, None, :, None], 5, axis=1), 3, axis=3)  # (1, 5, 5, 3)
    up = hf.apply_augment(frames, hf.Augment(brightness=15), 5)
    down = hf.apply_augment(frames, hf.Augment(brightness=-15), 5)
    assert up.dtype == np.uint8 and up.shape == (1, 5, 5, 3)
    assert up[0, 2, :, 0].tolist() == [15, 25, 143, 255, 255]
    assert down[0, 2, :, 0].tolist() == [0, 0, 113, 235, 240]


def test_normalize_by_hand():
    clip = torch.full((2, 4, 3, 3, 3), 100, dtype=torch.uint8)
    clip[1] = 200
    out = hf.normalize(clip, hf.KINETICS_MEAN, hf.KINETICS_STD)
    assert out.shape == (2, 3, 4, 3, 3) and out.dtype == torch.float32
    want = (np.array([100, 200])[:, None] / 255 - np.array(hf.KINETICS_MEAN)) / np.array(hf.KINETICS_STD)
    np.testing.assert_allclose(out[:, :, 0, 0, 0].numpy(), want, rtol=1e-6)


# ----------------------------------------------------------------------------- corrupt videos

@pytest.fixture
def bad_root(make_root, tmp_path):
    """A private root with the 4 real clips (compact store) and class Bad of broken videos.
    Returns (data, {kind: (canonical path, real file)})."""
    data = make_root(formats=("jpeg",))
    bad = {}

    def put(kind, fmt, write):
        path = os.path.join(str(data.root), "UCF-101", "Bad", f"v_Bad_g01_c{len(bad) + 1:02d}.avi")
        real = video_io.store_path(path, fmt)
        os.makedirs(os.path.dirname(real), exist_ok=True)
        if write is not None:
            write(real)
        bad[kind] = (path, real)

    archery = [p for p in data.paths if "Archery" in p][0]
    avi_bytes = open(data.source[archery], "rb").read()
    put("zero", "avi", lambda r: open(r, "wb").close())
    put("truncated", "avi", lambda r: open(r, "wb").write(avi_bytes[:len(avi_bytes) // 2]))
    put("garbage", "avi", lambda r: open(r, "wb").write(np.random.default_rng(0).bytes(50_000)))
    put("garbage_hdf5", "hdf5", lambda r: open(r, "wb").write(np.random.default_rng(1).bytes(50_000)))

    def h5(name, arr):
        def write(r):
            with h5py.File(r, "w") as h:
                h.create_dataset(name, data=arr)
        return write

    put("no_video", "hdf5", h5("frames", np.zeros((4, 8, 8, 3), np.uint8)))
    put("float", "hdf5", h5("video", np.zeros((4, 8, 8, 3), np.float32)))
    put("missing", "avi", None)
    return data, bad


def test_corrupt_videos_raise(bad_root):
    _, bad = bad_root
    for kind, (path, real) in bad.items():
        with pytest.raises(video_io.VideoReadError) as e:
            video_io.read_frames(path)
        assert real in str(e.value) and e.value.path in (path, real), kind
        # one verdict whatever is read: a clip, a single frame or the count (a truncated AVI too, though
        # its first half would decode)
        with pytest.raises(video_io.VideoReadError, match=re.escape(real)):
            hf.loadSequence((path, True), size=32, frames=4)
        with pytest.raises(video_io.VideoReadError, match=re.escape(real)):
            hf.loadFrame((path, False), size=32)
        if kind != "float":  # a float array still has a length; reading it is what fails
            with pytest.raises(video_io.VideoReadError, match=re.escape(real)):
                video_io.count_frames(path)
    path, real = bad["truncated"]
    with pytest.raises(video_io.VideoReadError, match=re.escape(real) + ".*truncated"):
        video_io.read_frames(path, [0])  # its first frame is in the half that is there


@pytest.mark.parametrize("workers", [0, 2])
def test_bad_video_skips_one_sample(bad_root, workers):
    data, bad = bad_root
    g = data.paths
    kinds = ["zero", "garbage", "no_video", "float", "missing", "truncated"]
    b = [bad[k][0] for k in kinds]
    paths = [g[0], b[0], g[1], b[1], b[2], g[2], b[3], b[4], g[3], b[5]]
    ds = hf.ClipDataset(paths, list(range(10)), augment=True, size=32, frames=4)
    loader = hf.make_loader(ds, batch_size=3, shuffle=False, workers=workers, seed=0)
    loader.batch_sampler.set_epoch(0)
    batches = list(loader)
    assert [batch["index"].tolist() for batch in batches] == [[0, 2], [5], [8], []]
    assert [batch["label"].tolist() for batch in batches] == [[0, 2], [5], [8], []]
    assert [tuple(batch["video"].shape) for batch in batches] == [(2, 4, 32, 32, 3), (1, 4, 32, 32, 3),
                                                                  (1, 4, 32, 32, 3), (0,)]
    failed = [f for batch in batches for f in batch["failed"]]
    assert [f[0] for f in failed] == b
    for (_, err), k in zip(failed, kinds):
        assert bad[k][1] in err


# ----------------------------------------------------------------------------- reproducibility

def _run(paths, seed, workers, epochs=(0, 1)):
    # as the training scripts do: the dataset's seed draws the augmentation, the loader's the order
    ds = hf.ClipDataset(paths, list(range(len(paths))), augment=True, size=32, frames=4, seed=seed)
    loader = hf.make_loader(ds, batch_size=2, shuffle=True, workers=workers, seed=seed)
    out = []
    for epoch in epochs:
        loader.batch_sampler.set_epoch(epoch)
        out.append([(b["index"], b["video"]) for b in loader])
    return out


def _same(a, b):
    return all(torch.equal(x, y) for ba, bb in zip(a, b) for sa, sb in zip(ba, bb) for x, y in zip(sa, sb))


def _by_index(epoch):
    return {int(i): v[k] for idx, v in epoch for k, i in enumerate(idx)}


def test_loader_reproducible(real_root):
    paths = real_root.paths
    a, b, c = _run(paths, 0, 0), _run(paths, 0, 2), _run(paths, 1, 0)
    assert len(a[0]) == 2 and sorted(torch.cat([x[0] for x in a[0]]).tolist()) == [0, 1, 2, 3]
    assert _same(a, b)  # same seed, 0 vs 2 workers, both epochs
    e0, e1, other = _by_index(a[0]), _by_index(a[1]), _by_index(c[0])
    assert sum(not torch.equal(e0[i], e1[i]) for i in range(4)) >= 3  # new epoch, new augmentation
    assert sum(not torch.equal(e0[i], other[i]) for i in range(4)) >= 3  # new seed, new augmentation


# ----------------------------------------------------------------------------- prepare_data

def _prepare(root, capsys, to="jpeg"):
    prepare_data.main(prepare_data.parse_args(["--data-root", str(root), "--to", to, "--workers", "1"]))
    return capsys.readouterr().out


def test_prepare_resumable(make_root, capsys):
    data = make_root(formats=("avi",), names=["v_Archery_g01_c01", "v_Shotput_g05_c02"])
    out = _prepare(data.root, capsys)
    assert "0 already converted, 2 to convert" in out and "converted 2 videos" in out
    stores = [video_io.store_path(p, "jpeg") for p in data.paths]
    assert all(video_io.is_complete(s, p) for s, p in zip(stores, data.paths))
    mtimes = [os.stat(s).st_mtime_ns for s in stores]
    out = _prepare(data.root, capsys)
    assert "2 already converted, 0 to convert" in out and "converted 0 videos" in out
    assert [os.stat(s).st_mtime_ns for s in stores] == mtimes

    # an interrupted run: a complete-looking temporary file and an unfinished file at the final name
    os.replace(stores[0], stores[0] + ".tmp999")
    with h5py.File(stores[1], "r+") as h:
        h.attrs["n_frames"] = h.attrs["n_frames"] + 7
    out = _prepare(data.root, capsys)
    assert "0 already converted, 2 to convert" in out and "converted 2 videos" in out
    for s, p in zip(stores, data.paths):
        assert video_io.is_complete(s, p) and video_io.count_frames(s) == data.frames[p]
    assert video_io.resolve_video(data.paths[0]) == ("jpeg", stores[0])


def test_prepare_reports_corrupt_source(make_root, capsys):
    data = make_root(formats=("avi",), names=["v_Shotput_g05_c02"])
    bad = os.path.join(str(data.root), "UCF-101", "Bad", "v_Bad_g01_c01.avi")
    os.makedirs(os.path.dirname(bad))
    open(bad, "wb").write(np.random.default_rng(0).bytes(20_000))
    out = _prepare(data.root, capsys)  # no SystemExit: exit status 0
    assert "converted 1 videos" in out and "1 failed" in out and f"FAILED {bad}" in out
    assert video_io.is_complete(video_io.store_path(data.paths[0], "jpeg"), data.paths[0])
    left = [f for _, _, fs in os.walk(os.path.join(str(data.root), "UCF-101-jpeg")) for f in fs]
    assert left == ["v_Shotput_g05_c02.hdf5"]  # nothing for the bad one, no temporary file
    os.remove(video_io.store_path(data.paths[0], "jpeg"))
    os.remove(data.paths[0])
    with pytest.raises(SystemExit, match="no video could be converted"):
        _prepare(data.root, capsys)


def test_compact_store_size_ratio(real_root):
    raw = sum(os.path.getsize(real_root.copy(p, "hdf5")) for p in real_root.paths)
    jpg = sum(os.path.getsize(real_root.copy(p, "jpeg")) for p in real_root.paths)
    assert raw / jpg >= 8, raw / jpg


# ----------------------------------------------------------------------------- a store copy that is stale or unreadable

def test_stale_store_copy_gives_way_to_the_replaced_avi(make_root, capsys):
    """An AVI replaced after the compact store was made (another size and modification time): every
    reader gives the new AVI's frames (decoded here with OpenCV), with one warning naming the store
    file and its source; prepare_data converts it again, after which the store is read, silently."""
    data = make_root(formats=("avi", "jpeg"), names=["v_Archery_g01_c01", "v_Shotput_g05_c02"])
    archery, shotput = data.paths
    store = video_io.store_path(archery, "jpeg")
    old = video_io.read_frames(archery)
    assert video_io.resolve_video(archery) == ("jpeg", store) and len(old) == 131
    os.remove(archery)  # a symlink: the shared clip stays as it is
    shutil.copyfile(data.source[shotput], archery)  # another clip under Archery's name: 130 frames
    new = _decode_avi(archery)
    capsys.readouterr()
    assert np.array_equal(video_io.read_frames(archery), new)
    assert np.array_equal(video_io.read_frames(archery, [0, 129, 7]), new[[0, 129, 7]])
    assert video_io.count_frames(archery) == 130
    rng = np.random.default_rng(0)  # a training clip: the same draws, made by hand on the new frames
    clip = hf.load_clip(archery, True, 32, 16, np.random.default_rng(0))
    idx = hf.clip_indices(130, 16, rng)
    assert np.array_equal(clip, hf.apply_augment(new[idx], hf.draw_augment(rng, 240, 320), 32))
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1, err  # once per file and process, however often it is read
    assert f"{store} is older than its source {archery}" in warnings[0] and "prepare_data" in warnings[0]
    assert not video_io.is_complete(store, archery)
    assert video_io.is_complete(video_io.store_path(shotput, "jpeg"), shotput)

    out = _prepare(data.root, capsys)
    assert "1 already converted, 1 to convert" in out and "1 of them again" in out
    assert video_io.is_complete(store, archery)
    with h5py.File(store, "r") as h:
        assert h.attrs["n_frames"] == 130 and h.attrs["source_size"] == os.path.getsize(archery)
        assert h.attrs["source_format"] == "avi" and h.attrs["source_frames"] == 130
    frames = video_io.read_frames(archery)
    assert frames.shape == new.shape and np.abs(frames.astype(int) - new).mean() < 2  # the store's JPEGs again
    assert not np.array_equal(frames, new) and "warning" not in capsys.readouterr().err


@pytest.mark.parametrize("other", ["avi", "hdf5"])
def test_unreadable_store_copy_gives_way_to_another_copy(make_root, capsys, other):
    """Garbage bytes in a compact-store file next to an intact AVI (or raw copy): read_frames and
    count_frames read the other copy, and the warning names both files."""
    data = make_root(formats=("avi", other) if other == "hdf5" else ("avi",), names=["v_Basketball_g01_c01"])
    path = data.paths[0]
    store = video_io.store_path(path, "jpeg")
    os.makedirs(os.path.dirname(store))
    with open(store, "wb") as f:
        f.write(np.random.default_rng(0).bytes(20_000))
    expected = _decode_avi(data.source[path])  # the raw copy holds the AVI's pixels exactly
    capsys.readouterr()
    assert np.array_equal(video_io.read_frames(path), expected)
    assert video_io.count_frames(path) == len(expected) == 141
    warning = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning: ")]
    assert len(warning) == 1 and store in warning[0] and video_io.store_path(path, other) in warning[0], warning
    assert "cannot read as HDF5" in warning[0]
    # without another copy the unreadable file is the error, named
    os.remove(video_io.store_path(path, other))
    if other == "hdf5":
        os.remove(path)
    with pytest.raises(video_io.VideoReadError, match=re.escape(store)):
        video_io.read_frames(path)
