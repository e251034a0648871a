"""Write a toy UCF-101 (real folder layout and split-file format) that separates appearance from motion.

Usage: python -m tools.make_toy_ucf101 --out data/toy [--classes 12 --groups 7 --clips 3 --frames 40 --seed 0]
       python -m tools.make_toy_ucf101 --like-ucf101 --out data/rehearsal [--lists DIR] [--max-per-class N]

--like-ucf101 writes one video for every name of the official split lists (all 101 classes, 13,320
videos, XviD-like MPEG-4 in AVI at 80x60 by default, lengths spread like UCF-101's, a few percent of
real files' quirks): a full-scale rehearsal of the assignment on a laptop.

Two kinds of classes:
- appearance classes differ by shape, colour, texture and background; the object drifts and spins at
  random, so motion carries no class information;
- motion pairs (e.g. BallRollLeft / BallRollRight) share object, colours and background, and every
  per-frame quantity (position, angle, size) is uniformly distributed for both members, so one frame
  says which pair but not which member: a single-frame 2D CNN should sit at ~50% within a pair,
  a 3D CNN can separate them.
"""
import argparse
import itertools
import json
import multiprocessing
import os
import re
import struct
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

# (name, shape, foreground BGR, texture, background BGR, background pattern, motion, sign).
# Fixed order with pairs early, so a small --classes still holds motion pairs, and appending classes
# never changes earlier ones. An odd --classes may cut a pair: that class then has no partner.
CLASSES = [
    ("BallRollLeft", "ball", (235, 235, 235), "solid", (60, 130, 60), "stripes", "roll", -1),
    ("BallRollRight", "ball", (235, 235, 235), "solid", (60, 130, 60), "stripes", "roll", 1),
    ("RedCircle", "circle", (40, 40, 220), "solid", (128, 128, 128), "flat", "random", 0),
    ("StripedSquare", "square", (230, 200, 40), "striped", (90, 40, 20), "flat", "random", 0),
    ("BarSpinClockwise", "bar", (40, 220, 240), "solid", (50, 50, 50), "grad", "spin", 1),
    ("BarSpinCounterClockwise", "bar", (40, 220, 240), "solid", (50, 50, 50), "grad", "spin", -1),
    ("GreenTriangle", "triangle", (60, 200, 60), "solid", (210, 200, 230), "grad", "random", 0),
    ("CheckeredDiamond", "diamond", (250, 250, 250), "checkered", (120, 60, 140), "flat", "random", 0),
    ("BoxRise", "box", (40, 90, 160), "solid", (230, 190, 140), "grad", "rise", -1),
    ("BoxFall", "box", (40, 90, 160), "solid", (230, 190, 140), "grad", "rise", 1),
    ("DiscApproach", "disc", (40, 40, 200), "solid", (170, 210, 230), "flat", "zoom", 1),
    ("DiscRecede", "disc", (40, 40, 200), "solid", (170, 210, 230), "flat", "zoom", -1),
    ("BlueRing", "ring", (220, 80, 30), "solid", (30, 30, 30), "stripes", "random", 0),
    ("OrangeCross", "cross", (30, 140, 250), "solid", (110, 150, 110), "flat", "random", 0),
]
SPEC, INDEX = {c[0]: c for c in CLASSES}, {c[0]: k for k, c in enumerate(CLASSES)}
SHORT_FRACTION = 0.05  # clips of 8-15 frames, shorter than a 16-frame 3D-CNN input: loaders must pad
# Motion-pair objects are larger and faster than the appearance ones: (size, speed, spin, zoom) ranges.
MOTION_SIZE, MOTION_SPEED, SPIN_RATE, ZOOM_RATE = (0.1, 0.15), (0.05, 0.08), (0.12, 0.25), (0.025, 0.045)
# The assignment's training flips clips horizontally half the time, which turns a left roll into a right
# roll and a clockwise spin into a counter-clockwise one: no model trained so could tell those pairs apart.
# So they also drift vertically at DRIFT x their speed (first member down, its time-reverse up), a motion
# the flip keeps.
DRIFT = 0.6
N_OBJECTS = 3
# --like-ucf101's zoom (the toy keeps the one above): faster, larger, and each object on its own phase of
# the sawtooth, so that the jumps back from one end of the sizes to the other do not come all at once
# (size: log-size range as a fraction of the frame's short side; rate: cycles a frame). Measured on the
# 8 zoom classes alone (100 videos a class, the 3D model at 16x16): clip accuracy passed 90% after 6
# epochs, against 17 with the toy's zoom, with which a reduced rehearsal's 3D model (40 videos a class,
# 12 epochs) stayed at chance on all four zoom pairs (50-55% within the pair).
LIKE_ZOOM = dict(phase="object", rate=(0.05, 0.08), size=(0.08, 0.35))
META_FILE = "toy_classes.json"  # what was generated: classes, motion pairs, frame counts, quirks
PROGRESS_MIN_VIDEOS = 500  # a progress bar for sets that take a while to write
SPLIT_FILES = ["classInd.txt"] + [f"{k}list0{s}.txt" for k in ("train", "test") for s in (1, 2, 3)]


def select_classes(n):
    """The first n classes of the table, sorted alphabetically like UCF-101's classInd (label = index + 1)."""
    if not 2 <= n <= len(CLASSES):
        raise ValueError(f"--classes must be in [2, {len(CLASSES)}], got {n}")
    return sorted(c[0] for c in CLASSES[:n])


def motion_pairs(class_list):
    """(A, B) for every motion pair with both members in class_list, in table order."""
    names = set(str(c) for c in class_list)
    return [(a[0], b[0]) for a, b in zip(CLASSES, CLASSES[1:])
            if a[6] == b[6] != "random" and a[1] == b[1] and {a[0], b[0]} <= names]


def held_out_groups(split, groups):
    """Groups held out for testing in split 1-3: the real 1-7/8-14/15-21 of 25, scaled to `groups`."""
    fold = max(1, round(groups * 7 / 25))
    return set(range(fold * (split - 1) + 1, fold * split + 1))


def plan_videos(class_list, groups=7, clips=3, frames=40, seed=0):
    """One dict per video (cls, label, group, clip, name, n_frames, key); cheap, renders nothing.
    Each video owns the seed key (seed, class-table index, group, clip), so changing --classes or
    --groups leaves the other videos untouched, and --frames changes lengths only."""
    videos = []
    for (label, cls), g, c in itertools.product(enumerate(class_list, 1), range(1, groups + 1), range(1, clips + 1)):
        key = (seed, INDEX[cls], g, c)
        rng = np.random.default_rng(np.random.SeedSequence(key + (0,)))  # lengths: their own stream
        lo, hi = (8, 16) if rng.random() < SHORT_FRACTION else (round(0.6 * frames), round(1.4 * frames) + 1)
        videos.append(dict(cls=cls, label=label, group=g, clip=c, name=f"v_{cls}_g{g:02d}_c{c:02d}",
                           n_frames=max(2, int(rng.integers(lo, hi))), key=key))
    return videos


def _pt(x, y):
    return int(round(x * 16)), int(round(y * 16))  # cv2 drawing with shift=4: sub-pixel positions


def _poly(x, y, r, a, n, aspect=1.0, phase=0.0):
    """n vertices on an ellipse (radii r, r * aspect) starting at `phase`, rotated by a; for fillPoly."""
    t = phase + np.arange(n) * 2 * np.pi / n
    u, v = r * np.cos(t), r * aspect * np.sin(t)
    pts = np.stack([x + u * np.cos(a) - v * np.sin(a), y + u * np.sin(a) + v * np.cos(a)], 1)
    return np.round(pts * 16).astype(np.int32)


def draw(img, shape, x, y, r, a, fg, tex):
    """Draw one object of size r, angle a in place on img (H, W, 3) BGR uint8; `tex` textures polygons."""
    aa, dark, q = cv2.LINE_AA, tuple(int(v * 0.3) for v in fg), np.pi / 4
    if shape in ("circle", "ball", "disc", "ring"):
        cv2.circle(img, _pt(x, y), int(r * 16), fg, max(1, int(r / 3)) if shape == "ring" else -1, aa, 4)
    if shape == "ball":  # a line through the centre shows the roll
        dx, dy = r * np.cos(a), r * np.sin(a)
        cv2.line(img, _pt(x - dx, y - dy), _pt(x + dx, y + dy), dark, max(1, int(r / 4)), aa, 4)
    elif shape == "disc":  # target rings make growth/shrinkage visible inside the object too
        cv2.circle(img, _pt(x, y), int(r * 0.66 * 16), (240, 240, 240), -1, aa, 4)
        cv2.circle(img, _pt(x, y), int(r * 0.33 * 16), fg, -1, aa, 4)
    elif shape in ("bar", "cross"):  # rectangles 2.6r x 0.5r
        for k in range(1 if shape == "bar" else 2):
            cv2.fillPoly(img, [_poly(x, y, 1.84 * r, a + k * 2 * q, 4, 0.19, q)], fg, aa, 4)
        if shape == "bar":  # a marked end makes the orientation defined over the full 360 degrees
            end = _pt(x + 1.1 * r * np.cos(a), y + 1.1 * r * np.sin(a))
            cv2.circle(img, end, int(0.3 * r * 16), (30, 30, 230), -1, aa, 4)
    elif shape == "box":  # axis-aligned crate with a border and diagonals: only the position moves
        box = _poly(x, y, 1.2 * r, 0.0, 4, 1.0, q)
        cv2.fillPoly(img, [box], fg, aa, 4)
        cv2.polylines(img, [box, box[[0, 2]], box[[1, 3]]], True, dark, max(1, int(r / 6)), aa, 4)
    elif shape in ("square", "triangle", "diamond"):  # polygons, possibly textured through a mask
        n, aspect, phase = {"square": (4, 1.0, q), "triangle": (3, 1.0, 0.0), "diamond": (4, 0.55, 0.0)}[shape]
        pts = _poly(x, y, 1.2 * r, a, n, aspect, phase)
        if tex is None:
            cv2.fillPoly(img, [pts], fg, aa, 4)
        else:
            mask = cv2.fillPoly(np.zeros(img.shape[:2], np.uint8), [pts], 255, aa, 4)
            np.copyto(img, tex, where=mask[..., None] > 127)


def _wrap(u, step, t, n, margin):
    """Positions at frames t moving `step` px per frame around a side of n px (exit one end, enter the
    other, `margin` px off screen); the start u in [0, 1) is uniform, so every frame is uniform too."""
    return np.mod(u * (n + 2 * margin) + step * t, n + 2 * margin) - margin


def _reflect(u, lo, hi):  # bounce between walls: triangle wave
    m = np.mod(u - lo, 2 * (hi - lo))
    return lo + np.minimum(m, 2 * (hi - lo) - m)


def render_clip(cls, key, n_frames, width=320, height=240, zoom=None):
    """Render the clip with seed key `key` of class `cls` (a name of CLASSES, or a spec tuple like
    theirs) -> uint8 (T, H, W, 3) BGR. `zoom`: the zoom pairs' settings as LIKE_ZOOM (default: the
    toy's, one phase for all objects at ZOOM_RATE)."""
    _, shape, fg, texture, bg, pattern, motion, sign = SPEC[cls] if isinstance(cls, str) else cls
    rng = np.random.default_rng(np.random.SeedSequence(tuple(key) + (1,)))
    W, H, S, t = width, height, min(width, height), np.arange(n_frames)
    fg = tuple(int(v) for v in np.clip(np.array(fg) + rng.integers(-25, 26, 3), 0, 255))  # colour jitter
    bgc = np.clip(np.array(bg) + rng.integers(-25, 26, 3), 0, 255).astype(np.float32)
    yy, xx = np.arange(H, dtype=np.float32)[:, None], np.arange(W, dtype=np.float32)[None]  # broadcast
    shade = {"flat": np.ones_like(yy), "grad": 1.0 - 0.4 * yy / H,
             "stripes": np.where((yy // max(2, S // 8)) % 2 > 0, 0.8, 1.0)}[pattern]
    background = np.broadcast_to(np.clip(bgc * shade[..., None], 0, 255).astype(np.uint8), (H, W, 3))
    tex = None
    if texture != "solid":  # texture fixed in frame coordinates: cheap, and only its look matters
        p, ph = max(2.0, S / rng.uniform(10, 16)), rng.uniform(0, 100)
        on = ((xx + yy + ph) // p) % 2 if texture == "striped" else ((xx + ph) // p + (yy + ph) // p) % 2
        tex = np.where(on[..., None] > 0, np.array(fg, np.float32), np.array(fg, np.float32) * 0.35).astype(np.uint8)
    paired = motion != "random"
    k = N_OBJECTS if paired else 1  # objects, all moving alike: k times the motion to learn from
    r = np.full(n_frames, rng.uniform(*(MOTION_SIZE if paired else (0.09, 0.16))) * S)
    v = rng.uniform(*(MOTION_SPEED if paired else (0.012, 0.03))) * S  # speed, pixels per frame
    a = rng.uniform(0, 2 * np.pi) + rng.choice([-1, 1]) * rng.uniform(0.02, 0.15) * t  # random spin
    u = lambda: rng.uniform(size=(k, 1))  # one uniform start per object, broadcast over frames
    x, y = (0.15 + 0.7 * u()) * W, (0.15 + 0.7 * u()) * H
    if motion == "random":  # bounce in a random direction: direction carries no class information
        d = rng.uniform(0, 2 * np.pi)
        x = _reflect(rng.uniform(r[0], W - r[0]) + v * np.cos(d) * t, r[0], W - r[0])
        y = _reflect(rng.uniform(r[0], H - r[0]) + v * np.sin(d) * t, r[0], H - r[0])
    elif motion in ("roll", "rise"):
        # Wrap around the frame (exit one side, enter the other) with a uniform start: the position in
        # any frame is uniform over the path for both directions.
        p = _wrap(u(), sign * v, t, W if motion == "roll" else H, r[0])
        if motion == "roll":  # left and down, or right and up (DRIFT)
            x, y, a = p, _wrap(u(), -sign * DRIFT * v, t, H, r[0]), a[0] + sign * v * t / r[0]
        else:
            x, y = r[0] + (W - 2 * r[0]) * u(), p
    elif motion == "spin":  # uniform start angle: any single angle is equally likely for both senses
        a = rng.uniform(0, 2 * np.pi) + sign * rng.uniform(*SPIN_RATE) * t
        y = _wrap(u(), sign * DRIFT * v, t, H, 1.4 * r[0])  # clockwise sinks (DRIFT)
    elif motion == "zoom":  # sawtooth in log-size with a uniform phase: size uniform in log for both
        if zoom is None:  # the toy's: one phase for all objects
            lo, hi = np.log(0.05 * S), np.log(0.3 * S)
            r = np.exp(lo + (hi - lo) * np.mod(rng.uniform(0, 1) + sign * rng.uniform(*ZOOM_RATE) * t, 1.0))
        else:
            lo, hi = np.log(zoom["size"][0] * S), np.log(zoom["size"][1] * S)
            phase = u() if zoom["phase"] == "object" else rng.uniform(0, 1)
            r = np.exp(lo + (hi - lo) * np.mod(phase + sign * rng.uniform(*zoom["rate"]) * t, 1.0))
    x, y, r = np.broadcast_to(x, (k, n_frames)), np.broadcast_to(y, (k, n_frames)), np.broadcast_to(r, (k, n_frames))
    noise = rng.uniform(0.5, 3) * rng.standard_normal((2, H, W, 3), np.float32)  # 2 alternating fields: cheap
    pos, neg = np.clip(noise, 0, 255).astype(np.uint8), np.clip(-noise, 0, 255).astype(np.uint8)
    frames = np.repeat(background[None], n_frames, 0)
    for i, f in enumerate(frames):
        for j in range(k):
            draw(f, shape, x[j, i], y[j, i], r[j, i], a[i], fg, tex)
        cv2.add(f, pos[i % 2], dst=f)
        cv2.subtract(f, neg[i % 2], dst=f)
    return frames


def write_video(job):
    """Render and write one video, verify it decodes with the right frame count; returns its bytes.

    job: (path, cls, key, n_frames, width, height) for the toy's MJPG AVIs, optionally followed by
    (fps, quirk, zoom) for --like-ucf101's MPEG-4 videos, quirk one of QUIRKS or "" (see `_write_mpeg4`),
    zoom as LIKE_ZOOM (see `render_clip`).
    """
    path, cls, key, n, width, height = job[:6]
    fps, quirk, zoom = job[6:] if len(job) > 6 else (25.0, None, None)
    frames = render_clip(cls, key, n, width, height, zoom)
    if quirk is None:
        _write(path, frames, "MJPG", fps)
    else:
        _write_mpeg4(path, frames, fps, quirk)
    # Decode back: a writer can fail silently (missing codec). The toy's MJPG header count is exact;
    # the MPEG-4 quirks make headers lie, so those are counted by decoding (cheap at their size).
    n_read = _decoded_frames(path) if quirk is not None else _header_frames(path)
    if n_read != n:
        raise RuntimeError(f"{path}: wrote {n} frames but cv2.VideoCapture reads {n_read}")
    return os.path.getsize(path)


def _header_frames(path):
    cap = cv2.VideoCapture(path)
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.read()[0] else 0
    cap.release()
    return n


def _write(path, frames, fourcc, fps):
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*fourcc), fps, frames.shape[2:0:-1])
    if not writer.isOpened():
        raise RuntimeError(f"{path}: cv2.VideoWriter could not open a {fourcc} writer")
    for f in frames:
        writer.write(f)
    writer.release()


def _decoded_frames(path):
    cap = cv2.VideoCapture(path)
    n = 0
    while cap.grab():
        n += 1
    cap.release()
    return n


def _write_mpeg4(path, frames, fps, quirk):
    """MPEG-4 Part 2 with an XVID tag in AVI, as UCF-101's files (FFmpeg's encoder: inter frames,
    a keyframe every 12), with one of the quirks of real files:
    "gray" (grayscale content), "raw" (a raw MPEG-4 elementary stream under the .avi name),
    "no_count" / "bad_count" (AVI headers that give 0 or an absurd frame count)."""
    if quirk == "gray":
        frames = np.repeat(cv2.cvtColor(frames.reshape(-1, frames.shape[2], 3), cv2.COLOR_BGR2GRAY)
                           .reshape(frames.shape[:3])[..., None], 3, axis=3)
    if quirk == "raw":  # FFmpeg picks the container from the extension: .m4v is the bare stream
        _write(path[:-4] + ".m4v", frames, "mp4v", fps)
        os.replace(path[:-4] + ".m4v", path)
        return
    _write(path, frames, "XVID", fps)
    _patch_avi(path, AVI_TAG, {"no_count": 0, "bad_count": BAD_FRAME_COUNT}.get(quirk))


def _patch_avi(path, tag, count=None):
    """Set an AVI's video codec tag (strh fccHandler and the BITMAPINFOHEADER's biCompression: FFmpeg
    writes FMP4 whatever was asked, UCF-101's files say XVID) and, when given, overwrite its frame counts
    (avih dwTotalFrames and strh dwLength: what OpenCV reports as CAP_PROP_FRAME_COUNT)."""
    data = bytearray(Path(path).read_bytes())
    avih, strh, strf = data.find(b"avih"), data.find(b"strh"), data.find(b"strf")
    if min(avih, strh, strf) < 0 or data[strh + 8:strh + 12] != b"vids":
        raise RuntimeError(f"{path}: no AVI main or video stream header to patch")
    data[strh + 12:strh + 16] = tag  # after the chunk id, its size and fccType
    data[strf + 8 + 16:strf + 8 + 20] = tag  # biSize, biWidth, biHeight, biPlanes + biBitCount, then this
    if count is not None:
        struct.pack_into("<I", data, avih + 8 + 16, count)  # the 5th field of the main header
        struct.pack_into("<I", data, strh + 8 + 32, count)  # fccType, fccHandler, flags, ..., dwLength
    Path(path).write_bytes(data)


def split_lines(videos, groups):
    """{filename: lines} for the six lists, in the official format and order (class, group, clip)."""
    out, path = {}, [(f"{v['cls']}/{v['name']}.avi", v) for v in videos]
    for s in (1, 2, 3):
        held = held_out_groups(s, groups)
        out[f"trainlist0{s}.txt"] = [f"{p} {v['label']}" for p, v in path if v["group"] not in held]
        out[f"testlist0{s}.txt"] = [p for p, v in path if v["group"] in held]
    return out


def class_info(class_list):
    """Per class: name, 1-based label, kind ("appearance" | "motion"), motion (e.g. "roll-1"), pair partner."""
    partner = {m: p for a, b in motion_pairs(class_list) for m, p in ((a, b), (b, a))}
    return [dict(name=c, label=i, kind="appearance" if SPEC[c][6] == "random" else "motion",
                 motion=SPEC[c][6] if SPEC[c][6] == "random" else f"{SPEC[c][6]}{SPEC[c][7]:+d}",
                 pair=partner.get(c)) for i, c in enumerate(class_list, 1)]


def make_toy(out="data/toy", seed=0, classes=12, groups=7, clips=3, frames=40, width=320, height=240,
             workers=None, force=False):
    """Generate (or skip if already complete with the same settings) the toy set; returns a summary dict."""
    t0, out = time.time(), Path(out)
    if groups < 3 or clips < 1 or frames < 2:
        raise ValueError(f"need groups >= 3 (three splits), clips >= 1, frames >= 2; got {groups}, {clips}, {frames}")
    config = dict(seed=seed, classes=classes, groups=groups, clips=clips, frames=frames, width=width, height=height)
    done = _check_existing(out, config, force)
    if done:
        return done
    class_list = select_classes(classes)
    videos = plan_videos(class_list, groups, clips, frames, seed)
    for cls in class_list:
        (out / "UCF-101" / cls).mkdir(parents=True, exist_ok=True)
    jobs = [(str(out / "UCF-101" / v["cls"] / f"{v['name']}.avi"), v["cls"], v["key"], v["n_frames"], width, height)
            for v in videos]
    sizes = _run_jobs(jobs, workers)
    lists = split_lines(videos, groups)
    lists["classInd.txt"] = [f"{i} {c}" for i, c in enumerate(class_list, 1)]
    summary = dict(classes=class_list, pairs=[list(p) for p in motion_pairs(class_list)],
                   n_videos=len(videos), short_clips=sum(v["n_frames"] < 16 for v in videos),
                   train_sizes=[len(lists[f"trainlist0{s}.txt"]) for s in (1, 2, 3)],
                   test_sizes=[len(lists[f"testlist0{s}.txt"]) for s in (1, 2, 3)], mb=round(sum(sizes) / 2**20, 2))
    meta = dict(config=config, classes=class_info(class_list), pairs=summary["pairs"], summary=summary,
                n_frames={v["name"]: v["n_frames"] for v in videos})
    _finish(out, meta, lists)
    summary = dict(summary, out=str(out), skipped=False, seconds=round(time.time() - t0, 1))
    print(f"toy UCF-101 at {out}: {len(class_list)} classes ({len(summary['pairs'])} motion pairs), {len(videos)} "
          f"videos ({summary['short_clips']} under 16 frames), {summary['mb']} MB, {summary['seconds']} s")
    for s, (n_train, n_test) in enumerate(zip(summary["train_sizes"], summary["test_sizes"]), 1):
        print(f"  split {s}: {n_train} train / {n_test} test (test groups {sorted(held_out_groups(s, groups))})")
    return summary


def _check_existing(out, config, force):
    """The summary of a complete set made with `config` at `out` (nothing to do), else None after
    removing its split files, so that a run interrupted from here on is seen as incomplete."""
    meta_path, split_dir = out / META_FILE, out / "ucfTrainTestlist"
    if split_dir.exists() and not meta_path.exists():  # e.g. --out pointing at the real dataset
        raise FileExistsError(f"{split_dir} exists without {meta_path.name}: not a toy dataset, not overwriting")
    if not force and meta_path.exists() and all((split_dir / f).exists() for f in SPLIT_FILES):
        meta = json.loads(meta_path.read_text())
        if meta["config"] != config:
            raise FileExistsError(f"{out} holds a toy set made with {meta['config']}; use --force or another --out")
        print(f"toy UCF-101 already complete at {out} (use --force to regenerate)")
        return dict(meta["summary"], out=str(out), skipped=True)
    for f in SPLIT_FILES:
        (split_dir / f).unlink(missing_ok=True)
    return None


def _run_jobs(jobs, workers, desc="write videos"):
    """write_video over `jobs` in parallel processes, with a progress bar -> bytes written per video."""
    workers = workers or os.cpu_count() or 1
    bar = dict(total=len(jobs), desc=desc, unit="video", disable=len(jobs) < PROGRESS_MIN_VIDEOS, dynamic_ncols=True)
    if workers == 1:
        return [write_video(j) for j in tqdm(jobs, **bar)]
    # 'spawn': forking after OpenCV has started its thread pool can hang the children; one OpenCV thread
    # per process because the processes already fill the cores.
    with ProcessPoolExecutor(workers, multiprocessing.get_context("spawn"), cv2.setNumThreads, (1,)) as ex:
        return list(tqdm(ex.map(write_video, jobs, chunksize=max(1, min(64, len(jobs) // (8 * workers)))), **bar))


def _finish(out, meta, lists):
    """Write toy_classes.json, then the split files (CRLF like the official ones) last: testlist03
    written last marks the set complete."""
    meta_path, split_dir = out / META_FILE, out / "ucfTrainTestlist"
    meta_path.write_text(json.dumps(meta, indent=1))
    split_dir.mkdir(parents=True, exist_ok=True)
    for f in SPLIT_FILES:
        (split_dir / f).write_bytes("".join(line + "\r\n" for line in lists[f]).encode())


# ----------------------------------------------------------------------------- --like-ucf101
# UCF-101's 101 classes in classInd.txt order: the names used when no official lists are given.
UCF101_CLASSES = """ApplyEyeMakeup ApplyLipstick Archery BabyCrawling BalanceBeam BandMarching BaseballPitch
Basketball BasketballDunk BenchPress Biking Billiards BlowDryHair BlowingCandles BodyWeightSquats Bowling
BoxingPunchingBag BoxingSpeedBag BreastStroke BrushingTeeth CleanAndJerk CliffDiving CricketBowling
CricketShot CuttingInKitchen Diving Drumming Fencing FieldHockeyPenalty FloorGymnastics FrisbeeCatch
FrontCrawl GolfSwing Haircut Hammering HammerThrow HandstandPushups HandstandWalking HeadMassage HighJump
HorseRace HorseRiding HulaHoop IceDancing JavelinThrow JugglingBalls JumpingJack JumpRope Kayaking Knitting
LongJump Lunges MilitaryParade Mixing MoppingFloor Nunchucks ParallelBars PizzaTossing PlayingCello
PlayingDaf PlayingDhol PlayingFlute PlayingGuitar PlayingPiano PlayingSitar PlayingTabla PlayingViolin
PoleVault PommelHorse PullUps Punch PushUps Rafting RockClimbingIndoor RopeClimbing Rowing SalsaSpin
ShavingBeard Shotput SkateBoarding Skiing Skijet SkyDiving SoccerJuggling SoccerPenalty StillRings
SumoWrestling Surfing Swing TableTennisShot TaiChi TennisSwing ThrowDiscus TrampolineJumping Typing
UnevenBars VolleyballSpiking WalkingWithDog WallPushups WritingOnBoard YoYo""".split()
# Classes that look alike in real UCF-101 become motion-only pairs (32 classes): same object, colours
# and background, told apart only by the direction of a motion that the horizontal flip keeps.
LIKE_PAIRS = [("ApplyEyeMakeup", "ApplyLipstick"), ("BoxingPunchingBag", "BoxingSpeedBag"),
              ("BreastStroke", "FrontCrawl"), ("CricketBowling", "CricketShot"), ("HammerThrow", "ThrowDiscus"),
              ("HandstandPushups", "HandstandWalking"), ("HorseRace", "HorseRiding"), ("JumpRope", "JumpingJack"),
              ("Kayaking", "Rowing"), ("PlayingGuitar", "PlayingSitar"), ("PlayingDaf", "PlayingDhol"),
              ("PushUps", "WallPushups"), ("Skiing", "Skijet"), ("BandMarching", "MilitaryParade"),
              ("FieldHockeyPenalty", "SoccerPenalty"), ("ParallelBars", "UnevenBars")]
PAIR_MOTIONS = [("roll", "ball"), ("spin", "bar"), ("rise", "box"), ("zoom", "disc")]
APPEARANCE_SHAPES = ["circle", "square", "triangle", "diamond", "ring", "cross"]
PALETTE = [(40, 40, 220), (60, 200, 60), (220, 80, 30), (40, 220, 240), (230, 230, 230), (200, 60, 200),
           (30, 140, 250), (120, 60, 20)]  # BGR, >= 90 apart in some channel: colour jitter is +-25
BACKGROUNDS = [(50, 50, 50), (128, 128, 128), (60, 130, 60), (110, 40, 20), (170, 210, 230), (120, 60, 140)]
PATTERNS = ["flat", "grad", "stripes"]
PAIR_CONTRAST = 90  # a motion pair's object and background differ by this much in some channel
# Quirks of real files, each on QUIRK_FRACTION of the videos; "size" renders at one of ODD_SIZES.
QUIRKS = ("gray", "size", "raw", "no_count", "bad_count")
QUIRK_FRACTION = 0.02
ODD_SIZES = [(88, 66), (72, 54), (96, 56)]
AVI_TAG = b"XVID"  # the codec tag of UCF-101's files
BAD_FRAME_COUNT = 2**31 - 1  # what a broken header can claim (real UCF-101 files report worse)
NTSC_FPS, NTSC_FRACTION = 30000 / 1001, 0.2  # some UCF-101 videos are 29.97 fps
# UCF-101's clip lengths are log-normal-like around a median of ~165 frames (29 to 1,776): the median
# is scaled to --frames, the spread kept (so ~3% fall under 16 frames, as loaders must handle).
UCF_MEDIAN_FRAMES, LENGTH_SIGMA, MIN_FRAMES, MAX_LENGTH_RATIO = 165, 0.5, 8, 10
# Generated lists follow UCF-101: 25 groups per class, 4-7 clips per group with the official shares.
UCF_GROUPS, CLIPS_PER_GROUP, CLIP_SHARES = 25, (4, 5, 6, 7), (0.42, 0.17, 0.15, 0.26)
# 7^-1 mod 25: --max-per-class takes groups 1, 8, 15, 22, 4, 11, ... (every split's test groups early)
CAP_GROUP_STRIDE = 18


def like_ucf101_specs(class_list):
    """Class specs (as CLASSES) for UCF-101's names: LIKE_PAIRS as motion pairs, every other class a
    distinct appearance (shape, colour, background, pattern differing from all others in >= 2 of them).
    Fixed, independent of the seed: a class always looks the same."""
    specs, names = {}, set(class_list)
    for k, (a, b) in enumerate(p for p in LIKE_PAIRS if set(p) <= names):
        motion, shape = PAIR_MOTIONS[k % len(PAIR_MOTIONS)]
        fg = PALETTE[k % len(PALETTE)]
        # the first background from the k-th on that the object stands out from (JumpRope / JumpingJack's
        # dark blue disc on dark blue was invisible at 16x16, so was its motion)
        bg = next(b for b in (BACKGROUNDS[(k // 2 + i) % len(BACKGROUNDS)] for i in range(len(BACKGROUNDS)))
                  if max(abs(x - y) for x, y in zip(fg, b)) >= PAIR_CONTRAST)
        look = (fg, bg, PATTERNS[k % len(PATTERNS)])
        for name, sign in ((a, -1), (b, 1)):
            specs[name] = (name, shape, look[0], "solid", look[1], look[2], motion, sign)
    combos = list(itertools.product(APPEARANCE_SHAPES, range(len(PALETTE)), range(len(BACKGROUNDS)), PATTERNS))
    order = np.random.default_rng(101).permutation(len(combos))
    chosen = []
    for name in (c for c in class_list if c not in specs):
        for i in order:
            c = combos[i]
            if c not in chosen and all(sum(x != y for x, y in zip(c, d)) >= 2 for d in chosen):
                chosen.append(c)
                break
        else:
            raise ValueError(f"no distinct appearance left for class {name}")
        shape, fg, bg, pattern = chosen[-1]
        textured = shape in ("square", "triangle", "diamond")
        texture = ("solid", "striped", "checkered")[len(chosen) % 3] if textured else "solid"
        specs[name] = (name, shape, PALETTE[fg], texture, BACKGROUNDS[bg], pattern, "random", 0)
    return specs


def read_official_lists(lists_dir):
    """(class_list, {name: (class folder, 1-based label)}, {list file: [lines]}) from an official
    ucfTrainTestlist/ folder: every video named in any of its six lists."""
    lists_dir, lines = Path(lists_dir), {}
    for f in SPLIT_FILES:
        try:
            lines[f] = [ln.strip() for ln in (lists_dir / f).read_text(encoding="utf-8").splitlines() if ln.strip()]
        except (OSError, UnicodeDecodeError) as e:
            raise FileNotFoundError(f"--lists {lists_dir}: cannot read {f} ({e})") from e
    class_list = [ln.split()[1] for ln in lines["classInd.txt"]]
    label = {c: i for i, c in enumerate(class_list, 1)}
    videos = {}
    for f in SPLIT_FILES[1:]:
        for ln in lines[f]:
            folder, fname = ln.split()[0].replace("\\", "/").split("/")
            if folder not in label:
                raise ValueError(f"--lists {lists_dir}/{f}: class {folder!r} is not in classInd.txt")
            videos[fname[:-4]] = (folder, label[folder])
    return class_list, videos, lines


def generated_lists(seed):
    """Lists with UCF-101's statistics for UCF101_CLASSES: 25 groups a class, 4-7 clips a group, split s
    testing groups 7(s-1)+1 to 7s as the official splits do. Same return value as read_official_lists."""
    rng = np.random.default_rng(np.random.SeedSequence((seed, 2)))
    lines = {f: [] for f in SPLIT_FILES}
    lines["classInd.txt"] = [f"{i} {c}" for i, c in enumerate(UCF101_CLASSES, 1)]
    videos = {}
    for label, cls in enumerate(UCF101_CLASSES, 1):
        for g in range(1, UCF_GROUPS + 1):
            for c in range(1, int(rng.choice(CLIPS_PER_GROUP, p=CLIP_SHARES)) + 1):
                name = f"v_{cls}_g{g:02d}_c{c:02d}"
                videos[name] = (cls, label)
                for s in (1, 2, 3):
                    test = 7 * (s - 1) < g <= 7 * s
                    lines[f"{'test' if test else 'train'}list0{s}.txt"].append(
                        f"{cls}/{name}.avi" + ("" if test else f" {label}"))
    return list(UCF101_CLASSES), videos, lines


def cap_per_class(videos, max_per_class):
    """At most `max_per_class` videos of each class: clip 1 of each group first, groups taken in the
    order 1, 8, 15, 22, 4, 11, ... so that every split keeps train and test videos."""
    by_class = {}
    for name, (folder, _) in videos.items():
        by_class.setdefault(folder, []).append(name)
    keep = set()
    for names in by_class.values():
        g_c = {n: tuple(int(x) for x in re.fullmatch(r"v_.+_g(\d+)_c(\d+)", n).groups()) for n in names}
        names.sort(key=lambda n: (g_c[n][1], (g_c[n][0] - 1) * CAP_GROUP_STRIDE % UCF_GROUPS, n))
        keep.update(names[:max_per_class])
    return {n: v for n, v in videos.items() if n in keep}


def plan_like_ucf101(videos, seed=0, frames=40, width=80, height=60):
    """One dict per video (as plan_videos, plus fps, quirk, width, height); lengths spread like UCF-101's
    with median `frames`. Each video draws from its own seed key (seed, class, group, clip)."""
    plan = []
    for name, (folder, label) in sorted(videos.items(), key=lambda kv: (kv[1][1], kv[0])):
        m = re.fullmatch(r"v_(.+)_g(\d+)_c(\d+)", name)
        if m is None:
            raise ValueError(f"{name}: not a UCF-101 video name v_<Class>_gNN_cMM")
        g, c = int(m.group(2)), int(m.group(3))
        key = (seed, 1000 + label, g, c)
        rng = np.random.default_rng(np.random.SeedSequence(key + (0,)))
        n = int(np.clip(round(frames * np.exp(LENGTH_SIGMA * rng.standard_normal())), MIN_FRAMES,
                        MAX_LENGTH_RATIO * frames))
        u = rng.random()
        quirk = QUIRKS[int(u / QUIRK_FRACTION)] if u < QUIRK_FRACTION * len(QUIRKS) else ""
        w, h = ODD_SIZES[int(rng.integers(len(ODD_SIZES)))] if quirk == "size" else (width, height)
        fps = NTSC_FPS if rng.random() < NTSC_FRACTION else 25.0
        plan.append(dict(cls=folder, label=label, group=g, clip=c, name=name, n_frames=n, key=key,
                         fps=round(fps, 3), quirk=quirk, width=w, height=h))
    return plan


def make_like_ucf101(out="data/rehearsal", lists=None, seed=0, frames=40, width=80, height=60,
                     max_per_class=None, workers=None, force=False):
    """Generate (or skip if complete with the same settings) one synthetic video for every name of the
    official lists (`lists`: a ucfTrainTestlist/ folder, else generated ones) -> summary dict."""
    t0, out = time.time(), Path(out)
    if lists is not None:
        class_list, videos, lines = read_official_lists(lists)
    else:
        class_list, videos, lines = generated_lists(seed)
    if max_per_class:
        videos = cap_per_class(videos, max_per_class)
    config = dict(like_ucf101=True, lists=str(lists) if lists else None, seed=seed, frames=frames,
                  width=width, height=height, max_per_class=max_per_class,
                  # the motion pairs' rendering: a set made with other settings is not reused
                  zoom=json.loads(json.dumps(LIKE_ZOOM)), pair_contrast=PAIR_CONTRAST)
    done = _check_existing(out, config, force)
    if done:
        return done
    specs = like_ucf101_specs(class_list)
    plan = plan_like_ucf101(videos, seed, frames, width, height)
    for folder in sorted({v["cls"] for v in plan}):
        (out / "UCF-101" / folder).mkdir(parents=True, exist_ok=True)
    jobs = [(str(out / "UCF-101" / v["cls"] / f"{v['name']}.avi"), specs[class_list[v["label"] - 1]], v["key"],
             v["n_frames"], v["width"], v["height"], v["fps"], v["quirk"], LIKE_ZOOM) for v in plan]
    sizes = _run_jobs(jobs, workers, "write videos")
    kept = set(videos)
    name_of = lambda ln: ln.split()[0].replace("\\", "/").split("/")[1][:-4]
    lists_out = {f: (lines[f] if f == "classInd.txt" else [ln for ln in lines[f] if name_of(ln) in kept])
                 for f in SPLIT_FILES}
    pairs = [list(p) for p in LIKE_PAIRS if set(p) <= set(class_list)]
    info = [dict(name=c, label=i, kind="motion" if specs[c][6] != "random" else "appearance",
                 motion=specs[c][6] if specs[c][6] == "random" else f"{specs[c][6]}{specs[c][7]:+d}",
                 pair=next((b if a == c else a for a, b in pairs if c in (a, b)), None))
            for i, c in enumerate(class_list, 1)]
    summary = dict(classes=list(class_list), pairs=pairs, n_videos=len(plan),
                   short_clips=sum(v["n_frames"] < 16 for v in plan),
                   quirks={q: sum(v["quirk"] == q for v in plan) for q in QUIRKS},
                   ntsc=sum(v["fps"] != 25.0 for v in plan),
                   train_sizes=[len(lists_out[f"trainlist0{s}.txt"]) for s in (1, 2, 3)],
                   test_sizes=[len(lists_out[f"testlist0{s}.txt"]) for s in (1, 2, 3)],
                   mb=round(sum(sizes) / 2**20, 2))
    meta = dict(config=config, classes=info, pairs=pairs, summary=summary,
                n_frames={v["name"]: v["n_frames"] for v in plan},
                quirks={v["name"]: v["quirk"] for v in plan if v["quirk"]})
    _finish(out, meta, lists_out)
    summary = dict(summary, out=str(out), skipped=False, seconds=round(time.time() - t0, 1))
    print(f"UCF-101-like set at {out}: {len(class_list)} classes ({len(pairs)} motion pairs), {len(plan)} videos "
          f"({summary['short_clips']} under 16 frames, quirks {summary['quirks']}, {summary['ntsc']} at 29.97 fps), "
          f"{summary['mb']} MB, {summary['seconds']} s")
    for s, (n_train, n_test) in enumerate(zip(summary["train_sizes"], summary["test_sizes"]), 1):
        print(f"  split {s}: {n_train} train / {n_test} test")
    return summary


# The official lists, where the project's shared material sits beside the checkout.
SHARED_LISTS = Path(__file__).resolve().parents[2] / "shared" / "data" / "ucfTrainTestlist"
TOY_SIZE, LIKE_SIZE = (320, 240), (80, 60)  # (width, height) defaults: the toy's, --like-ucf101's


def parse_args(argv=None):
    # argparse's own formatters: this tool imports nothing of the repo (no torch in its workers)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=type(
        "Formatter", (argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter), {}))
    p.add_argument("--out", default=None, help="data root to create (UCF-101/, ucfTrainTestlist/); default "
                                               "data/toy, or data/rehearsal with --like-ucf101")
    p.add_argument("--seed", type=int, default=0, help="seeds the videos' rendering and the generated lists")
    p.add_argument("--classes", type=int, default=12, help=f"number of toy classes, 2-{len(CLASSES)}")
    p.add_argument("--groups", type=int, default=7, help="groups gNN per toy class (real UCF-101: 25)")
    p.add_argument("--clips", type=int, default=3, help="clips cMM per toy group (real UCF-101: 4-7)")
    p.add_argument("--frames", type=int, default=40, help="mean frames per video (--like-ucf101: median)")
    p.add_argument("--width", type=int, default=None, help=f"frame width (default {TOY_SIZE[0]}; "
                                                            f"--like-ucf101: {LIKE_SIZE[0]})")
    p.add_argument("--height", type=int, default=None, help=f"frame height (default {TOY_SIZE[1]}; "
                                                             f"--like-ucf101: {LIKE_SIZE[1]})")
    p.add_argument("--like-ucf101", action="store_true",
                   help="one video for every name of the official lists: 101 classes, 13,320 MPEG-4 videos")
    p.add_argument("--lists", default=None,
                   help=f"with --like-ucf101: the official ucfTrainTestlist/ folder (default {SHARED_LISTS} "
                        f"where it exists, else lists generated with UCF-101's statistics)")
    p.add_argument("--max-per-class", type=int, default=None,
                   help="with --like-ucf101: at most this many videos per class (a reduced rehearsal)")
    p.add_argument("--workers", type=int, default=os.cpu_count(), help="parallel processes")
    p.add_argument("--force", action="store_true", help="regenerate even if complete")
    return p.parse_args(argv)


def main(args):
    like = args.like_ucf101
    default_size = LIKE_SIZE if like else TOY_SIZE
    width, height = args.width or default_size[0], args.height or default_size[1]
    common = dict(seed=args.seed, frames=args.frames, width=width, height=height, workers=args.workers,
                  force=args.force)
    try:
        if like:
            lists = args.lists or (SHARED_LISTS if (SHARED_LISTS / "classInd.txt").is_file() else None)
            return make_like_ucf101(args.out or "data/rehearsal", lists, max_per_class=args.max_per_class, **common)
        if args.lists or args.max_per_class:
            raise ValueError("--lists and --max-per-class go with --like-ucf101")
        return make_toy(args.out or "data/toy", classes=args.classes, groups=args.groups, clips=args.clips, **common)
    except (FileExistsError, FileNotFoundError, ValueError) as e:
        raise SystemExit(str(e)) from None


if __name__ == "__main__":
    main(parse_args())
