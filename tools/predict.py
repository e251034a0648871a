"""Top-5 classes of any video file from the single-frame model, the 3D model, or both fused.

Usage: python predict.py VIDEO [VIDEO ...] [--single-frame runs/single_frame/checkpoint.pt]
                         [--three-d runs/3d/checkpoint.pt] [--weight 0.5]

VIDEO is any file OpenCV decodes (.avi, .mp4, ...), or a .hdf5 in either store format (raw `video` or
compact `jpeg`), anywhere on disk.
Without --single-frame / --three-d, the default checkpoints that exist are used (both: fused); naming
one or both uses exactly those. Each video is scored the way test_single_frame.py / test_3d.py score
test videos (every frame; 16-frame windows with test_3d.py's default --mode/--stride/--average) and the
fused scores are metrics.fuse of the two video-level log-probabilities. An unreadable video is reported
by name and skipped; the exit status is non-zero only when no video could be predicted.
"""
import argparse
import os
import sys

import numpy as np
import torch

import engine
import helperFunctions as hf
import metrics
import scoring
from video_io import VideoReadError, read_frames

DEFAULTS = {"single_frame": "runs/single_frame/checkpoint.pt", "3d": "runs/3d/checkpoint.pt"}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="video files (.avi, .mp4, ... or .hdf5)")
    p.add_argument("--single-frame", help=f"single-frame checkpoint (default: {DEFAULTS['single_frame']} if it exists)")
    p.add_argument("--three-d", help=f"3D checkpoint (default: {DEFAULTS['3d']} if it exists)")
    p.add_argument("--weight", type=float, default=0.5, help="weight of the single-frame model when fusing")
    p.add_argument("--top", type=int, default=5, help="classes shown per model")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    return p.parse_args(argv)


def load_models(args):
    """{"single_frame"|"3d": (ckpt, net)} for the checkpoints asked for (or the defaults that exist)."""
    given = {"single_frame": args.single_frame, "3d": args.three_d}
    paths = {k: v for k, v in given.items() if v} or {k: v for k, v in DEFAULTS.items() if os.path.isfile(v)}
    if not paths:
        raise SystemExit(f"no checkpoint: neither {DEFAULTS['single_frame']} nor {DEFAULTS['3d']} exists; "
                         f"pass --single-frame and/or --three-d")
    models = {}
    for name, path in paths.items():
        try:
            ckpt = engine.load_checkpoint(path, kind=name)
        except (FileNotFoundError, ValueError) as e:
            raise SystemExit(f"--{'single-frame' if name == 'single_frame' else 'three-d'}: {e}") from None
        models[name] = ckpt, scoring.model_from_checkpoint(ckpt)
    if len(models) == 2 and models["single_frame"][0]["class_list"] != models["3d"][0]["class_list"]:
        raise SystemExit(f"cannot fuse: {paths['single_frame']} and {paths['3d']} were trained on different classes")
    return models


def video_scores(name, ckpt, net, frames, device):
    """uint8 RGB frames (T, H, W, 3) at any resolution -> video-level log-probabilities (C,) float64,
    scored as the test scripts score with their defaults."""
    video = torch.from_numpy(hf.apply_augment(frames, hf.Augment(), ckpt["size"]))  # (T, size, size, 3)
    mean, std = engine.input_stats(ckpt)
    if name == "single_frame":
        logits = scoring.logits_of(net, video, device, mean, std, scoring.FRAME_BATCH)
    else:
        windows = scoring.window_inputs(video, scoring.MODE, ckpt["frames"], scoring.STRIDE)
        logits = scoring.logits_of(net, windows, device, mean, std, scoring.WINDOW_BATCH)
    return metrics.aggregate(logits.float().cpu().numpy(), scoring.AVERAGE)


def top_classes(scores, class_list, k):
    """log-probabilities (C,) -> [(class, probability)] of the k most probable classes."""
    order = np.argsort(-scores, kind="stable")[:k]
    return [(str(class_list[i]), float(np.exp(scores[i]))) for i in order]


def main(args):
    device, _, _ = engine.setup(args.device)
    models = load_models(args)
    for _, net in models.values():
        net.to(device)
    class_list = next(iter(models.values()))[0]["class_list"]
    results, failed = {}, []
    for path in args.videos:
        if not os.path.exists(path):
            print(f"file not found: {path}", file=sys.stderr, flush=True)
            failed.append(path)
            continue
        try:
            frames = read_frames(path)  # (T, H, W, 3) uint8 RGB, once for both models
        except VideoReadError as e:
            # e.path may be another copy of the same video (a data root's compact store): name both
            where = "" if os.path.abspath(e.path) == os.path.abspath(path) else f" ({e.path})"
            print(f"cannot read {path}{where}: {e.reason}", file=sys.stderr, flush=True)
            failed.append(path)
            continue
        with torch.inference_mode(), engine.autocast(device):
            scores = {name: video_scores(name, ckpt, net, frames, device) for name, (ckpt, net) in models.items()}
        if len(scores) == 2:
            scores["fused"] = metrics.fuse(scores["single_frame"][None], scores["3d"][None], args.weight)[0]
        results[path] = {name: top_classes(s, class_list, args.top) for name, s in scores.items()}
        print(f"\n{path} ({len(frames)} frames): top-{args.top}, video-level probabilities")
        for name, top in results[path].items():
            label = f"fused (weight {args.weight} on single-frame)" if name == "fused" else name
            print(f"  {label}: " + ", ".join(f"{c} {p:.3f}" for c, p in top))
    if failed:
        print(f"\n{len(failed)} of {len(args.videos)} videos could not be read: {', '.join(failed)}", file=sys.stderr)
    if not results:
        raise SystemExit("no video could be predicted")
    return results


if __name__ == "__main__":
    main(parse_args())
