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
import os

import engine
import helperFunctions as hf
import metrics
import scoring


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default="data/toy",
                   help="folder with ucfTrainTestlist/ and UCF-101/, UCF-101-hdf5/ or UCF-101-jpeg/")
    p.add_argument("--split", type=int, default=1, choices=[1, 2, 3])
    p.add_argument("--checkpoint", default="runs/single_frame/checkpoint.pt")
    p.add_argument("--subset", choices=scoring.SUBSETS, default="test",
                   help="test: the split's test list; val: the --val-groups held out of its train list")
    p.add_argument("--val-groups", type=int, default=None,
                   help="the groups held out of the train list (default: as the checkpoint was trained)")
    p.add_argument("--crops", choices=hf.TEST_CROPS, default="center",
                   help="center: the whole frame resized (the assignment's); three: three squares along the "
                        "longer side; predictions averaged over views like frames")
    p.add_argument("--flip", action="store_true", help="also score every view mirrored")
    p.add_argument("--average", choices=["log_softmax", "softmax"], default=scoring.AVERAGE,
                   help="how frame predictions are combined (log_softmax: the assignment's)")
    p.add_argument("--batch-size", type=int, default=scoring.FRAME_BATCH, help="frames per forward pass")
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count()), help="data loading processes")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/single_frame_test", help="run folder: predictions, metrics")
    return p.parse_args(argv)


def main(args):
    try:
        ckpt = engine.load_checkpoint(args.checkpoint, "single_frame")
    except (FileNotFoundError, ValueError) as e:  # a message, not a traceback: wrong or missing file
        raise SystemExit(f"--checkpoint: {e}") from None
    class_list, paths, labels, val_groups = scoring.test_lists(args.data_root, args.split, args.val_groups,
                                                               args.subset, ckpt, args.checkpoint)
    device, _, _ = engine.setup(args.device, args.seed)
    net = scoring.model_from_checkpoint(ckpt).to(device)
    mean, std = engine.input_stats(ckpt)
    # the settings a saved prediction was made with: a rerun reuses only those made alike
    attrs = {"model": "single_frame", "average": args.average, "checkpoint_epoch": ckpt["epoch"],
             "size": ckpt["size"], "arch": ckpt["arch"], "split": args.split, "subset": args.subset,
             "val_groups": val_groups, "crops": args.crops, "flip": args.flip}
    scores, todo = scoring.finished_scores(args.out, paths, len(class_list), attrs, args.average)
    print(f"{len(paths)} {args.subset} videos of split {args.split}: {len(paths) - len(todo)} already scored "
          f"in {args.out}, {len(todo)} to go", flush=True)

    dataset = hf.VideoDataset(paths[todo], labels[todo], size=ckpt["size"], crops=args.crops, flip=args.flip)
    loader = hf.make_loader(dataset, 1, False, args.workers, args.seed)
    def forward(frames):  # uint8 (n, S, S, 3) -> logits (n, C), --batch-size frames a pass
        return scoring.logits_of(net, frames, device, mean, std, args.batch_size)
    failed = scoring.score_videos(loader, lambda view: view, forward, args.batch_size, device, args.out, paths,
                                  todo, scores, labels, attrs, args.average)

    summary = metrics.summarize(scores, labels, class_list)
    scoring.save_run(args.out, paths, labels, scores, class_list, summary, failed,
                         {**attrs, **scoring.model_attrs(ckpt, args.checkpoint)})
    scoring.print_results(summary, class_list, [hf.video_name(p) for p in paths if p in failed], args.subset, args.out)
    if summary["n_failed"] == len(paths):  # all-zero metrics are no result: say so with the exit status
        raise SystemExit(f"none of the {len(paths)} {args.subset} videos of split {args.split} could be read "
                         f"(each is named above with the reason): check --data-root {args.data_root}")
    return summary


if __name__ == "__main__":
    main(parse_args())
