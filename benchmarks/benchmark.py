"""Benchmark the data path and the models, and project the time of the whole assignment.

Usage: python benchmark.py [--quick] [--device auto|cpu|cuda] [--workers N] [--budget-s 360] [--compile]
                           [--only one-core] [--out runs/benchmark.json]
       python benchmark.py --from-json runs/benchmark.json --model-json runs/bench_gpu.json   (re-project)

All figures of a run are measured side by side on the same videos: the real UCF-101 clips in
../shared/data/videos (skipped with a note when absent) and toy videos at 320x240, each converted by
prepare_data into a temporary root in the three formats: AVI, the course's raw uint8 HDF5 and our
compact JPEG store. Loaders run the training path (ClipDataset / VideoDataset + make_loader: uint8,
augmentation on) with 1 and N workers, from the page cache; on one core we also time the assignment's
float loaders and a clip read cold (file evicted from the page cache: the disk, as at full scale), and
our formats side by side with the peer decoders (PyAV; torchcodec when installed) doing the same work,
with a frame-exactness check of every AVI decoder against decoding from the start (`--only one-core`:
that table alone, a few minutes).
Models run the training set-ups through engine.FineTune (forward, backward, Adam) and the test
scripts' inference functions, naming dtype, batch, memory format and, on GPU, TFLOP/s against the
dense bf16 peak. The JSON is rewritten after every step, so a run cut short keeps what it measured.
The measurements themselves are in measure.py; this script runs them, projects and reports.
"""
import argparse
import json
import os
import tempfile
import time

import numpy as np
import torch

import engine
import scoring
from benchmarks import measure
from benchmarks.measure import MODEL_KEYS, A
from utils import atomic_write

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small batches, fewer loader cases: < 2 min on 2 cores")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--workers", type=int, default=os.cpu_count(), help="N of the N-worker loader figures")
    p.add_argument("--seconds", type=float, default=None, help="time per measurement (default 2, quick 0.4)")
    p.add_argument("--budget-s", type=float, default=0, help="start no measurement after this (0: no limit)")
    p.add_argument("--compile", action="store_true", help="also measure torch.compile (GPU only)")
    p.add_argument("--size", type=int, default=None, help="model input size (default 224; quick on CPU: 112)")
    p.add_argument("--arch-single-frame", default="resnet50")
    p.add_argument("--arch-3d", default="resnet50")
    p.add_argument("--real-videos", default=os.path.join(REPO, "..", "shared", "data", "videos"))
    p.add_argument("--only", choices=["one-core"], default=None,
                   help="one-core: only the one-core loader tables (ours against the peer decoders)")
    p.add_argument("--from-json", default=None, help="measure nothing: report this earlier run again")
    p.add_argument("--model-json", default=None, help="project with this run's model figures (e.g. the GPU's)")
    p.add_argument("--out", default="runs/benchmark.json")
    return p.parse_args(argv)


# ----------------------------------------------------------------------------- projection + report

def derive(R, models, pipeline):
    """Clips/s that 3D training consumes against what the compact-store loader delivers on A["cores"]
    cores (measured with that many workers, else the 1-worker rate x cores), and the assignment's
    projected time: per phase the slower of model and loader, since loading overlaps compute; a
    training phase measured end to end (`pipeline`, its best --decode) takes that rate instead."""
    m = {r["name"]: r["items_per_s"] for r in models}
    pipe = {}
    for r in (r for r in pipeline if not r.get("copy_ahead")):  # the training scripts' settings only
        if r["kind"] not in pipe or r["samples_per_s"] > pipe[r["kind"]]["samples_per_s"]:
            pipe[r["kind"]] = r
    name = next((s for s in ("real", "toy") if any(r["set"] == s for r in R["loaders"])), None)
    C, E, T, VF = A["cores"], A["epochs"], A["test"], A["video_frames"]
    rate = {(r["kind"], r["size"], r["workers"]): r for r in R["loaders"] if (r["set"], r["format"]) == (name, "jpeg")}
    if not set(MODEL_KEYS) <= set(m) or not {("frame", 224, 1), ("clip", 224, 1), ("video", 224, 1)} <= set(rate):
        return {}
    on_cores = lambda k, unit: rate[(*k, C)][unit] if (*k, C) in rate else rate[(*k, 1)][unit] * C
    test_load = T * VF / on_cores(("video", 224), "frames_per_s")
    phases = {  # (model seconds, loader seconds)
        "2D training": (E * (A["train"] / m["2D train"] + T / m["2D test frames"]),
                        E * (A["train"] + T) / on_cores(("frame", 224), "clips_per_s")),
        "3D training": (E * (A["train"] / m["3D train"] + T / m["3D test windows"]),
                        E * (A["train"] + T) / on_cores(("clip", 224), "clips_per_s")),
        "2D full-video test": (T * VF / m["2D test frames"], test_load),
        "3D full-video test, windows": (T * len(scoring.window_starts(VF, A["clip"], A["stride"]))
                                        / m["3D test windows"], test_load),
        "3D full-video test, full": (T * VF / m["3D test full"], test_load)}
    for kind, key in (("single_frame", "2D training"), ("3d", "3D training")):  # measured end to end: loader included
        if kind in pipe:
            test = T / m["2D test frames" if kind == "single_frame" else "3D test windows"]
            phases[key] = (E * (A["train"] / pipe[kind]["samples_per_s"] + test), None)
    t = {k: max(x for x in v if x is not None) for k, v in phases.items()}
    base = t["2D training"] + t["3D training"] + t["2D full-video test"]
    d = dict(loader_set=name, cores=C, need_3d_clips_per_s=m["3D train"],
             loader_clips_per_s_per_core=rate[("clip", 224, 1)]["clips_per_s"],
             loader_clips_per_s_on_cores=on_cores(("clip", 224), "clips_per_s"),
             loader_measured_on_cores=("clip", 224, C) in rate,
             phases={k: dict(model_s=a, loader_s=b) for k, (a, b) in phases.items()},
             total_min_windows=(base + t["3D full-video test, windows"]) / 60,
             total_min_full=(base + t["3D full-video test, full"]) / 60)
    if "nvjpeg_frames_per_s" in R["gpu"]:
        d["gpu_decode_clips_per_s"] = R["gpu"]["nvjpeg_frames_per_s"] / A["clip"]
    d["end_to_end"] = {k: dict(decode=r["decode"], samples_per_s=r["samples_per_s"],
                               fraction_of_model=r["fraction_of_model"]) for k, r in pipe.items()}
    return d


def num(x):
    return "-" if x is None or x != x else f"{x:.0f}" if abs(x) >= 100 else f"{x:.1f}" if abs(x) >= 10 else f"{x:.2f}"


def table(title, header, rows):
    w = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    print(f"\n{title}")
    for r in [header] + rows:
        print("  ".join(str(c).ljust(n) if i == 0 else str(c).rjust(n) for i, (c, n) in enumerate(zip(r, w))))


def report(R):
    raw = {r["set"]: r["bytes_per_video"] for r in R["bytes"] if r["format"] == "hdf5"}
    table("Bytes per video (compact store: JPEG quality 90)", ["set/format", "frames", "MB/video", "raw/this"],
          [[f"{r['set']}/{r['format']}", num(r["mean_frames"]), f"{r['bytes_per_video'] / 1e6:.3f}",
            num(raw[r["set"]] / r["bytes_per_video"])] for r in R["bytes"]])
    N = R["meta"]["workers"]
    get = {(r["set"], r["kind"], r["size"], r["format"], r["workers"]): r for r in R["loaders"]}
    batches = ", ".join(dict.fromkeys(f"{r['kind']} {r['batch']}" for r in R["loaders"] if "batch" in r))
    table(f"Loaders, uint8 training path: samples (a frame, a 16-frame clip or a whole video) per second "
          f"(batches: {batches})",
          ["set/kind/format", "1w samples/s", "1w frames/s", f"{N}w samples/s", f"{N}w frames/s"],
          [[f"{s}/{k}{size}/{f}"] + [num(get.get((s, k, size, f, n), {}).get(u)) for n in (1, N)
                                     for u in ("clips_per_s", "frames_per_s")]
           for (s, k, size, f, w) in get if w == 1])
    one = {(r["set"], r["format"], r["kind"]): r["clips_per_s"] for r in R["one_core"]}
    kinds = ["loadFrame", "loadSequence", "uint8 clip", "uint8 clip, cold"]
    table("One core, no workers: the assignment's float loaders and the uint8 clip path, from the page cache and "
          "cold (file evicted first)", ["set/format"] + [k + "/s" for k in kinds],
          [[f"{s}/{f}"] + [num(one.get((s, f, k))) for k in kinds]
           for s, f in dict.fromkeys((r["set"], r["format"]) for r in R["one_core"] if r["kind"] in kinds)])
    same = [k for k, _ in measure.SAME_WORK]
    rows = []
    for s, f in dict.fromkeys((r["set"], r["format"]) for r in R["one_core"] if r["kind"] in same):
        rows.append([f"{s}/{f}"] + [x for k in same for x in (
            num(one.get((s, f, k))), num(one.get((s, f, k), np.nan) / one.get((s, "pyav", k), np.nan)))])
    table("One core, the same work for our formats and the peer decoders: the same random 16-frame clips and "
          "single frames, decoded, resized to 224 px, uint8", ["set/format"] + [x for k in same
                                                               for x in (f"{k}/s", "x PyAV")], rows)
    ex = {}
    for r in R.get("exactness", []):
        e = ex.setdefault((r["set"], r["format"]), dict(videos=0, exact_videos=0, clips=0, exact=0, off=[]))
        e["videos"], e["exact_videos"] = e["videos"] + 1, e["exact_videos"] + (r["exact"] == r["clips"])
        e["clips"], e["exact"] = e["clips"] + r["clips"], e["exact"] + r["exact"]
        e["off"] += [r["video"]] * (r["exact"] < r["clips"])
    table("Frame-exactness: 16-frame clips spread over each AVI, read by each decoder, against the same frames "
          "decoded one by one from the start (OpenCV)", ["set/decoder", "videos exact", "clips exact", "not exact"],
          [[f"{s}/{f}", f"{e['exact_videos']}/{e['videos']}", f"{e['exact']}/{e['clips']}", " ".join(e["off"]) or "-"]
           for (s, f), e in ex.items()])
    table("JPEG decoding, one core: the same 16 compact-store frames through cv2.imdecode and simplejpeg "
          "(the loaders'), and simplejpeg's fast DCT + fast upsampling (not used: the error it adds)",
          ["set", "cv2 clips/s", "simplejpeg clips/s", "speed-up", "fast clips/s", "fast error (grey levels)"],
          [[r["set"], num(r["cv2_clips_per_s"]), num(r["simplejpeg_clips_per_s"]),
            num(r["simplejpeg_clips_per_s"] / r["cv2_clips_per_s"]), num(r.get("fast_clips_per_s")),
            num(r.get("fast_mean_abs_error"))] for r in R.get("jpeg_decoder", [])])
    table("AVI: a random 16-frame clip by seeking vs decoding the whole video",
          ["set", "seek ms", "decode-all ms", "speed-up"],
          [[r["set"], num(r["seek_ms"]), num(r["decode_all_ms"]), num(r["speedup"])] for r in R["seek"]])
    for key in [k for k in ("models", "levers") if R[k]]:
        table(f"{key.title()} on {R['meta']['device']} (items: clips, frames or windows)",
              ["set-up", "batch", "T x size", "dtype", "memory", "items/s", "frames/s", "GFLOP/step", "TFLOP/s",
               "% peak"],
              [[r["name"], r["batch"], f"{r['frames']}x{r['size']}", r["dtype"], r["memory_format"],
                num(r["items_per_s"]), num(r["frames_per_s"]), num(r["gflop_per_step"]), f"{r['tflops']:.3g}",
                num(100 * r["peak_fraction"]) if "peak_fraction" in r else "-"] for r in R[key]])
    if R.get("pipeline"):
        table(f"Training fed by the loader ({R['pipeline'][0]['set']} compact store): --decode worker (decoded in "
              f"the workers) vs device (decode_jpeg + roi_align on {R['meta']['device']})",
              ["model", "decode", "workers", "batch", "samples/s", "model alone/s", "% of model alone"],
              [[r["kind"].upper(), r["decode"] + " + copy ahead" * bool(r.get("copy_ahead")), r["workers"], r["batch"],
                num(r["samples_per_s"]), num(r["model_alone_per_s"]),
                num(100 * r["fraction_of_model"]) if r["fraction_of_model"] else "-"] for r in R["pipeline"]])
    for k, v in R["gpu"].items():
        print(f"{k}: {v if isinstance(v, str) else num(v)}")
    d = R["derived"]
    if d:
        print(f"\n3D training consumes {num(d['need_3d_clips_per_s'])} clips/s ({R['derived_source']}); the "
              f"{d['loader_set']} compact store delivers {num(d['loader_clips_per_s_per_core'])} clips/s per worker, "
              f"{num(d['loader_clips_per_s_on_cores'])} on {d['cores']} cores "
              f"({'measured' if d['loader_measured_on_cores'] else 'per-worker rate x cores'})"
              + (f"; nvJPEG on the GPU decodes {num(d['gpu_decode_clips_per_s'])} clips/s"
                 if "gpu_decode_clips_per_s" in d else ""))
        for k, r in d.get("end_to_end", {}).items():
            print(f"{k.upper()} training end to end (loader included, --decode {r['decode']}): "
                  f"{num(r['samples_per_s'])} samples/s, {num(100 * r['fraction_of_model'])}% of the model alone")
        table(f"Projected assignment: models from {R['derived_source']}, loader on {d['cores']} cores "
              f"(loader '-': measured end to end, loader included)",
              ["phase", "model min", "loader min"],
              [[k, num(v["model_s"] / 60), num(v["loader_s"] and v["loader_s"] / 60)] for k, v in d["phases"].items()])
        print(f"total, per phase the slower of model and loader: {num(d['total_min_windows'])} min with 3D windows "
              f"testing, {num(d['total_min_full'])} min with full mode")
    for line in R["notes"] + [f"skipped {s}" for s in R["skipped"]]:
        print(f"note: {line}")


def main(args):
    t0 = time.time()
    args.seconds = args.seconds or (0.4 if args.quick else 2.0)
    args.deadline = t0 + args.budget_s if args.budget_s else float("inf")
    R = dict(meta={}, bytes=[], loaders=[], one_core=[], jpeg_decoder=[], exactness=[], seek=[], models=[], pipeline=[],
             levers=[], gpu={}, derived={}, notes=[], skipped=[])
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)

    def save():
        with atomic_write(args.out) as tmp, open(tmp, "w") as f:
            json.dump(R, f, indent=1)

    if args.from_json:
        with open(args.from_json) as f:
            R = json.load(f)
    else:
        with tempfile.TemporaryDirectory(prefix="benchmark-") as tmp:
            sets = measure.build_sets(tmp, args.real_videos, args.quick, args.workers)  # before CUDA starts: Pool forks
            device, _, _ = engine.setup(args.device)
            args.size = args.size or (112 if args.quick and device.type == "cpu" else 224)
            R["meta"] = dict(device=torch.cuda.get_device_name(device) if device.type == "cuda" else
                             f"CPU ({os.cpu_count()} cores)", torch=torch.__version__, workers=args.workers,
                             quick=args.quick, seconds=args.seconds, torch_threads=torch.get_num_threads(),
                             peak_bf16_tflops=measure.peak_tflops(device), load_average_start=os.getloadavg()[0],
                             assignment=A, data_seconds=time.time() - t0)
            if "real" not in sets:
                R["notes"].append(f"no real clips in {args.real_videos}: toy videos only")
            if args.only == "one-core":
                measure.measure_data(R, sets, args, save, loaders=False)
            else:
                main_plan, levers = measure.model_plan(args, device)
                print(f"models on {R['meta']['device']}:", flush=True)
                measure.measure_models(R, args, device, "models", main_plan, save)
                measure.measure_pipeline(R, sets, args, device, save)
                measure.measure_data(R, sets, args, save, gpu=device.type == "cuda")
                if device.type == "cuda" and time.time() < args.deadline - 10:
                    measure.gpu_levers(R, sets, device, args.seconds)
                    save()
                measure.measure_models(R, args, device, "levers", levers, save)  # torch.compile last: the slowest
        R["meta"].update(total_seconds=time.time() - t0, load_average_end=os.getloadavg()[0])
    models, pipeline, R["derived_source"] = R["models"], R.get("pipeline", []), f"this run ({R['meta']['device']})"
    if args.model_json:
        with open(args.model_json) as f:
            other = json.load(f)
        models, R["derived_source"] = other["models"], f"{args.model_json} ({other['meta']['device']})"
        pipeline = other.get("pipeline", [])  # end-to-end training rates belong to that machine
        R["gpu"] = R["gpu"] or other.get("gpu", {})  # GPU decoding rate, for the loader comparison
    R["derived"] = derive(R, models, pipeline)
    save()
    report(R)
    print(f"\nwrote {args.out} (measured in {R['meta']['total_seconds']:.0f} s)")
    return R


if __name__ == "__main__":
    main(parse_args())
