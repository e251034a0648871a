"""What benchmark.py measures, one function per measurement; benchmark.py runs them and reports.

Every measure_* function appends rows (plain dicts) to the `results` dict it is given and calls
save() after each step, so that a run cut short keeps what it measured. Usage: see benchmark.py.
"""
import argparse
import glob
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing import Pool

import av
import cv2
import h5py
import numpy as np
import simplejpeg
import torch
import torch.nn.functional as F
import torchvision
from av.video.reformatter import VideoReformatter
from torch.utils.flop_counter import FlopCounterMode

import engine
import helperFunctions as hf
import resnet_3d
import scoring
import video_io

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The assignment on UCF-101 split 1: 9,537 training and 3,783 test videos, 186 frames on average
# (UCF-101's mean video length), 16-frame clips, test windows every 8 frames, loaders on 16 cores.
ASSIGNMENT = dict(epochs=10, train=9537, test=3783, video_frames=186, clip=16, stride=8, cores=16)
# Dense bf16 tensor-core peaks in TFLOP/s, keyed by words of torch.cuda.get_device_name(), the
# first match wins (so "H100 PCIe" before "H100"). Source: NVIDIA's datasheets (H100/H200 SXM:
# 1,979 TFLOP/s with sparsity, so 989 dense; H100 PCIe 1,513 -> 756; A100: 312 dense).
PEAK_BF16_TFLOPS = [("H100 PCIe", 756), ("H100", 989), ("H200", 989), ("A100", 312)]
# (kind, frames (0: the whole video), size, batch) of the loader figures
LOADS = [("frame", 1, 224, 16), ("clip", 16, 224, 4), ("video", 0, 224, 1), ("clip", 16, 112, 4)]
MODEL_KEYS = ["2D train", "3D train", "2D test frames", "3D test windows", "3D test full"]
# The one-core side-by-side table: our formats and the peer decoders do the same work on the same
# random clips (16 frames) and frames (1): decode, resize to 224 px, uint8 (no augmentation: the
# peers have none).
SAME_WORK = (("uint8 clip", 16), ("uint8 frame", 1))
NO_AUG = hf.Augment()
# pre-drawn (video, frames) jobs of the same-work table, read by every format and peer in every
# round (quick: 48): a time window instead would give each its own mix of short and long decodes
JOBS = 160
SHORT_VIDEO = 40  # frames of a short test video: the rehearsal's median (UCF-101's 165 / 4)
EXACT_STARTS = 12  # clip starts per video in the frame-exactness check (4 with --quick)
OURS = video_io.FORMATS  # the formats of the one-core tables that are ours; the rest are peers
UNCHECKED = "jpeg without the source check"  # the compact store read as if it recorded no source


# ----------------------------------------------------------------------------- data

def build_sets(tmp: str, real_dir: str, quick: bool, workers: int) -> dict:
    """Video sets in `tmp` in the three formats, one root per format holding only that copy (so
    that resolve_video reads the format asked for). Returns {set: {fmt: [canonical paths]}}."""
    toy = os.path.join(tmp, "toy")
    frames = 40 if quick else ASSIGNMENT["video_frames"]
    subprocess.run([sys.executable, "-m", "tools.make_toy_ucf101", "--out", toy, "--classes", "4",
                    "--groups", "3", "--clips", "1", "--frames", str(frames),
                    "--workers", str(1 if quick else min(8, workers))],
                   check=True, stdout=subprocess.DEVNULL, cwd=REPO)
    sources = {"real": sorted(glob.glob(os.path.join(real_dir, "*.avi"))),
               "toy": sorted(glob.glob(os.path.join(toy, "UCF-101", "*", "*.avi")))}
    sets = {}
    for name, srcs in ((k, v) for k, v in sources.items() if v):
        base = os.path.join(tmp, name)
        avis = [os.path.join(base, "UCF-101", video_io.video_name(s).split("_")[1],
                             os.path.basename(s)) for s in srcs]
        for s, a in zip(srcs, avis):
            if not os.path.exists(a):
                os.makedirs(os.path.dirname(a), exist_ok=True)
                os.symlink(os.path.abspath(s), a)
        with Pool(max(1, min(workers, 8))) as pool:
            tasks = [(a, "avi", video_io.store_path(a, fmt), fmt, 90)
                     for fmt in ("hdf5", "jpeg") for a in avis]
            for src, _, _, _, err in pool.map(video_io.convert, tasks):
                if err:
                    raise RuntimeError(f"prepare_data could not convert {src}: {err}")
        sets[name] = {}
        for fmt in video_io.FORMATS:
            root = os.path.join(tmp, f"{name}-{fmt}")
            os.makedirs(root)
            os.symlink(os.path.join(base, video_io.STORE_DIRS[fmt]),
                       os.path.join(root, video_io.STORE_DIRS[fmt]))
            sets[name][fmt] = [os.path.join(root, os.path.relpath(a, base)) for a in avis]
    return sets


def timed_calls(fn: Callable, seconds: float, n_min: int = 2, warm: int = 1,
                clock: Callable = time.perf_counter) -> float:
    """Median seconds per call of fn() by `clock` over at least `seconds` of wall time and n_min
    calls, after `warm` calls (the median: other people's jobs on a shared machine slow some calls
    down)."""
    for _ in range(warm):
        fn()
    times, end = [], time.perf_counter() + seconds
    while len(times) < n_min or time.perf_counter() < end:
        t = clock()
        fn()
        times.append(clock() - t)
    return float(np.median(times))


def loader_rate(paths: list, frames: int, size: int, batch: int, workers: int,
                seconds: float) -> tuple[float, float]:
    """(samples/s, frames/s) through make_loader, timed from the moment every worker has delivered
    a batch (start-up excluded), for at least `seconds` and 2 batches."""
    ps = np.asarray(paths * max(1, 4096 // len(paths)))
    ds = hf.VideoDataset(ps, np.zeros(len(ps)), size) if frames == 0 else \
        hf.ClipDataset(ps, np.zeros(len(ps)), True, size, frames)
    loader = hf.make_loader(ds, batch, True, workers)
    t0, n, nf, nb = None, 0, 0, 0
    for i, b in enumerate(loader):
        if b["failed"]:
            raise RuntimeError(f"the loader failed on {b['failed'][0]}")
        if t0 is None:
            t0 = time.perf_counter() if i + 1 >= workers else None
            continue
        n, nb = n + len(b["label"]), nb + 1
        nf += len(b["label"]) if frames == 1 else b["video"].shape[:2].numel()
        if nb >= 2 and time.perf_counter() - t0 > seconds:
            break
    dt = time.perf_counter() - t0
    del loader  # shuts the persistent workers down
    return n / dt, nf / dt


def evict(path: str) -> None:
    """Drop a video's file from the page cache (this file only): its next read hits the disk."""
    fd = os.open(video_io.resolve_video(path)[1], os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def jpeg_bytes(path: str, n: int | None = None) -> np.ndarray:
    """The JPEG byte strings of a compact-store video's first n frames (all when None)."""
    with h5py.File(video_io.resolve_video(path)[1], "r") as h:
        return h["jpeg"][:n]


# ----------------------------------------------------------------------------- peer decoders

_PEER = threading.local()


def _rgb(frame: av.VideoFrame) -> np.ndarray:
    """A frame as uint8 RGB through one VideoReformatter per thread and process (its swscale
    context reused, as in our reader: the peers at their best, not paying a set-up per frame)."""
    if getattr(_PEER, "pid", None) != os.getpid():
        _PEER.rgb, _PEER.pid = VideoReformatter(), os.getpid()
    return _PEER.rgb.reformat(frame, format="rgb24", threads=1).to_ndarray()


def _keep(out: np.ndarray | None, k: int, frame: av.VideoFrame, total: int) -> np.ndarray:
    rgb = _rgb(frame)
    out = np.empty((total,) + rgb.shape, np.uint8) if out is None else out
    out[k] = rgb
    return out


def pyav_from_start(path: str, indices: np.ndarray) -> np.ndarray:
    """PyAV used frame-exactly the simple way: decode from the start on one thread, counting
    frames, converting the ones asked for (sorted unique `indices`): uint8 RGB (N, H, W, 3)."""
    pos, out = {int(v): k for k, v in enumerate(indices)}, None
    with av.open(path) as c:
        stream = c.streams.video[0]
        stream.thread_count = 1
        for i, frame in enumerate(c.decode(stream)):
            if i in pos:
                out = _keep(out, pos[i], frame, len(indices))
            if i >= indices[-1]:
                break
    return out


def pyav_seek(path: str, indices: np.ndarray) -> np.ndarray:
    """PyAV used as our reader uses it: where a timestamp is a frame number (an AVI, one tick per
    frame, no B-frames by PyAV's has_b_frames), seek to the keyframe before the clip and keep the
    frames by timestamp; elsewhere decode from the start, counting. uint8 RGB (N, H, W, 3)."""
    pos, out, got = {int(v): k for k, v in enumerate(indices)}, None, 0
    with av.open(path) as c:
        stream = c.streams.video[0]
        stream.thread_count = 1
        rate, tb = stream.average_rate, stream.time_base
        by_pts = (c.format.name == "avi" and not stream.codec_context.has_b_frames
                  and rate is not None and tb is not None and rate * tb == 1 and indices[0] > 0)
        if by_pts:
            c.seek(int(indices[0]), stream=stream, backward=True, any_frame=False)
        for i, frame in enumerate(c.decode(stream)):
            n = frame.pts if by_pts else i
            if n in pos:
                out, got = _keep(out, pos[n], frame, len(indices)), got + 1
            if n is None or n >= indices[-1]:
                break
    if got < len(indices):
        raise RuntimeError(f"{path}: {got} of the {len(indices)} frames asked for were found")
    return out


def pyav_pts_frames(path: str, indices: np.ndarray) -> np.ndarray:
    """PyAV seeking by timestamp everywhere, as its documentation suggests: seek to the keyframe
    before indices[0] (an AVI timestamp counts frames), keep the frames whose timestamp is asked
    for. Not frame-exact on packed-bitstream DivX, whose decoded timestamps run 1, 2, 4, 3, 5, ...:
    in the exactness check only, to show why `pyav_seek` and our reader look at has_b_frames."""
    with av.open(path) as c:
        stream = c.streams.video[0]
        stream.thread_count = 1
        if indices[0] > 0:
            c.seek(int(indices[0]), stream=stream, backward=True, any_frame=False)
        want, out = set(indices), {}
        for frame in c.decode(stream):
            if frame.pts in want:
                out[frame.pts] = frame.to_ndarray(format="rgb24")
            if frame.pts is None or frame.pts >= indices[-1] or len(out) == len(want):
                break
    found = [out[i] for i in indices if i in out]  # fewer than asked when timestamps skip them
    return np.stack(found) if found else np.empty((0, 0, 0, 3), dtype=np.uint8)


def torchcodec_frames(path: str, indices: np.ndarray) -> np.ndarray:
    """torchcodec (when it loads): its exact-seek decoder, one FFmpeg thread, frames by index."""
    from torchcodec.decoders import VideoDecoder
    dec = VideoDecoder(path, dimension_order="NHWC", num_ffmpeg_threads=1, seek_mode="exact")
    return dec.get_frames_at([int(i) for i in indices]).data.numpy()


def peer_readers(results: dict) -> dict:
    """{peer name: read(path, sorted unique indices) -> uint8 RGB (N, H, W, 3)} for the peers that
    load; a note saying why for torchcodec when it does not."""
    readers = {"pyav, seek": pyav_seek, "pyav, from the start": pyav_from_start}
    try:
        import torchcodec.decoders  # noqa: F401
        readers["torchcodec"] = torchcodec_frames
    except (ImportError, OSError, RuntimeError) as e:  # not installed, or no FFmpeg libraries
        why = str(e).strip().splitlines()[0][:160]
        note = (f"torchcodec not measured ({type(e).__name__}: {why}); "
                f"benchmarks/torchcodec_side.sh installs it beside the venv")
        results["notes"] += [note] * (note not in results["notes"])
    return readers


def reference_frames(path: str) -> np.ndarray:
    """Every frame of an AVI decoded by OpenCV one by one from the start (independent of PyAV and
    of our reader): uint8 RGB (T, H, W, 3)."""
    cap = cv2.VideoCapture(path)
    frames = []
    try:
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    finally:
        cap.release()
    if not frames:
        raise RuntimeError(f"{path}: OpenCV decodes no frame of it")
    return np.stack(frames)


def frame_exactness(name: str, avis: list, readers: dict, starts: int) -> list:
    """Rows (one per video and reader) of 16-frame clips at `starts` positions spread over each
    video, read by each reader and compared with `reference_frames`: clips checked, clips exact.
    A reader that raises on a clip counts that clip as not exact."""
    rows = []
    for p in avis:
        real = video_io.resolve_video(p)[1]
        ref = reference_frames(real)
        clips = [np.arange(s, s + ASSIGNMENT["clip"]) for s in
                 np.unique(np.linspace(0, len(ref) - ASSIGNMENT["clip"], starts).astype(int))]
        for fmt, read in readers.items():
            exact = 0
            for idx in clips:
                try:
                    exact += int(np.array_equal(read(real, idx), ref[idx]))
                except (RuntimeError, ValueError, av.FFmpegError):
                    pass
            rows.append(dict(set=name, format=fmt, video=video_io.video_name(p),
                             clips=len(clips), exact=exact))
    return rows


def same_work(fmts: dict, readers: dict, rng: np.random.Generator, n_jobs: int) -> tuple:
    """({(format, kind): read(k, indices)}, {kind: jobs}) for the side-by-side table: the jobs are
    `n_jobs` pre-drawn random (video number, frame numbers) clips or frames; each read decodes
    one, resizes it to 224 px and returns uint8 (T, 224, 224, 3). Our formats go through
    read_frames (one open, as training reads); the peers get the AVI."""
    avis = [video_io.resolve_video(p)[1] for p in fmts["avi"]]
    jobs = {kind: [(int(k), hf.clip_indices(video_io.count_frames(avis[k]), T, rng))
                   for k in rng.integers(len(avis), size=n_jobs)] for kind, T in SAME_WORK}
    calls = {}
    for kind, _ in SAME_WORK:
        for fmt in video_io.FORMATS:
            calls[fmt, kind] = lambda k, idx, ps=fmts[fmt]: hf.apply_augment(
                video_io.read_frames(ps[k], lambda n: idx), NO_AUG, 224)
        for fmt, read in readers.items():
            calls[fmt, kind] = lambda k, idx, read=read: hf.apply_augment(
                read(avis[k], idx), NO_AUG, 224)
        # what the store's check of its source costs: the same read without it (read_frames
        # less video_io.stale_source)
        calls[UNCHECKED, kind] = lambda k, idx, ps=fmts["jpeg"]: hf.apply_augment(
            read_store_unchecked(ps[k], idx), NO_AUG, 224)
    return calls, jobs


def read_store_unchecked(path: str, indices: np.ndarray) -> np.ndarray:
    """Frames `indices` (sorted, unique) of a video's compact-store copy, read as read_frames reads
    them but for the comparison of the store's record with its source."""
    real = video_io.resolve_video(path, ("jpeg",))[1]
    with video_io._open_h5(real) as (_, ds):
        return video_io._read_store(real, ds, lambda n: indices)[0]


def job_rounds(calls: dict, jobs: dict, rounds: int) -> dict:
    """{(format, kind): [CPU seconds per job, one per round]}: in every round each call does every
    job of its kind once (after one warm-up job), the calls in an order rotated by one each round
    so that none always follows the same neighbour. CPU time, on one core: see one_core_rounds."""
    keys, per_round = list(calls), {k: [] for k in calls}
    with one_core():
        for r in range(rounds):
            for key in keys[r % len(keys):] + keys[:r % len(keys)]:
                fn, js = calls[key], jobs[key[1]]
                fn(*js[0])
                t = time.process_time()
                for job in js:
                    fn(*job)
                per_round[key].append((time.process_time() - t) / len(js))
    return per_round


def jpeg_fast_error(fmts: dict) -> float:
    """Mean absolute error (grey levels) that simplejpeg's fast DCT and fast upsampling add to the
    compact store's frames, against its exact decode, over every frame of the set."""
    errs = []
    for p in fmts["jpeg"]:
        for b in jpeg_bytes(p):
            exact = simplejpeg.decode_jpeg(b, "RGB").astype(np.int16)
            fast = simplejpeg.decode_jpeg(b, "RGB", fastdct=True, fastupsample=True)
            errs.append(np.abs(fast - exact).mean())
    return float(np.mean(errs))


@contextmanager
def one_core() -> Iterator[None]:
    """One torch and one OpenCV thread while inside, as in a DataLoader worker."""
    threads, cv_threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        cv2.setNumThreads(cv_threads)


def one_core_rounds(calls: dict, seconds: float, rounds: int, wall: tuple = ()) -> dict:
    """{key: [seconds per call, one per round]}: every call timed in turn for `seconds` (its
    median call), `rounds` times over, on one core. The process's CPU time is the clock, except
    for the keys in `wall` (reads from the disk, whose waiting is the point): on a shared machine
    other jobs take the cores away at random, which wall time counts against whichever call was
    running and CPU time does not. Interleaved rounds: each round sees every call under the same
    conditions."""
    per_round = {k: [] for k in calls}
    with one_core():
        for _ in range(rounds):
            for k, fn in calls.items():
                clock = time.perf_counter if k in wall else time.process_time
                per_round[k].append(timed_calls(fn, seconds, clock=clock))
    return per_round


def measure_data(results: dict, sets: dict, args: argparse.Namespace, save: Callable,
                 gpu: bool = False, loaders: bool = True) -> None:
    """Bytes per video, the loaders with 1 and N workers, and the one-core tables: the float
    loaders, a cold read, our formats against the peer decoders, the frame-exactness check, the
    JPEG decoders and AVI seeking."""
    for name, fmts in sets.items():
        for fmt, ps in fmts.items():
            sizes = [os.path.getsize(video_io.resolve_video(p)[1]) for p in ps]
            lengths = [video_io.count_frames(p) for p in ps]
            results["bytes"].append(dict(set=name, format=fmt, videos=len(ps),
                                         mean_frames=np.mean(lengths),
                                         bytes_per_video=np.mean(sizes)))
    rng = np.random.default_rng(0)
    for name, fmts in sets.items():
        for kind, frames, size, batch in (LOADS[:3] if args.quick else LOADS) if loaders else ():
            # a GPU node: the training batch (per-batch costs of moving data between processes)
            batch = {"frame": 100, "clip": 32}.get(kind, batch) if gpu else batch
            for fmt in ("jpeg", "hdf5", "avi"):
                for w in [1] if args.quick and fmt != "jpeg" else sorted({1, args.workers}):
                    if time.time() > args.deadline - args.seconds - 10:
                        results["skipped"].append(
                            f"loader {name}/{kind}{size}/{fmt}/{w} workers: out of --budget-s")
                        continue
                    clips, fps = loader_rate(fmts[fmt], frames, size, batch, w, args.seconds)
                    results["loaders"].append(dict(set=name, format=fmt, kind=kind, size=size,
                                                   workers=w, batch=batch, clips_per_s=clips,
                                                   frames_per_s=fps))
                    print(f"  loader {name}/{kind}{size}/{fmt}, {w} workers: {clips:.4g}/s",
                          flush=True)
                    save()
        if time.time() > args.deadline - 15 * args.seconds - 10:
            results["skipped"].append(f"one-core tables on {name}: out of --budget-s")
            continue
        it = {fmt: iter(ps * 10**4) for fmt, ps in fmts.items()}
        cold = lambda p: (evict(p), hf.load_clip(p, True, 224, 16, rng))
        kinds = (("loadFrame", lambda p: hf.loadFrame((p, True), size=224, rng=rng)),
                 ("loadSequence", lambda p: hf.loadSequence((p, True), size=224, rng=rng)),
                 ("uint8 clip, cold", cold))
        calls = {(f, k): (lambda f=f, fn=fn: fn(next(it[f])))
                 for f in ("jpeg", "hdf5", "avi") for k, fn in kinds}
        readers = peer_readers(results)
        avi = iter([(p, hf.clip_indices(video_io.count_frames(p), ASSIGNMENT["clip"], rng))
                    for p in fmts["avi"] * 10**3])
        calls["avi", "seek"] = lambda: video_io.read_frames(*next(avi))
        calls["avi", "decode all"] = lambda: (lambda p, i: video_io.read_frames(p)[i])(*next(avi))
        # the JPEG decoders: the same 16-frame clips through cv2.imdecode and simplejpeg, exact and
        # with the fast DCT + upsampling (whose error jpeg_fast_error measures)
        jb = iter([jpeg_bytes(p, ASSIGNMENT["clip"]) for p in fmts["jpeg"]] * 10**4)
        fast = lambda b: [simplejpeg.decode_jpeg(x, "RGB", fastdct=True, fastupsample=True)
                          for x in b]
        calls["jpeg", "16 JPEGs, cv2.imdecode"] = lambda: [cv2.imdecode(b, cv2.IMREAD_COLOR_RGB)
                                                           for b in next(jb)]
        calls["jpeg", "16 JPEGs, simplejpeg"] = lambda: video_io._decode_all(
            next(jb), "", np.arange(ASSIGNMENT["clip"]))
        calls["jpeg", "16 JPEGs, simplejpeg fast"] = lambda: fast(next(jb))
        # a fifth of --seconds per call and round: 5 rounds time each call as long as one window
        per_round = one_core_rounds(calls, args.seconds / 5, args.rounds,
                                    wall=[(f, "uint8 clip, cold") for f in video_io.FORMATS])
        same, jobs = same_work(fmts, readers, rng, 48 if args.quick else JOBS)
        per_round.update(job_rounds(same, jobs, args.rounds))
        results["one_core"] += [dict(set=name, format=f, kind=k,
                                     clips_per_s=statistics.median(1 / s for s in ss),
                                     rounds=[1 / s for s in ss])
                                for (f, k), ss in per_round.items()]
        med = {k: statistics.median(ss) for k, ss in per_round.items()}
        results["jpeg_decoder"].append(dict(
            set=name, cv2_clips_per_s=1 / med["jpeg", "16 JPEGs, cv2.imdecode"],
            simplejpeg_clips_per_s=1 / med["jpeg", "16 JPEGs, simplejpeg"],
            fast_clips_per_s=1 / med["jpeg", "16 JPEGs, simplejpeg fast"],
            fast_mean_abs_error=jpeg_fast_error(fmts)))
        ours = {"avi": lambda p, idx: video_io.read_frames(p, idx)}
        results["exactness"] += frame_exactness(
            name, fmts["avi"], {**ours, **readers, "pyav, seek by pts everywhere": pyav_pts_frames},
            4 if args.quick else EXACT_STARTS)
        seek, full = med["avi", "seek"], med["avi", "decode all"]
        results["seek"].append(dict(set=name, seek_ms=1e3 * seek, decode_all_ms=1e3 * full,
                                    speedup=full / seek))
        save()


def peer_comparison(results: dict) -> list:
    """Per set and kind of the same-work table, each format's median rate against the best peer
    that was frame-exact on every clip of the exactness check (the highest median rate among
    them): rows {set, kind, format, clips_per_s, best_peer, ratio (median of the per-round
    ratios), wins (rounds in which the format was faster), rounds, frame_exact}."""
    exact = {}
    for r in results.get("exactness", []):
        key = (r["set"], r["format"])
        exact[key] = exact.get(key, True) and r["exact"] == r["clips"]
    rows = []
    for kind, _ in SAME_WORK:
        for s in dict.fromkeys(r["set"] for r in results["one_core"]):
            got = {r["format"]: r for r in results["one_core"]
                   if (r["set"], r["kind"]) == (s, kind)}
            peers = [f for f in got if f not in OURS and f != UNCHECKED and exact.get((s, f))]
            if not peers:
                continue
            best = max(peers, key=lambda f: got[f]["clips_per_s"])
            for f, r in got.items():
                if f == UNCHECKED:
                    continue
                ratios = [a / b for a, b in zip(r["rounds"], got[best]["rounds"])]
                rows.append(dict(set=s, kind=kind, format=f, clips_per_s=r["clips_per_s"],
                                 best_peer=best, ratio=statistics.median(ratios),
                                 wins=sum(x > 1 for x in ratios), rounds=len(ratios),
                                 frame_exact=exact.get((s, f)) if f not in ("jpeg", "hdf5")
                                 else None))  # the copies hold the frames by number
    return rows


def source_check_cost(results: dict) -> list:
    """Per set and kind of the same-work table, the compact store read as the scripts read it
    against the same read without the comparison of its record with its source: rows {set, kind,
    checked_per_s, unchecked_per_s, cost (1 - the median per-round ratio), rounds}."""
    rows = []
    for (s, kind), r in {(r["set"], r["kind"]): r for r in results.get("one_core", [])
                         if r["format"] == "jpeg"}.items():
        u = next((x for x in results["one_core"] if (x["set"], x["kind"], x["format"]) ==
                  (s, kind, UNCHECKED)), None)
        if u is not None:
            ratio = statistics.median(a / b for a, b in zip(r["rounds"], u["rounds"]))
            rows.append(dict(set=s, kind=kind, checked_per_s=r["clips_per_s"],
                             unchecked_per_s=u["clips_per_s"], cost=1 - ratio,
                             rounds=len(u["rounds"])))
    return rows


# ----------------------------------------------------------------------------- models

def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_tflops(device: torch.device) -> float | None:
    """The dense bf16 peak of the GPU (PEAK_BF16_TFLOPS), None on CPU or for a GPU not listed."""
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else ""
    return next((p for k, p in PEAK_BF16_TFLOPS if gpu and all(w in gpu for w in k.split())), None)


def model_setup(args: argparse.Namespace, device: torch.device, kind: str, train: bool = True,
                channels_last: bool = True) -> tuple:
    """The assignment's FineTune model (trained: layer4[2] + fc in 2D, layer4[0] + fc in 3D; else
    fc only) and its Adam, placed as the training scripts place them. Returns (net, optimizer)."""
    lb = 1 if kind == "3d" else None
    if kind == "3d":
        model = resnet_3d.build(args.arch_3d, num_classes=101, layer4_blocks=lb)
    else:
        model = getattr(torchvision.models, args.arch_single_frame)(weights=None, num_classes=101)
    top = "layer4.0" if kind == "3d" else f"layer4.{len(model.layer4) - 1}"  # resnet50: layer4.2
    net = engine.FineTune(model, top if train else "fc", *engine.input_stats(kind)).to(device)
    if channels_last and device.type == "cuda":
        net = net.to(memory_format=torch.channels_last_3d if kind == "3d" else torch.channels_last)
    net.train(train)
    return net, torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-4)


def pipeline_rate(args: argparse.Namespace, device: torch.device, paths: list, kind: str,
                  workers: int, batch: int, n: int) -> float:
    """Training samples/s fed by the real loader: ClipDataset + make_loader with `workers` workers
    (decoding and augmenting in the workers, as the training scripts do), through
    engine.train_one_epoch (normalise, forward, backward, Adam). Timed over the second of two
    epochs of n samples, so that worker start-up is left out."""
    frames = 16 if kind == "3d" else 1
    ps = (list(paths) * (n // len(paths) + 1))[:n]
    ds = hf.ClipDataset(ps, np.zeros(n, dtype=np.int64), True, args.size, frames)
    loader = hf.make_loader(ds, batch, True, workers)
    net, opt = model_setup(args, device, kind)
    run = engine.Run(device, rank=1, precision=engine.resolve_precision("auto", device))
    failures = engine.FailureLog(rank=1)  # rank 1: no progress bar, no messages
    for epoch in range(2):
        loader.batch_sampler.set_epoch(epoch)
        sync(device)
        t = time.perf_counter()
        r = engine.train_one_epoch(net, opt, loader, run, failures)
        sync(device)
    if failures.count:
        raise RuntimeError(f"{failures.count} samples failed to load in the pipeline benchmark")
    del loader  # shuts the persistent workers down
    return r["n"] / (time.perf_counter() - t)


def measure_pipeline(results: dict, sets: dict, args: argparse.Namespace, device: torch.device,
                     save: Callable) -> None:
    """The data path against the model in training: samples/s through the loader, next to the
    model alone (random uint8 input already on the device)."""
    name = "toy" if "toy" in sets else next(iter(sets))
    alone = {r["kind"]: r["items_per_s"] for r in results["models"] if r["mode"] == "train"}
    gpu = device.type == "cuda"
    for kind, batch in (("3d", 32 if gpu else 2), ("single_frame", 100 if gpu else 4)):
        # GPU: epochs of the assignment's size, since each epoch start waits for the workers
        n = ASSIGNMENT["train"] if gpu else 2 * batch
        if time.time() > args.deadline - 4 * n / alone.get(kind, 1) - 20:
            results["skipped"].append(f"pipeline {kind}: out of --budget-s")
            continue
        rate = pipeline_rate(args, device, sets[name]["jpeg"], kind, args.workers, batch, n)
        results["pipeline"].append(dict(
            set=name, kind=kind, batch=batch, size=args.size, workers=args.workers,
            samples_per_s=rate, model_alone_per_s=alone.get(kind),
            fraction_of_model=rate / alone[kind] if kind in alone else None))
        print(f"  pipeline {kind}, {args.workers} workers: {rate:.4g}/s", flush=True)
        save()


def model_case(args: argparse.Namespace, device: torch.device, name: str, kind: str, batch: int,
               frames: int,
               mode: str = "train", amp: bool = True, channels_last: bool = True,
               compile_: bool = False) -> dict:
    """One set-up's seconds per step, items/s and FLOPs. mode "train": uint8 (B, T, S, S, 3) on the
    device -> FineTune (normalising) -> loss -> backward -> Adam. Else one uint8 video (T, S, S, 3),
    pinned on the host as the loader hands it over, through scoring.logits_of: its frames
    ("frames") or its scoring.window_inputs ("windows" / "full")."""
    S, gpu, train = args.size, device.type == "cuda", mode == "train"
    net, opt = model_setup(args, device, kind, train, channels_last)
    run = engine.Run(device, precision=engine.resolve_precision("auto" if amp else "fp32", device))
    cast = lambda: engine.autocast(run)
    if train:
        shape = (batch, S, S, 3) if kind == "single_frame" else (batch, frames, S, S, 3)
        x = torch.randint(0, 256, shape, dtype=torch.uint8, device=device)
        y = torch.randint(0, 101, (batch,), device=device)

        def step(m):
            with cast():
                loss = F.cross_entropy(m(x).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    else:
        video = torch.randint(0, 256, (frames, S, S, 3), dtype=torch.uint8)
        video = video.pin_memory() if gpu else video

        def step(m):
            with torch.inference_mode():
                x = video if mode == "frames" else scoring.window_inputs(
                    video.to(device, non_blocking=True), mode, ASSIGNMENT["clip"],
                    ASSIGNMENT["stride"])
                return scoring.logits_of(m, x, run, batch)
    with FlopCounterMode(display=False) as fc:  # on CPU also the warm-up
        step(net)
    fwd = torch.compile(net) if compile_ else net
    # GPU: cuDNN's autotuning and torch.compile in the warm-up calls
    s = timed_calls(lambda: (step(fwd), sync(device)), args.seconds,
                    warm=3 if gpu or compile_ else 0)
    flops, peak = fc.get_total_flops(), peak_tflops(device)
    windows = len(scoring.window_starts(frames, ASSIGNMENT["clip"], ASSIGNMENT["stride"]))
    items = {"train": batch, "frames": frames, "full": frames, "windows": windows}[mode]
    r = dict(name=name, kind=kind, mode=mode, batch=batch, size=S, frames=frames,
             compiled=compile_, dtype="bf16 autocast" if amp and gpu else "fp32",
             cudnn_benchmark=torch.backends.cudnn.benchmark,
             memory_format="contiguous" if not (channels_last and gpu) else
             "channels_last_3d" if kind == "3d" else "channels_last",
             s_per_step=s, items_per_s=items / s,
             frames_per_s=(batch * frames if train else frames) / s,
             gflop_per_step=flops / 1e9, tflops=flops / s / 1e12)
    if peak:
        r["peak_fraction"] = r["tflops"] / peak
    return r


def model_plan(args: argparse.Namespace, device: torch.device) -> tuple[list, list]:
    """(name, model_case kwargs) pairs: the assignment's set-ups (smaller batches and videos on a
    CPU), and the levers: short test videos batched, and on a GPU dtype, memory format,
    cudnn.benchmark, batch sizes and torch.compile."""
    gpu = device.type == "cuda"
    T = ASSIGNMENT["video_frames"] if gpu else 32
    b2, b3 = (100, 32) if gpu else (4, 2) if args.quick else (8, 2)
    cases = [dict(kind="single_frame", batch=b2, frames=1), dict(kind="3d", batch=b3, frames=16),
             dict(kind="single_frame", batch=200 if gpu else T, frames=T, mode="frames"),
             dict(kind="3d", batch=32, frames=T, mode="windows"),
             dict(kind="3d", batch=1, frames=T, mode="full")]
    # the test scripts: one short video's frames / windows alone against short videos batched
    # together (scoring.video_batches fills a forward pass with them); items/s side by side
    frames, windows = scoring.FRAME_BATCH, scoring.WINDOW_BATCH
    clip, stride = ASSIGNMENT["clip"], ASSIGNMENT["stride"]
    levers = [("2D test one short video", dict(cases[2], batch=frames, frames=SHORT_VIDEO)),
              ("2D test short videos batched", dict(cases[2], batch=frames, frames=frames)),
              ("3D test one short video", dict(cases[3], batch=windows, frames=SHORT_VIDEO)),
              ("3D test short videos batched", dict(cases[3], batch=windows,
                                                    frames=clip + (windows - 1) * stride))]
    levers += [] if not gpu else [
        ("3D train fp32", dict(cases[1], amp=False)),
        ("3D train contiguous", dict(cases[1], channels_last=False)),
        ("3D train no cudnn.benchmark", dict(cases[1], benchmark=False)),
        ("2D train fp32", dict(cases[0], amp=False)),
        ("2D train contiguous", dict(cases[0], channels_last=False)),
        ("2D test 800 frames at once", dict(cases[2], batch=800, frames=800)),
        ("3D test 128 windows at once", dict(cases[3], batch=128, frames=clip + 127 * stride))]
    if gpu and args.compile:
        levers += [("3D train torch.compile", dict(cases[1], compile_=True)),
                   ("2D train torch.compile", dict(cases[0], compile_=True))]
    return list(zip(MODEL_KEYS, cases)), levers


def measure_models(results: dict, args: argparse.Namespace, device: torch.device, key: str,
                   plan: list, save: Callable) -> None:
    """Run the model set-ups of `plan` into results[key]; one that fails (out of memory, a
    torch.compile error) is noted in results["skipped"] and the rest still run."""
    for name, kw in plan:
        margin = 100 if kw.get("compile_") else 25 if device.type == "cuda" else 10
        if time.time() > args.deadline - margin:
            results["skipped"].append(f"{name}: out of --budget-s")
            continue
        torch.backends.cudnn.benchmark = kw.pop("benchmark", True) and device.type == "cuda"
        try:
            results[key].append(model_case(args, device, name, **kw))
            print(f"  {name}: {results[key][-1]['items_per_s']:.4g}/s", flush=True)
        except RuntimeError as e:
            results["skipped"].append(f"{name}: {type(e).__name__}: {str(e)[:300]}")
        finally:
            torch.backends.cudnn.benchmark = device.type == "cuda"
        save()


def host_to_device(results: dict, device: torch.device, seconds: float) -> None:
    """Host-to-GPU copies of a 3D training batch, pageable against pinned memory (the loaders'
    choice)."""
    x = torch.randint(0, 256, (32, 16, 224, 224, 3), dtype=torch.uint8)
    for name, src in (("pageable", x), ("pinned", x.pin_memory())):
        s = timed_calls(lambda: (src.to(device, non_blocking=True), sync(device)), seconds)
        results["gpu"][f"h2d_{name}_GBps"] = x.nbytes / s / 1e9
