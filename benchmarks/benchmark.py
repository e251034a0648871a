"""Benchmark the data path and the models side by side, and project the time of the assignment.

Usage: python -m benchmarks.benchmark [--quick] [--device auto|cpu|cuda] [--workers N]
           [--budget-s 360] [--compile] [--only one-core] [--rounds 5] [--out runs/benchmark.json]
       python -m benchmarks.benchmark --from-json A.json [--model-json B.json]   (report again)

All figures of a run are measured side by side on the same videos: the real UCF-101 clips in
../shared/data/videos (skipped with a note when absent) and toy videos at 320x240, each converted
by prepare_data into a temporary root in the three formats: AVI, the course's raw uint8 HDF5 and
our compact JPEG store. Loaders run the training path (ClipDataset / VideoDataset + make_loader:
uint8, augmentation on) with 1 and N workers. On one core (one torch and one OpenCV thread, as in
a loader worker) it times the assignment's float loaders, a clip read cold (the file evicted from
the page cache), and our formats against the peer decoders (PyAV used as our reader uses it and
from the start; torchcodec where it loads) doing the same work, in interleaved rounds, with a
frame-exactness check of every AVI decoder (`--only one-core`: those tables alone).
Models run the training set-ups through engine.FineTune (forward, backward, Adam) and the test
scripts' inference functions. The JSON is rewritten after every step, so that a run cut short
keeps what it measured; `markdown_tables` renders it, as docs/performance.md shows it
(tools/render_docs.py). The measurements themselves are in measure.py.
"""
import argparse
import json
import os
import tempfile
import time

import torch

import engine
import scoring
import utils
from benchmarks import measure
from benchmarks.measure import ASSIGNMENT, MODEL_KEYS, SAME_WORK

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args(argv: list | None = None) -> argparse.Namespace:
    p = utils.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true",
                   help="small batches, fewer loader cases: < 2 min on 2 cores")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="where the models run (auto: the GPU when PyTorch sees one)")
    p.add_argument("--workers", type=int, default=os.cpu_count(),
                   help="N of the N-worker loader figures")
    p.add_argument("--seconds", type=float, default=None,
                   help="time per measurement (default 2, quick 0.4)")
    p.add_argument("--rounds", type=int, default=None,
                   help="interleaved rounds of the one-core tables (default 5, quick 3)")
    p.add_argument("--budget-s", type=float, default=0,
                   help="start no measurement after this (0: no limit)")
    p.add_argument("--compile", action="store_true", help="also measure torch.compile (GPU only)")
    p.add_argument("--size", type=int, default=None,
                   help="model input size (default 224; quick on CPU: 112)")
    p.add_argument("--arch-single-frame", default="resnet50",
                   help="the single-frame model's ResNet")
    p.add_argument("--arch-3d", default="resnet50", help="the 3D model's ResNet")
    p.add_argument("--real-videos", default=os.path.join(REPO, "..", "shared", "data", "videos"),
                   help="folder of real UCF-101 AVIs (skipped with a note when absent)")
    p.add_argument("--only", choices=["one-core"], default=None,
                   help="one-core: only the one-core tables (ours against the peer decoders)")
    p.add_argument("--from-json", default=None, help="measure nothing: report this run again")
    p.add_argument("--model-json", default=None,
                   help="project with this run's model figures (e.g. a GPU's)")
    p.add_argument("--out", default="runs/benchmark.json",
                   help="results JSON (e.g. docs/results/benchmark-cpu.json for the docs)")
    return p.parse_args(argv)


# ----------------------------------------------------------------------------- projection

def derive(results: dict, models: list, pipeline: list) -> dict:
    """Clips/s that 3D training consumes against what the compact-store loader delivers on
    ASSIGNMENT["cores"] cores (measured with that many workers, else the 1-worker rate x cores),
    and the assignment's projected time: per phase the slower of model and loader, since loading
    overlaps compute; a training phase measured end to end (`pipeline`) takes that rate instead."""
    m = {r["name"]: r["items_per_s"] for r in models}
    pipe = {r["kind"]: r for r in pipeline}
    name = next((s for s in ("real", "toy") if any(r["set"] == s for r in results["loaders"])),
                None)
    C, E, T, VF = (ASSIGNMENT[k] for k in ("cores", "epochs", "test", "video_frames"))
    rate = {(r["kind"], r["size"], r["workers"]): r for r in results["loaders"]
            if (r["set"], r["format"]) == (name, "jpeg")}
    needed = {("frame", 224, 1), ("clip", 224, 1), ("video", 224, 1)}
    if not set(MODEL_KEYS) <= set(m) or not needed <= set(rate):
        return {}

    def on_cores(k, unit):
        return rate[(*k, C)][unit] if (*k, C) in rate else rate[(*k, 1)][unit] * C

    train = ASSIGNMENT["train"]
    test_load = T * VF / on_cores(("video", 224), "frames_per_s")
    windows = len(scoring.window_starts(VF, ASSIGNMENT["clip"], ASSIGNMENT["stride"]))
    phases = {  # (model seconds, loader seconds)
        "2D training": (E * (train / m["2D train"] + T / m["2D test frames"]),
                        E * (train + T) / on_cores(("frame", 224), "clips_per_s")),
        "3D training": (E * (train / m["3D train"] + T / m["3D test windows"]),
                        E * (train + T) / on_cores(("clip", 224), "clips_per_s")),
        "2D full-video test": (T * VF / m["2D test frames"], test_load),
        "3D full-video test, windows": (T * windows / m["3D test windows"], test_load),
        "3D full-video test, full": (T * VF / m["3D test full"], test_load)}
    for kind, key in (("single_frame", "2D training"), ("3d", "3D training")):
        if kind in pipe:  # measured end to end: the loader is in it
            test = T / m["2D test frames" if kind == "single_frame" else "3D test windows"]
            phases[key] = (E * (train / pipe[kind]["samples_per_s"] + test), None)
    t = {k: max(x for x in v if x is not None) for k, v in phases.items()}
    base = t["2D training"] + t["3D training"] + t["2D full-video test"]
    return dict(loader_set=name, cores=C, need_3d_clips_per_s=m["3D train"],
                loader_clips_per_s_per_core=rate[("clip", 224, 1)]["clips_per_s"],
                loader_clips_per_s_on_cores=on_cores(("clip", 224), "clips_per_s"),
                loader_measured_on_cores=("clip", 224, C) in rate,
                phases={k: dict(model_s=a, loader_s=b) for k, (a, b) in phases.items()},
                total_min_windows=(base + t["3D full-video test, windows"]) / 60,
                total_min_full=(base + t["3D full-video test, full"]) / 60,
                end_to_end={k: dict(samples_per_s=r["samples_per_s"],
                                    fraction_of_model=r["fraction_of_model"])
                            for k, r in pipe.items()})


# ----------------------------------------------------------------------------- tables

def num(x: float | None) -> str:
    """A figure with three significant digits at most, thousands separated; "-" for none."""
    if x is None or x != x:
        return "-"
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.1f}" if abs(x) >= 10 else f"{x:.2f}"


def md_table(header: list, rows: list) -> str:
    """A Markdown table, the first column left-aligned and the others right-aligned."""
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def tables(results: dict) -> dict:
    """{name: (caption, Markdown table)} of every table a run has figures for, in report order."""
    out = {}
    m = results.get("meta", {})
    if m.get("device"):
        out["run"] = ("The run", md_table(
            ["machine", "PyTorch", "rounds", "load average (start, end)", "minutes"],
            [[m["device"], m["torch"], m.get("rounds", "-"),
              f"{m['load_average_start']:.1f}, {m.get('load_average_end', float('nan')):.1f}",
              num(m.get("total_seconds", float("nan")) / 60)]]))
    if results.get("bytes"):
        raw = {r["set"]: r["bytes_per_video"] for r in results["bytes"] if r["format"] == "hdf5"}
        out["disk"] = ("Bytes per video (compact store: JPEG quality 90)", md_table(
            ["videos", "format", "frames/video", "MB/video", "times smaller than raw"],
            [[r["set"], r["format"], num(r["mean_frames"]), f"{r['bytes_per_video'] / 1e6:.2f}",
              f"{raw[r['set']] / r['bytes_per_video']:.1f}x"] for r in results["bytes"]]))
    if results.get("loaders"):
        n = results["meta"]["workers"]
        sets = list(dict.fromkeys(r["set"] for r in results["loaders"]))
        get = {(r["set"], r["kind"], r["size"], r["format"], r["workers"]): r["clips_per_s"]
               for r in results["loaders"]}
        cases = dict.fromkeys((r["kind"], r["size"], r["format"]) for r in results["loaders"])
        label = {"frame": "1 frame", "clip": "16-frame clip", "video": "whole video"}
        out["loaders"] = (
            f"Samples per second through the training loader (uint8, augmentation on), with 1 "
            f"and {n} worker processes", md_table(
                ["sample", "format"] + [f"{s}, {w} worker{'s' * (w > 1)}" for s in sets
                                        for w in sorted({1, n})],
                [[f"{label[k]} {size}px", f] + [num(get.get((s, k, size, f, w))) for s in sets
                                                for w in sorted({1, n})]
                 for k, size, f in cases]))
    one = {(r["set"], r["format"], r["kind"]): r["clips_per_s"]
           for r in results.get("one_core", [])}
    kinds = ["loadFrame", "loadSequence", "uint8 clip, cold"]
    pairs = dict.fromkeys((s, f) for s, f, k in one if k in kinds)
    if pairs:
        out["one-core"] = (
            "One core: the assignment's float loaders (float32 out) and a uint8 training clip "
            "read cold (the file evicted from the page cache first), per second", md_table(
                ["videos", "format"] + [k + "/s" for k in kinds],
                [[s, f] + [num(one.get((s, f, k))) for k in kinds] for s, f in pairs]))
    rows = measure.peer_comparison(results) if one else []
    if rows:
        by = {(r["set"], r["format"], r["kind"]): r for r in rows}
        best = {(r["set"], r["kind"]): r["best_peer"] for r in rows}
        cols = []
        for _, frames in SAME_WORK:
            what = "16-frame clips" if frames > 1 else "1 frame"
            cols += [f"{what}/s", "x best peer", "faster in"]
        ratio = lambda r: f"{r['ratio']:.2f}x" if r else "-"
        wins = lambda r: f"{r['wins']}/{r['rounds']}" if r else "-"
        body = []
        for s, f in dict.fromkeys((r["set"], r["format"]) for r in rows):
            cells = []
            for kind, _ in SAME_WORK:
                r = by.get((s, f, kind))
                cells += [num(r and r["clips_per_s"]), ratio(r), wins(r)]
            exact = next(r["frame_exact"] for r in rows if (r["set"], r["format"]) == (s, f))
            body.append([s, f"{f} (ours)" if f in measure.OURS else f, *cells,
                         "-" if exact is None else "yes" if exact else "no"])
        best_text = "; ".join(f"{s} {k.replace('uint8 ', '')}s: {p}" for (s, k), p in best.items())
        out["peers"] = (
            f"One core, the same random clips and frames decoded, resized to 224 px, uint8: "
            f"medians of {rows[0]['rounds']} rounds; x best peer: the median per-round ratio to "
            f"the fastest frame-exact peer ({best_text}); faster in: rounds won against it",
            md_table(["videos", "decoder", *cols, "frame-exact"], body))
    checks = measure.source_check_cost(results)
    if checks:
        out["source-check"] = (
            "One core: the compact store read as the scripts read it, and without comparing its "
            "record with its source's size and modification time (medians of interleaved rounds)",
            md_table(["videos", "read", "with the check/s", "without/s", "cost of the check"],
                     [[r["set"], r["kind"].replace("uint8 ", ""), num(r["checked_per_s"]),
                       num(r["unchecked_per_s"]), f"{100 * r['cost']:.1f}%"] for r in checks]))
    if results.get("exactness"):
        ex = {}
        for r in results["exactness"]:
            e = ex.setdefault((r["set"], r["format"]), [0, 0, 0, 0, []])
            e[0], e[1] = e[0] + 1, e[1] + (r["exact"] == r["clips"])
            e[2], e[3] = e[2] + r["clips"], e[3] + r["exact"]
            e[4] += [r["video"]] * (r["exact"] < r["clips"])
        out["exactness"] = (
            "Frame-exactness: 16-frame clips spread over each AVI against OpenCV's decode of "
            "every frame from the start", md_table(
                ["videos", "decoder", "videos exact", "clips exact", "not exact on"],
                [[s, f, f"{e[1]}/{e[0]}", f"{e[3]}/{e[2]}", ", ".join(e[4]) or "-"]
                 for (s, f), e in ex.items()]))
    if results.get("jpeg_decoder"):
        out["jpeg"] = (
            "One core: the same 16 compact-store JPEGs decoded by cv2.imdecode and by simplejpeg "
            "(ours), and by simplejpeg's fast DCT + fast upsampling (not used: the error it adds)",
            md_table(["videos", "cv2 clips/s", "simplejpeg clips/s", "speed-up",
                      "fast clips/s", "fast error (grey levels)"],
                     [[r["set"], num(r["cv2_clips_per_s"]), num(r["simplejpeg_clips_per_s"]),
                       f"{r['simplejpeg_clips_per_s'] / r['cv2_clips_per_s']:.2f}x",
                       num(r.get("fast_clips_per_s")), num(r.get("fast_mean_abs_error"))]
                      for r in results["jpeg_decoder"]]))
    if results.get("seek"):
        out["seek"] = ("One core: a random 16-frame AVI clip by seeking (ours) against decoding "
                       "the whole video", md_table(
                           ["videos", "seek ms", "decode all ms", "speed-up"],
                           [[r["set"], num(r["seek_ms"]), num(r["decode_all_ms"]),
                             f"{r['speedup']:.1f}x"] for r in results["seek"]]))
    for key in ("models", "levers"):
        if results.get(key):
            out[key] = (f"{key.title()} on {results['meta']['device']}, PyTorch "
                        f"{results['meta']['torch']} (items: clips, frames or windows)", md_table(
                            ["set-up", "batch", "frames x size", "dtype", "memory format",
                             "items/s", "frames/s", "GFLOP/step", "TFLOP/s", "% peak"],
                            [[r["name"], r["batch"], f"{r['frames']}x{r['size']}", r["dtype"],
                              r["memory_format"], num(r["items_per_s"]), num(r["frames_per_s"]),
                              num(r["gflop_per_step"]), f"{r['tflops']:.3g}",
                              num(100 * r["peak_fraction"]) if "peak_fraction" in r else "-"]
                             for r in results[key]]))
    if results.get("pipeline"):
        p = results["pipeline"]
        out["pipeline"] = (
            f"Training fed by the loader ({p[0]['set']} compact store, decoded in the workers) "
            f"against the model alone on {results['meta']['device']}", md_table(
                ["model", "workers", "batch", "samples/s", "model alone/s", "% of model alone"],
                [[r["kind"].replace("single_frame", "2D").replace("3d", "3D"), r["workers"],
                  r["batch"], num(r["samples_per_s"]), num(r["model_alone_per_s"]),
                  num(100 * r["fraction_of_model"]) if r["fraction_of_model"] else "-"]
                 for r in p]))
    gpu = {k: v for k, v in results.get("gpu", {}).items() if k.startswith("h2d_")}
    if gpu:
        out["host-to-device"] = ("Host-to-GPU copies of a 3D training batch", md_table(
            ["memory", "GB/s"], [[k[4:-5], num(v)] for k, v in gpu.items()]))
    d = results.get("derived")
    if d:
        rows = [[k, num(v["model_s"] / 60), num(v["loader_s"] and v["loader_s"] / 60)]
                for k, v in d["phases"].items()]
        rows += [["**total**, 3D tested in windows", "", f"**{num(d['total_min_windows'])}**"],
                 ["**total**, 3D tested whole", "", f"**{num(d['total_min_full'])}**"]]
        out["projection"] = (
            f"Projected assignment (minutes): models from {results['derived_source']}, "
            f"loaders on {d['cores']} cores, per phase the slower of the two ('-': measured "
            f"end to end, loader included)", md_table(["phase", "model", "loader"], rows))
    return out


def markdown_tables(results: dict, names: list | None = None) -> str:
    """The tables of a run (`names`: these only, in that order) as Markdown, each under its
    caption: what docs/performance.md shows between its generated-block markers."""
    got = tables(results)
    missing = [n for n in names or () if n not in got]
    if missing:
        raise KeyError(f"no figures for table(s) {', '.join(missing)} in these results "
                       f"(it has {', '.join(got) or 'none'})")
    return "\n\n".join(f"{got[n][0]}:\n\n{got[n][1]}" for n in names or got)


def report(results: dict) -> None:
    print("\n" + markdown_tables(results))
    for line in results["notes"] + [f"skipped {s}" for s in results["skipped"]]:
        print(f"note: {line}")


# ----------------------------------------------------------------------------- main

def main(args: argparse.Namespace) -> dict:
    t0 = time.time()
    args.seconds = args.seconds or (0.4 if args.quick else 2.0)
    args.rounds = args.rounds or (3 if args.quick else 5)
    args.deadline = t0 + args.budget_s if args.budget_s else float("inf")
    results = dict(tool="benchmark", meta={}, bytes=[], loaders=[], one_core=[], jpeg_decoder=[],
                   exactness=[], seek=[], models=[], pipeline=[], levers=[], gpu={}, derived={},
                   notes=[], skipped=[])
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)

    def save():
        utils.write_json(args.out, results)

    if args.from_json:
        with open(args.from_json) as f:
            results = json.load(f)
    else:
        with tempfile.TemporaryDirectory(prefix="benchmark-") as tmp:
            # the sets before CUDA starts: the conversion Pool forks
            sets = measure.build_sets(tmp, args.real_videos, args.quick, args.workers)
            device = engine.setup(args.device).device
            args.size = args.size or (112 if args.quick and device.type == "cpu" else 224)
            gpu = device.type == "cuda"
            results["meta"] = dict(
                device=torch.cuda.get_device_name(device) if gpu else f"CPU ({os.cpu_count()} "
                f"cores)", torch=torch.__version__, workers=args.workers, quick=args.quick,
                seconds=args.seconds, rounds=args.rounds, only=args.only,
                torch_threads=torch.get_num_threads(), peak_bf16_tflops=measure.peak_tflops(device),
                load_average_start=os.getloadavg()[0], assignment=ASSIGNMENT,
                data_seconds=time.time() - t0)
            if "real" not in sets:
                results["notes"].append(f"no real clips in {args.real_videos}: toy videos only")
            if args.only == "one-core":
                measure.measure_data(results, sets, args, save, loaders=False)
            else:
                main_plan, levers = measure.model_plan(args, device)
                print(f"models on {results['meta']['device']}:", flush=True)
                measure.measure_models(results, args, device, "models", main_plan, save)
                measure.measure_pipeline(results, sets, args, device, save)
                measure.measure_data(results, sets, args, save, gpu=gpu)
                if gpu and time.time() < args.deadline - 10:
                    measure.host_to_device(results, device, args.seconds)
                    save()
                # torch.compile last: the slowest
                measure.measure_models(results, args, device, "levers", levers, save)
        results["meta"].update(total_seconds=time.time() - t0, load_average_end=os.getloadavg()[0])
    models, pipeline = results["models"], results.get("pipeline", [])
    results["derived_source"] = f"this run ({results['meta']['device']})"
    if args.model_json:
        with open(args.model_json) as f:
            other = json.load(f)
        models, pipeline = other["models"], other.get("pipeline", [])  # that machine's
        results["derived_source"] = f"{args.model_json} ({other['meta']['device']})"
    results["derived"] = derive(results, models, pipeline)
    save()
    report(results)
    print(f"\nwrote {args.out} (measured in {results['meta']['total_seconds']:.0f} s)")
    return results


if __name__ == "__main__":
    main(parse_args())
