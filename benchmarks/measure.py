"""What benchmark.py measures, one function per measurement; benchmark.py runs them, reports, projects.

Every measure_* function appends rows (plain dicts) to the results dict R and calls save() after each
step, so a run cut short keeps what it measured. Usage: see benchmark.py.
"""
import glob
import os
import subprocess
import sys
import time
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

# The assignment on UCF-101 split 1 (186 frames: UCF-101's mean video length), loaders on 16 cores.
A = dict(epochs=10, train=9537, test=3783, video_frames=186, clip=16, stride=8, cores=16)
PEAK_BF16 = [("H100 PCIe", 756), ("H100", 989), ("H200", 989), ("A100", 312)]  # dense TFLOP/s, spec sheets
LOADS = [("frame", 1, 224, 16), ("clip", 16, 224, 4), ("video", 0, 224, 1), ("clip", 16, 112, 4)]  # T 0: all
MODEL_KEYS = ["2D train", "3D train", "2D test frames", "3D test windows", "3D test full"]
# The one-core side-by-side table: our formats and the peer decoders do the same work on the same
# random clips (16 frames) and frames (1): decode, resize to 224 px (no augmentation: peers have none), uint8.
SAME_WORK = (("uint8 clip", 16), ("uint8 frame", 1))
NO_AUG = hf.Augment()
JOBS = 240  # pre-drawn (video, frames) pairs, cycled through by every format and peer in the same order
SHORT_VIDEO = 40  # frames of a short test video: the rehearsal's median length (UCF-101's median 165 / 4)
EXACT_STARTS = 12  # clip starts per video in the frame-exactness check (4 with --quick), spread evenly


# ----------------------------------------------------------------------------- data

def build_sets(tmp, real_dir, quick, workers):
    """Video sets in `tmp` in the three formats, one root per format holding only that copy (so
    resolve_video reads the format asked for). Returns {set: {fmt: [canonical paths]}}."""
    toy = os.path.join(tmp, "toy")
    subprocess.run([sys.executable, "-m", "tools.make_toy_ucf101", "--out", toy, "--classes", "4",
                    "--groups", "3", "--clips", "1", "--frames", str(40 if quick else A["video_frames"]),
                    "--workers", str(1 if quick else min(8, workers))], check=True, stdout=subprocess.DEVNULL,
                   cwd=REPO)
    sources = {"real": sorted(glob.glob(os.path.join(real_dir, "*.avi"))),
               "toy": sorted(glob.glob(os.path.join(toy, "UCF-101", "*", "*.avi")))}
    sets = {}
    for name, srcs in ((k, v) for k, v in sources.items() if v):
        base = os.path.join(tmp, name)
        avis = [os.path.join(base, "UCF-101", video_io.video_name(s).split("_")[1], os.path.basename(s)) for s in srcs]
        for s, a in zip(srcs, avis):
            if not os.path.exists(a):
                os.makedirs(os.path.dirname(a), exist_ok=True)
                os.symlink(os.path.abspath(s), a)
        with Pool(max(1, min(workers, 8))) as pool:
            tasks = [(a, "avi", video_io.store_path(a, fmt), fmt, 90) for fmt in ("hdf5", "jpeg") for a in avis]
            for src, _, _, _, err in pool.map(video_io.convert, tasks):
                if err:
                    raise RuntimeError(f"prepare_data could not convert {src}: {err}")
        sets[name] = {}
        for fmt in video_io.FORMATS:
            root = os.path.join(tmp, f"{name}-{fmt}")
            os.makedirs(root)
            os.symlink(os.path.join(base, video_io.STORE_DIRS[fmt]), os.path.join(root, video_io.STORE_DIRS[fmt]))
            sets[name][fmt] = [os.path.join(root, os.path.relpath(a, base)) for a in avis]
    return sets


def timed_calls(fn, seconds, n_min=2, warm=1):
    """Median seconds per call of fn() over at least `seconds` and n_min calls, after `warm` calls
    (the median: other people's jobs on a shared machine slow some calls down)."""
    for _ in range(warm):
        fn()
    times, end = [], time.perf_counter() + seconds
    while len(times) < n_min or time.perf_counter() < end:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def loader_rate(paths, frames, size, batch, workers, seconds):
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
        n, nb, nf = n + len(b["label"]), nb + 1, nf + (len(b["label"]) if frames == 1 else b["video"].shape[:2].numel())
        if nb >= 2 and time.perf_counter() - t0 > seconds:
            break
    dt = time.perf_counter() - t0
    del loader  # shuts the persistent workers down
    return n / dt, nf / dt


def evict(path):
    """Drop a video's file from the page cache (this file only), so that its next read hits the disk."""
    fd = os.open(video_io.resolve_video(path)[1], os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def jpeg_bytes(path, n=None):
    """The JPEG byte strings of a compact-store video's first n frames (all when None)."""
    with h5py.File(video_io.resolve_video(path)[1], "r") as h:
        return h["jpeg"][:n]


# ----------------------------------------------------------------------------- peer decoders

def pyav_frames(path, indices, reformatter=True):
    """PyAV used frame-exactly: decode from the start on one thread, counting frames, converting the
    ones asked for (sorted unique `indices`) to uint8 RGB (N, H, W, 3): through one VideoReformatter
    (its swscale context reused: PyAV at its fastest), or frame.to_ndarray (reformatter=False: the
    documented way, which sets up a swscale context per frame)."""
    rgb = VideoReformatter() if reformatter else None
    with av.open(path) as c:
        stream = c.streams.video[0]
        stream.thread_count = 1
        want, out = set(indices), []
        for i, frame in enumerate(c.decode(stream)):
            if i in want:
                out.append(rgb.reformat(frame, format="rgb24").to_ndarray() if rgb else
                           frame.to_ndarray(format="rgb24"))
            if i >= indices[-1]:
                break
    return np.stack(out)


def pyav_pts_frames(path, indices):
    """PyAV seeking by timestamp, as its documentation suggests: seek to the keyframe before
    indices[0] (an AVI timestamp counts frames), keep the frames whose timestamp is asked for. Not
    frame-exact on packed-bitstream DivX, whose decoded timestamps run 1, 2, 4, 3, 5, ...: only in the
    exactness check."""
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


def torchcodec_frames(path, indices):
    """torchcodec (when installed): its exact-seek decoder, one FFmpeg thread, frames by index."""
    from torchcodec.decoders import VideoDecoder
    dec = VideoDecoder(path, dimension_order="NHWC", num_ffmpeg_threads=1, seek_mode="exact")
    return dec.get_frames_at([int(i) for i in indices]).data.numpy()


def peer_readers(R):
    """{format name: read(path, sorted unique indices) -> uint8 RGB (N, H, W, 3)} for the peer
    decoders installed; a note for each one missing."""
    readers = {"pyav": pyav_frames, "pyav, frame.to_ndarray": lambda p, idx: pyav_frames(p, idx, reformatter=False)}
    try:
        import torchcodec.decoders  # noqa: F401
        readers["torchcodec"] = torchcodec_frames
    except (ImportError, OSError, RuntimeError) as e:  # not installed, or its FFmpeg libraries missing
        note = f"torchcodec not measured ({type(e).__name__}: {str(e)[:120]})"
        R["notes"] += [note] * (note not in R["notes"])
    return readers


def reference_frames(path):
    """Every frame of an AVI decoded by OpenCV one by one from the start (independent of PyAV and of
    our reader): uint8 RGB (T, H, W, 3)."""
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


def frame_exactness(name, avis, readers, starts):
    """Rows (one per video and reader) of 16-frame clips at `starts` positions spread over each video,
    read by each reader and compared with `reference_frames`: clips checked and clips exact."""
    rows = []
    for p in avis:
        real = video_io.resolve_video(p)[1]
        ref = reference_frames(real)
        for fmt, read in readers.items():
            clips = [np.arange(s, s + A["clip"]) for s in
                     np.unique(np.linspace(0, len(ref) - A["clip"], starts).astype(int))]
            exact = sum(int(np.array_equal(read(real, idx), ref[idx])) for idx in clips)
            rows.append(dict(set=name, format=fmt, video=video_io.video_name(p), clips=len(clips), exact=exact))
    return rows


def same_work_calls(fmts, readers, rng):
    """{(format, kind): call} for the side-by-side table: each call reads the next pre-drawn random
    clip or frame (the same sequence for every format and peer), resizes it to 224 px and returns uint8
    (T, 224, 224, 3). Our formats go through read_frames (one open, as training reads); peers get the AVI."""
    avis = [video_io.resolve_video(p)[1] for p in fmts["avi"]]
    jobs = {kind: [(k, hf.clip_indices(video_io.count_frames(avis[k]), T, rng))
                   for k in rng.integers(len(avis), size=JOBS)] for kind, T in SAME_WORK}
    calls = {}
    for kind, _ in SAME_WORK:
        for fmt in video_io.FORMATS:
            it = iter(jobs[kind] * 10**4)
            calls[fmt, kind] = lambda it=it, ps=fmts[fmt]: (lambda k, idx: hf.apply_augment(
                video_io.read_frames(ps[k], lambda n: idx), NO_AUG, 224))(*next(it))
        for fmt, read in readers.items():
            it = iter(jobs[kind] * 10**4)
            calls[fmt, kind] = lambda it=it, read=read: (lambda k, idx: hf.apply_augment(
                read(avis[k], idx), NO_AUG, 224))(*next(it))
    return calls


def jpeg_fast_error(fmts):
    """Mean absolute error (grey levels) that simplejpeg's fast DCT and fast upsampling add to the
    compact store's frames, against its exact decode, over every frame of the set."""
    errs = []
    for p in fmts["jpeg"]:
        for b in jpeg_bytes(p):
            exact = simplejpeg.decode_jpeg(b, "RGB").astype(np.int16)
            errs.append(np.abs(simplejpeg.decode_jpeg(b, "RGB", fastdct=True, fastupsample=True) - exact).mean())
    return float(np.mean(errs))


def measure_data(R, sets, args, save, gpu=False, loaders=True):
    for name, fmts in sets.items():
        for fmt, ps in fmts.items():
            R["bytes"].append(dict(set=name, format=fmt, videos=len(ps),
                                   mean_frames=np.mean([video_io.count_frames(p) for p in ps]),
                                   bytes_per_video=np.mean([os.path.getsize(video_io.resolve_video(p)[1])
                                                            for p in ps])))
    rng = np.random.default_rng(0)
    for name, fmts in sets.items():
        for kind, frames, size, batch in (LOADS[:3] if args.quick else LOADS) if loaders else ():
            # a GPU node: the training batch (per-batch costs of moving data between processes count)
            batch = {"frame": 100, "clip": 32}.get(kind, batch) if gpu else batch
            for fmt in ("jpeg", "hdf5", "avi"):
                for w in [1] if args.quick and fmt != "jpeg" else sorted({1, args.workers}):
                    if time.time() > args.deadline - args.seconds - 10:
                        R["skipped"].append(f"loader {name}/{kind}{size}/{fmt}/{w} workers: out of --budget-s")
                        continue
                    clips, fps = loader_rate(fmts[fmt], frames, size, batch, w, args.seconds)
                    R["loaders"].append(dict(set=name, format=fmt, kind=kind, size=size, workers=w, batch=batch,
                                             clips_per_s=clips, frames_per_s=fps))
                    print(f"  loader {name}/{kind}{size}/{fmt}, {w} workers: {clips:.4g}/s", flush=True)
                    save()
        if time.time() > args.deadline - 15 * args.seconds - 10:
            R["skipped"].append(f"one-core loaders and AVI seek on {name}: out of --budget-s")
            continue
        it = {fmt: iter(ps * 10**4) for fmt, ps in fmts.items()}
        cold = lambda p: (evict(p), hf.load_clip(p, True, 224, 16, rng))
        kinds = (("loadFrame", lambda p: hf.loadFrame((p, True), size=224, rng=rng)),  # the assignment's float loaders
                 ("loadSequence", lambda p: hf.loadSequence((p, True), size=224, rng=rng)),
                 ("uint8 clip, cold", cold))
        calls = {(f, k): (lambda f=f, fn=fn: fn(next(it[f]))) for f in ("jpeg", "hdf5", "avi") for k, fn in kinds}
        readers = peer_readers(R)
        calls.update(same_work_calls(fmts, readers, rng))
        # the decoder levers: simplejpeg's fast DCT and upsampling (the error they add is measured below)
        fast = lambda b: [simplejpeg.decode_jpeg(x, "RGB", fastdct=True, fastupsample=True) for x in b]
        avi = iter([(p, hf.clip_indices(video_io.count_frames(p), A["clip"], rng)) for p in fmts["avi"] * 10**3])
        calls["avi", "seek"] = lambda: video_io.read_frames(*next(avi))
        # the JPEG decoder lever: the same 16-frame clips through cv2.imdecode and simplejpeg
        jb = iter([jpeg_bytes(p, A["clip"]) for p in fmts["jpeg"]] * 10**4)
        calls["jpeg", "16 JPEGs, cv2.imdecode"] = lambda: [cv2.imdecode(b, cv2.IMREAD_COLOR_RGB) for b in next(jb)]
        calls["jpeg", "16 JPEGs, simplejpeg"] = lambda: video_io._decode_all(next(jb), "", np.arange(A["clip"]))
        calls["jpeg", "16 JPEGs, simplejpeg fast"] = lambda: fast(next(jb))
        calls["avi", "decode all"] = lambda: (lambda p, i: video_io.read_frames(p)[i])(*next(avi))
        best, rounds, threads = {}, 1 if args.quick else 3, torch.get_num_threads()
        torch.set_num_threads(1)  # one core, as in a DataLoader worker (normalize runs in torch)
        for _ in range(rounds):  # interleaved rounds, the best kept: other jobs on a shared machine come and go
            for k, fn in calls.items():
                best[k] = min(best.get(k, np.inf), timed_calls(fn, args.seconds / rounds))
        torch.set_num_threads(threads)
        R["one_core"] += [dict(set=name, format=f, kind=k, clips_per_s=1 / s) for (f, k), s in best.items()]
        R["jpeg_decoder"].append(dict(set=name, cv2_clips_per_s=1 / best["jpeg", "16 JPEGs, cv2.imdecode"],
                                      simplejpeg_clips_per_s=1 / best["jpeg", "16 JPEGs, simplejpeg"],
                                      fast_clips_per_s=1 / best["jpeg", "16 JPEGs, simplejpeg fast"],
                                      fast_mean_abs_error=jpeg_fast_error(fmts)))
        exact = {f: r for f, r in readers.items() if f != "pyav, frame.to_ndarray"}  # the same frames as "pyav"
        R["exactness"] += frame_exactness(name, fmts["avi"], {"avi": lambda p, idx: video_io.read_frames(p, idx),
                                                              **exact, "pyav, seek by pts": pyav_pts_frames},
                                          4 if args.quick else EXACT_STARTS)
        seek, full = best["avi", "seek"], best["avi", "decode all"]
        R["seek"].append(dict(set=name, seek_ms=1e3 * seek, decode_all_ms=1e3 * full, speedup=full / seek))
        save()


# ----------------------------------------------------------------------------- models

def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_tflops(device):
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else ""
    return next((p for k, p in PEAK_BF16 if gpu and all(w in gpu for w in k.split())), None)


def model_setup(args, device, kind, train=True, channels_last=True):
    """The assignment's FineTune model (trained: layer4[2] + fc in 2D, layer4[0] + fc in 3D; else fc only)
    and its Adam, placed as the training scripts place them. Returns (net, optimizer)."""
    lb = 1 if kind == "3d" else None
    if kind == "3d":
        model = resnet_3d.build(args.arch_3d, num_classes=101, layer4_blocks=lb)
    else:
        model = getattr(torchvision.models, args.arch_single_frame)(weights=None, num_classes=101)
    top = "layer4.0" if kind == "3d" else f"layer4.{len(model.layer4) - 1}"  # the assignment's (resnet50: layer4.2)
    net = engine.FineTune(model, top if train else "fc", lb).to(device)
    if channels_last and device.type == "cuda":
        net = net.to(memory_format=torch.channels_last_3d if kind == "3d" else torch.channels_last)
    net.train(train)
    return net, torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-4)


def pipeline_rate(args, device, paths, kind, decode, workers, batch, n, copy_ahead=False):
    """Training samples/s fed by the real loader: ClipDataset (gpu_decode.JpegClipDataset for decode
    "device") + make_loader with `workers` workers, through engine.train_one_epoch (normalize, forward, backward,
    Adam). Timed over the second of two epochs of n samples, so worker start-up is left out."""
    frames = 16 if kind == "3d" else 1
    ps = (list(paths) * (n // len(paths) + 1))[:n]
    ds = hf.ClipDataset(ps, np.zeros(n, dtype=np.int64), True, args.size, frames)
    batches = loader = hf.make_loader(ds, batch, True, workers)
    net, opt = model_setup(args, device, kind)
    mean, std = engine.input_stats({"kind": kind})
    failures = engine.FailureLog(rank=1)  # rank 1: no progress bar, no messages
    for epoch in range(2):
        loader.sampler.set_epoch(epoch)
        sync(device)
        t = time.perf_counter()
        r = engine.train_one_epoch(net, opt, batches, device, mean, std, failures, rank=1)
        sync(device)
    if failures.count:
        raise RuntimeError(f"{failures.count} samples failed to load in the pipeline benchmark")
    del loader  # shuts the persistent workers down
    return r["n"] / (time.perf_counter() - t)


def measure_pipeline(R, sets, args, device, save):
    """The data path against the model in training: samples/s with each --decode, next to the model
    alone (random uint8 input already on the device)."""
    name = "toy" if "toy" in sets else next(iter(sets))
    alone = {r["kind"]: r["items_per_s"] for r in R["models"] if r["mode"] == "train"}
    gpu = device.type == "cuda"
    for kind, batch in (("3d", 32 if gpu else 2), ("single_frame", 100 if gpu else 4)):
        # GPU: epochs of the assignment's size, since each epoch start waits for the workers' first batches
        n = A["train"] if gpu else 2 * batch
        # the training scripts' default --workers is min(8, cores): does decoding on the device need more?
        # copy ahead: the workers' batches copied to the device in a thread (a lever, off in training)
        W = args.workers
        for decode, w, ahead in [("worker", W, False)]:
            if time.time() > args.deadline - 4 * n / alone.get(kind, 1) - 20:
                R["skipped"].append(f"pipeline {kind}/{decode}{' copy ahead' * ahead}/{w} workers: out of --budget-s")
                continue
            rate = pipeline_rate(args, device, sets[name]["jpeg"], kind, decode, w, batch, n, ahead)
            R["pipeline"].append(dict(set=name, kind=kind, decode=decode, copy_ahead=ahead, batch=batch,
                                      size=args.size, workers=w, samples_per_s=rate, model_alone_per_s=alone.get(kind),
                                      fraction_of_model=rate / alone[kind] if kind in alone else None))
            print(f"  pipeline {kind}, decode {decode}{', copy ahead' * ahead}, {w} workers: {rate:.4g}/s", flush=True)
            save()


def model_case(args, device, name, kind, batch, frames, mode="train", amp=True, channels_last=True, compile_=False):
    """One set-up's seconds per step, items/s and FLOPs. mode "train": uint8 (B, T, S, S, 3) on the device
    -> normalize -> FineTune -> loss -> backward -> Adam. Else one uint8 video (T, S, S, 3), pinned on the
    host as the loader hands it over, through scoring.logits_of: its frames ("frames") or its
    scoring.window_inputs ("windows" / "full")."""
    S, gpu, train = args.size, device.type == "cuda", mode == "train"
    net, opt = model_setup(args, device, kind, train, channels_last)
    mean, std = engine.input_stats({"kind": kind})
    cast = lambda: engine.autocast(device) if amp else torch.autocast(device.type, enabled=False)
    if train:
        x = torch.randint(0, 256, (batch, S, S, 3) if kind == "single_frame" else (batch, frames, S, S, 3),
                          dtype=torch.uint8, device=device)
        y = torch.randint(0, 101, (batch,), device=device)

        def step(m):
            with cast():
                loss = F.cross_entropy(m(hf.normalize(x, mean, std)).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    else:
        video = torch.randint(0, 256, (frames, S, S, 3), dtype=torch.uint8)
        video = video.pin_memory() if gpu else video

        def step(m):
            with torch.inference_mode(), cast():
                x = video if mode == "frames" else scoring.window_inputs(video.to(device, non_blocking=True), mode,
                                                                         A["clip"], A["stride"])
                return scoring.logits_of(m, x, device, mean, std, batch)
    with FlopCounterMode(display=False) as fc:  # on CPU also the warm-up
        step(net)
    fwd = torch.compile(net) if compile_ else net
    s = timed_calls(lambda: (step(fwd), sync(device)), args.seconds, warm=3 if gpu or compile_ else 0)  # autotuning
    flops, peak = fc.get_total_flops(), peak_tflops(device)
    items = {"train": batch, "frames": frames, "full": frames,
             "windows": len(scoring.window_starts(frames, A["clip"], A["stride"]))}[mode]
    r = dict(name=name, kind=kind, mode=mode, batch=batch, size=S, frames=frames, compiled=compile_,
             dtype="bf16 autocast" if amp and gpu else "fp32", cudnn_benchmark=torch.backends.cudnn.benchmark,
             memory_format="contiguous" if not (channels_last and gpu) else
             "channels_last_3d" if kind == "3d" else "channels_last",
             s_per_step=s, items_per_s=items / s, frames_per_s=(batch * frames if train else frames) / s,
             gflop_per_step=flops / 1e9, tflops=flops / s / 1e12)
    if peak:
        r["peak_fraction"] = r["tflops"] / peak
    return r


def model_plan(args, device):
    """(name, model_case kwargs): the assignment's set-ups (smaller batches and videos on CPU); levers:
    short test videos batched, and on GPU dtype, memory format, cudnn.benchmark and torch.compile."""
    gpu, T = device.type == "cuda", A["video_frames"] if device.type == "cuda" else 32
    b2, b3 = (100, 32) if gpu else (4, 2) if args.quick else (8, 2)
    cases = [dict(kind="single_frame", batch=b2, frames=1), dict(kind="3d", batch=b3, frames=16),
             dict(kind="single_frame", batch=200 if gpu else T, frames=T, mode="frames"),
             dict(kind="3d", batch=32, frames=T, mode="windows"), dict(kind="3d", batch=1, frames=T, mode="full")]
    # test scripts: one short video's frames / windows alone against short videos batched together
    # (scoring.score_videos batches them up to the forward pass's size); items/s side by side
    frames, windows = scoring.FRAME_BATCH, scoring.WINDOW_BATCH  # the test scripts' forward pass
    levers = [("2D test one short video", dict(cases[2], batch=frames, frames=SHORT_VIDEO)),
              ("2D test short videos batched", dict(cases[2], batch=frames, frames=frames)),
              ("3D test one short video", dict(cases[3], batch=windows, frames=SHORT_VIDEO)),
              ("3D test short videos batched", dict(cases[3], batch=windows,
                                                    frames=A["clip"] + (windows - 1) * A["stride"]))]
    levers += [] if not gpu else [
        ("3D train fp32", dict(cases[1], amp=False)), ("3D train contiguous", dict(cases[1], channels_last=False)),
        ("3D train no cudnn.benchmark", dict(cases[1], benchmark=False)),
        ("2D train fp32", dict(cases[0], amp=False)), ("2D train contiguous", dict(cases[0], channels_last=False)),
        ("2D test 800 frames at once", dict(cases[2], batch=800, frames=800)),
        ("3D test 128 windows at once", dict(cases[3], batch=128, frames=A["clip"] + 127 * A["stride"]))]
    if gpu and args.compile:
        levers += [("3D train torch.compile", dict(cases[1], compile_=True)),
                   ("2D train torch.compile", dict(cases[0], compile_=True))]
    return list(zip(MODEL_KEYS, cases)), levers


def measure_models(R, args, device, key, plan, save):
    for name, kw in plan:
        if time.time() > args.deadline - (100 if kw.get("compile_") else 25 if device.type == "cuda" else 10):
            R["skipped"].append(f"{name}: out of --budget-s")
            continue
        torch.backends.cudnn.benchmark = kw.pop("benchmark", True) and device.type == "cuda"
        try:
            R[key].append(model_case(args, device, name, **kw))
            print(f"  {name}: {R[key][-1]['items_per_s']:.4g}/s", flush=True)
        except RuntimeError as e:  # out of memory, a torch.compile failure: note it, measure the rest
            R["skipped"].append(f"{name}: {type(e).__name__}: {str(e)[:300]}")
        finally:
            torch.backends.cudnn.benchmark = device.type == "cuda"
        save()


def gpu_levers(R, sets, device, seconds):
    """Host-to-GPU copies of a 3D batch (pageable vs pinned), and decoding the compact store's JPEGs on
    the GPU (nvJPEG through torchvision): the way to feed a GPU faster than the CPU cores decode."""
    x = torch.randint(0, 256, (32, 16, 224, 224, 3), dtype=torch.uint8)
    for name, src in (("pageable", x), ("pinned", x.pin_memory())):
        s = timed_calls(lambda: (src.to(device, non_blocking=True), sync(device)), seconds)
        R["gpu"][f"h2d_{name}_GBps"] = x.nbytes / s / 1e9
    try:
        from torchvision.io import decode_jpeg
        bufs = [torch.from_numpy(b) for p in next(iter(sets.values()))["jpeg"] for b in jpeg_bytes(p)]
        batch = (bufs * (512 // len(bufs) + 1))[:512]
        s = timed_calls(lambda: (decode_jpeg(batch, device=device), sync(device)), seconds)
        R["gpu"].update(nvjpeg_frames_per_s=512 / s, nvjpeg_set=next(iter(sets)))
    except (ImportError, RuntimeError) as e:
        R["notes"].append(f"GPU JPEG decoding not measured: {str(e)[:200]}")
