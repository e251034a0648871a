"""Part 1 testing: score every frame of every test video with the single-frame model.

Usage: python test_single_frame.py --data-root /path/to/root [--checkpoint runs/single_frame/checkpoint.pt]
       [--subset test|val] [--crops center|three] [--flip]

Each frame is classified (batches of 200 frames; decoding runs ahead in DataLoader workers) and a
video's prediction is the mean of its frames' log-softmax, the assignment's naive-Bayes sum up to
scale (same ranking). Expected on real UCF-101 split 1: 77-79% video-level top-1, against 73-75%
for single frames. Writes per-video logits to <out>/UCF-101-predictions/<Class>/<video>.hdf5,
plus predictions.h5, metrics.json and confusion_matrix.npy; a rerun skips finished videos.
"""
import argparse

import torch

import engine
import helperFunctions as hf


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    engine.add_common_args(p, batch_size=200, arch="resnet50", out="runs/single_frame_test", frames=1)
    engine.add_test_args(p)
    p.add_argument("--checkpoint", default="runs/single_frame/checkpoint.pt")
    p.add_argument("--average", choices=["log_softmax", "softmax"], default="log_softmax",
                   help="how frame predictions are combined (log_softmax: the assignment's)")
    return p.parse_args(argv)


def frame_logits(net, video, device, mean, std, batch_size):
    """uint8 (T, H, W, 3) -> logits (T, C), `batch_size` frames at a time."""
    out = []
    for chunk in video.split(batch_size):
        x = hf.normalize(chunk.to(device, non_blocking=True), torch.zeros(len(chunk)), mean, std)
        out.append(net(x))
    return torch.cat(out)


def main(args):
    logits = lambda net, video, device, mean, std: frame_logits(net, video, device, mean, std, args.batch_size)
    engine.test_videos(args, "2d", logits, {"model": "single_frame", "average": args.average})


if __name__ == "__main__":
    main(parse_args())
