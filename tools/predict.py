"""Top-5 classes of any video file from the single-frame model, the 3D model, or both fused.

Usage: python -m tools.predict VIDEO [VIDEO ...] --run runs/toy
       python -m tools.predict VIDEO --single-frame runs/toy/single_frame/checkpoint.pt
           [--3d CKPT] [--weight W]

VIDEO is any file FFmpeg decodes (.avi, .mp4, ...), or a .hdf5 in either store format (raw `video`
or compact `jpeg`), anywhere on disk. --run takes a run folder of `make demo` (or of the scripts
with its layout): its single_frame/ and 3d/ checkpoints, fused with the weight its
combined/results.json chose when those results came from these very checkpoints (else 0.5, or
--weight). Each video is scored the way test_single_frame.py / test_3d.py score test videos with
their defaults (every frame; 16-frame windows) and the fused scores are metrics.fuse of the two
video-level log-probabilities. An unreadable video is reported by name and skipped; the exit status
is non-zero only when no video could be predicted.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

import engine
import helperFunctions as hf
import metrics
import scoring
import utils
from video_io import VideoReadError, read_frames

DEFAULT_WEIGHT = 0.5  # combine_results.py's fixed weight


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = utils.ArgumentParser(description=__doc__)
    p.add_argument("videos", nargs="+", metavar="VIDEO",
                   help="video files (.avi, .mp4, ... or .hdf5)")
    p.add_argument("--run", help="run folder holding single_frame/checkpoint.pt and/or "
                                 "3d/checkpoint.pt (and combined/results.json for the fusion "
                                 "weight)")
    p.add_argument("--single-frame", help="single-frame checkpoint (instead of --run's)")
    p.add_argument("--3d", "--three-d", dest="three_d", help="3D checkpoint (instead of --run's)")
    p.add_argument("--weight", type=utils.unit_interval, default=None,
                   help="weight of the single-frame model when fusing (default: the one --run's "
                        f"results chose, else {DEFAULT_WEIGHT})")
    p.add_argument("--top", type=utils.positive_int, default=5, help="classes shown per model")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="auto: the GPU when PyTorch sees one, else the CPU")
    args = p.parse_args(argv)
    if not (args.run or args.single_frame or args.three_d):
        p.error("say which models to use: --run FOLDER (e.g. runs/toy after make demo), or "
                "--single-frame and/or --3d checkpoints")
    return args


def checkpoint_paths(args: argparse.Namespace) -> dict:
    """{"single_frame"|"3d": checkpoint path} from --single-frame / --3d, else from --run."""
    given = {k: v for k, v in (("single_frame", args.single_frame), ("3d", args.three_d)) if v}
    if given:
        return given
    found = {k: os.path.join(args.run, k, "checkpoint.pt") for k in ("single_frame", "3d")}
    found = {k: v for k, v in found.items() if os.path.isfile(v)}
    if not found:
        raise SystemExit(f"--run {args.run}: holds neither single_frame/checkpoint.pt nor "
                         f"3d/checkpoint.pt")
    return found


def load_models(paths: dict) -> dict:
    """{"single_frame"|"3d": (ckpt, net)} of the checkpoints, checked to be of the classes'
    models."""
    models = {}
    for name, path in paths.items():
        try:
            ckpt = engine.load_checkpoint(path, kind=name)
        except (FileNotFoundError, ValueError) as e:
            raise SystemExit(f"--{'single-frame' if name == 'single_frame' else '3d'}: "
                             f"{e}") from None
        models[name] = ckpt, scoring.model_from_checkpoint(ckpt)
    if (len(models) == 2
            and models["single_frame"][0]["class_list"] != models["3d"][0]["class_list"]):
        raise SystemExit(f"cannot fuse: {paths['single_frame']} and {paths['3d']} were trained on "
                         f"different classes")
    return models


def fusion_weight(args: argparse.Namespace, models: dict) -> tuple:
    """(weight, where it comes from): --weight, else the weight --run's combined/results.json chose
    when its predictions were made with these checkpoints, else DEFAULT_WEIGHT."""
    if args.weight is not None:
        return args.weight, "--weight"
    path = os.path.join(args.run, "combined", "results.json") if args.run else None
    if path is None or not os.path.isfile(path):
        return DEFAULT_WEIGHT, "the default: no results.json of the run"
    try:
        with open(path) as f:
            results = json.load(f)
        made_from = {k: results["attrs"][k]["checkpoint_sha256"] for k in ("single_frame", "3d")}
        weight, chosen_on = results["fusion"]["weight"], results["fusion"]["chosen_on"]
    except (OSError, ValueError, KeyError, TypeError):
        return DEFAULT_WEIGHT, f"the default: {path} is not combine_results.py's"
    if made_from != {k: ckpt["weights_sha256"] for k, (ckpt, _) in models.items()}:
        return DEFAULT_WEIGHT, f"the default: {path} was made with other checkpoints"
    return weight, f"{path} ({chosen_on})"


def video_scores(name: str, ckpt: dict, net: torch.nn.Module, frames: np.ndarray,
                 run: engine.Run) -> np.ndarray:
    """uint8 RGB frames (T, H, W, 3) at any resolution -> video-level log-probabilities (C,)
    float64, scored as the test scripts score with their defaults."""
    # (T, size, size, 3)
    video = torch.from_numpy(hf.apply_augment(frames, hf.Augment(), ckpt["size"]))
    if name == "single_frame":
        logits = scoring.logits_of(net, video, run, scoring.FRAME_BATCH)
    else:
        windows = scoring.window_inputs(video, scoring.MODE, ckpt["frames"], scoring.STRIDE)
        logits = scoring.logits_of(net, windows, run, scoring.WINDOW_BATCH)
    return metrics.aggregate(logits, scoring.AVERAGE)


def top_classes(scores: np.ndarray, class_list: list[str], k: int) -> list:
    """log-probabilities (C,) -> [(class, probability)] of the k most probable classes."""
    order = np.argsort(-scores, kind="stable")[:k]
    return [(str(class_list[i]), float(np.exp(scores[i]))) for i in order]


def read_video(path: str) -> np.ndarray | None:
    """Every frame of a video file, uint8 RGB (T, H, W, 3), or None after saying why it cannot be
    read."""
    if os.path.isdir(path):
        print(f"{path} is a folder, not a video file: name the video files (e.g. {path}/*.avi)",
              file=sys.stderr, flush=True)
        return None
    if not os.path.exists(path):
        print(f"file not found: {path}", file=sys.stderr, flush=True)
        return None
    try:
        return read_frames(path)  # once for both models
    except VideoReadError as e:
        # e.path may be another copy of the same video (a data root's compact store): name both
        where = "" if os.path.abspath(e.path) == os.path.abspath(path) else f" ({e.path})"
        print(f"cannot read {path}{where}: {e.reason}", file=sys.stderr, flush=True)
        return None


def main(args: argparse.Namespace) -> dict:
    run = engine.setup(args.device)
    models = load_models(checkpoint_paths(args))
    for _, net in models.values():
        net.to(run.device)
    weight, source = fusion_weight(args, models) if len(models) == 2 else (None, "")
    class_list = next(iter(models.values()))[0]["class_list"]
    results, failed = {}, []
    for path in args.videos:
        frames = read_video(path)
        if frames is None:
            failed.append(path)
            continue
        scores = {name: video_scores(name, ckpt, net, frames, run)
                  for name, (ckpt, net) in models.items()}
        if len(scores) == 2:
            scores["fused"] = metrics.fuse(scores["single_frame"][None], scores["3d"][None],
                                           weight)[0]
        results[path] = {name: top_classes(s, class_list, args.top) for name, s in scores.items()}
        print(f"\n{path} ({len(frames)} frames): top-{args.top}, video-level probabilities")
        for name, top in results[path].items():
            label = (f"fused (weight {weight:g} on single-frame, from {source})" if name == "fused"
                     else name)
            print(f"  {label}: " + ", ".join(f"{c} {p:.3f}" for c, p in top))
    if failed:
        print(f"\n{len(failed)} of {len(args.videos)} videos could not be read: "
              f"{', '.join(failed)}", file=sys.stderr)
    if not results:
        raise SystemExit("no video could be predicted")
    return results


if __name__ == "__main__":
    main(parse_args())
