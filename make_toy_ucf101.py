"""Write a toy UCF-101 (real folder layout and split-file format) that separates appearance from motion.

Usage: python make_toy_ucf101.py --out data/toy [--classes 12 --groups 7 --clips 3 --frames 40 --seed 0]

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
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np

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


def render_clip(cls, key, n_frames, width=320, height=240):
    """Render the clip with seed key `key` of class `cls` -> uint8 (T, H, W, 3) BGR."""
    _, shape, fg, texture, bg, pattern, motion, sign = SPEC[cls]
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
        lo, hi = np.log(0.05 * S), np.log(0.3 * S)
        r = np.exp(lo + (hi - lo) * np.mod(rng.uniform(0, 1) + sign * rng.uniform(*ZOOM_RATE) * t, 1.0))
    x, y = np.broadcast_to(x, (k, n_frames)), np.broadcast_to(y, (k, n_frames))
    noise = rng.uniform(0.5, 3) * rng.standard_normal((2, H, W, 3), np.float32)  # 2 alternating fields: cheap
    pos, neg = np.clip(noise, 0, 255).astype(np.uint8), np.clip(-noise, 0, 255).astype(np.uint8)
    frames = np.repeat(background[None], n_frames, 0)
    for i, f in enumerate(frames):
        for j in range(k):
            draw(f, shape, x[j, i], y[j, i], r[i], a[i], fg, tex)
        cv2.add(f, pos[i % 2], dst=f)
        cv2.subtract(f, neg[i % 2], dst=f)
    return frames


def write_video(job):
    """Render and write one MJPG AVI, verify it decodes with the right frame count; returns bytes."""
    path, cls, key, n, width, height = job
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"{path}: cv2.VideoWriter could not open an MJPG writer")
    for f in render_clip(cls, key, n, width, height):
        writer.write(f)
    writer.release()
    cap = cv2.VideoCapture(path)  # decode back: a writer can fail silently (missing codec)
    ok, n_read = cap.read()[0], int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    if not ok or n_read != n:
        raise RuntimeError(f"{path}: wrote {n} frames but cv2.VideoCapture reads {n_read} (ok={ok})")
    return os.path.getsize(path)


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
    meta_path, split_dir = out / "toy_classes.json", out / "ucfTrainTestlist"
    if split_dir.exists() and not meta_path.exists():  # e.g. --out pointing at the real dataset
        raise FileExistsError(f"{split_dir} exists without {meta_path.name}: not a toy dataset, not overwriting")
    if not force and meta_path.exists() and all((split_dir / f).exists() for f in SPLIT_FILES):
        meta = json.loads(meta_path.read_text())
        if meta["config"] != config:
            raise FileExistsError(f"{out} holds a toy set made with {meta['config']}; use --force or another --out")
        print(f"toy UCF-101 already complete at {out} (use --force to regenerate)")
        return dict(meta["summary"], out=str(out), skipped=True)
    for f in SPLIT_FILES:  # removed first, so a run interrupted from here on is seen as incomplete
        (split_dir / f).unlink(missing_ok=True)
    class_list = select_classes(classes)
    videos = plan_videos(class_list, groups, clips, frames, seed)
    for cls in class_list:
        (out / "UCF-101" / cls).mkdir(parents=True, exist_ok=True)
    jobs = [(str(out / "UCF-101" / v["cls"] / f"{v['name']}.avi"), v["cls"], v["key"], v["n_frames"], width, height)
            for v in videos]
    workers = workers or os.cpu_count() or 1
    # 'spawn': forking after OpenCV has started its thread pool can hang the children; one OpenCV thread
    # per process because the processes already fill the cores.
    if workers > 1:
        with ProcessPoolExecutor(workers, multiprocessing.get_context("spawn"), cv2.setNumThreads, (1,)) as ex:
            sizes = list(ex.map(write_video, jobs, chunksize=max(1, len(jobs) // (8 * workers))))
    else:
        sizes = [write_video(j) for j in jobs]
    lists = split_lines(videos, groups)
    lists["classInd.txt"] = [f"{i} {c}" for i, c in enumerate(class_list, 1)]
    summary = dict(classes=class_list, pairs=[list(p) for p in motion_pairs(class_list)],
                   n_videos=len(videos), short_clips=sum(v["n_frames"] < 16 for v in videos),
                   train_sizes=[len(lists[f"trainlist0{s}.txt"]) for s in (1, 2, 3)],
                   test_sizes=[len(lists[f"testlist0{s}.txt"]) for s in (1, 2, 3)], mb=round(sum(sizes) / 2**20, 2))
    meta = dict(config=config, classes=class_info(class_list), pairs=summary["pairs"], summary=summary,
                n_frames={v["name"]: v["n_frames"] for v in videos})
    meta_path.write_text(json.dumps(meta, indent=1))
    split_dir.mkdir(parents=True, exist_ok=True)
    for f in SPLIT_FILES:  # last, CRLF like the official files; testlist03 written last marks completion
        (split_dir / f).write_bytes("".join(line + "\r\n" for line in lists[f]).encode())
    summary = dict(summary, out=str(out), skipped=False, seconds=round(time.time() - t0, 1))
    print(f"toy UCF-101 at {out}: {len(class_list)} classes ({len(summary['pairs'])} motion pairs), {len(videos)} "
          f"videos ({summary['short_clips']} under 16 frames), {summary['mb']} MB, {summary['seconds']} s")
    for s, (n_train, n_test) in enumerate(zip(summary["train_sizes"], summary["test_sizes"]), 1):
        print(f"  split {s}: {n_train} train / {n_test} test (test groups {sorted(held_out_groups(s, groups))})")
    return summary


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="data/toy", help="data root to create (UCF-101/, ucfTrainTestlist/)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--classes", type=int, default=12, help=f"number of classes, 2-{len(CLASSES)}")
    p.add_argument("--groups", type=int, default=7, help="groups gNN per class (real UCF-101: 25)")
    p.add_argument("--clips", type=int, default=3, help="clips cMM per group (real UCF-101: 4-7)")
    p.add_argument("--frames", type=int, default=40, help="mean frames per video")
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--height", type=int, default=240)
    p.add_argument("--workers", type=int, default=os.cpu_count(), help="parallel processes")
    p.add_argument("--force", action="store_true", help="regenerate even if complete")
    return p.parse_args(argv)


def main(args):
    try:
        make_toy(**vars(args))
    except FileExistsError as e:
        raise SystemExit(str(e))


if __name__ == "__main__":
    main(parse_args())
