"""Part 2 testing: classify every test video with the 3D model, over the whole video.

Usage: python test_3d.py --data-root /path/to/root [--checkpoint runs/3d/checkpoint.pt] [--mode windows|full]
       [--subset test|val] [--crops center|three] [--flip]

--mode windows: every 16-frame window at --stride, predictions averaged over windows.
--mode full:    the whole video through the network at once, pooled over (T', 7, 7) before fc
                (a video shorter than 16 frames is looped to 16).
Writes per-video logits to <out>/UCF-101-predictions/<Class>/<video>.hdf5 (windows: one row per
window; full: one row), plus predictions.h5, metrics.json and confusion_matrix.npy; a rerun skips
finished videos.
"""
import argparse

import torch

import engine
import helperFunctions as hf


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    engine.add_common_args(p, batch_size=32, arch="resnet50", out="runs/3d_test", frames=16)
    engine.add_test_args(p)
    p.add_argument("--checkpoint", default="runs/3d/checkpoint.pt")
    p.add_argument("--mode", choices=["windows", "full"], default="windows")
    # Measured on the toy set (3 splits, 432 test videos, resnet10 at 32x32; not real UCF-101): strides
    # 8, 4 and 1 tie within one video, 16 loses 4; log_softmax never loses to softmax and has the lower
    # NLL; full mode is within noise of windows (20 vs 15 videos right only in one of the two).
    p.add_argument("--stride", type=int, default=8, help="frames between window starts (windows mode)")
    p.add_argument("--average", choices=["log_softmax", "softmax"], default="log_softmax",
                   help="how window predictions are combined")
    return p.parse_args(argv)


def window_starts(n_frames, frames, stride):
    """Starts of the `frames`-long windows every `stride` frames, the last window always included."""
    starts = list(range(0, max(n_frames - frames, 0) + 1, stride))
    if starts[-1] != max(n_frames - frames, 0):
        starts.append(n_frames - frames)
    return starts


def video_logits(net, video, device, mean, std, mode, frames, stride, batch_size):
    """uint8 (T, H, W, 3) -> logits (n_windows, C) or (1, C) for the whole video."""
    video = video.to(device, non_blocking=True)
    if len(video) < frames:  # loop short videos, as the training loader does
        video = video[torch.arange(frames) % len(video)]
    if mode == "full":
        return net(hf.normalize(video[None], torch.zeros(1), mean, std))
    out, starts = [], window_starts(len(video), frames, stride)
    for i in range(0, len(starts), batch_size):
        clips = torch.stack([video[s:s + frames] for s in starts[i:i + batch_size]])
        out.append(net(hf.normalize(clips, torch.zeros(len(clips)), mean, std)))
    return torch.cat(out)


def main(args):
    logits = lambda net, video, device, mean, std: video_logits(
        net, video, device, mean, std, args.mode, args.frames, args.stride, args.batch_size)
    attrs = {"model": "3d", "mode": args.mode, "average": args.average,
             "stride": args.stride if args.mode == "windows" else 0}
    engine.test_videos(args, "3d", logits, attrs)


if __name__ == "__main__":
    main(parse_args())
