"""Part 2 testing: classify every test video with the 3D model, over the whole video.

Usage: python test_3d.py --data-root /path/to/root [--checkpoint runs/3d/checkpoint.pt]
       [--mode windows|full] [--subset test|val] [--crops center|three] [--flip]

--mode windows: every 16-frame window at --stride, predictions averaged over windows.
--mode full:    the whole video through the network at once, pooled over (T', 7, 7) before fc
                (a video shorter than 16 frames is looped to 16).
Writes per-video logits to <out>/UCF-101-predictions/<Class>/<video>.hdf5 (windows: one row per
window; full: one row), plus predictions.h5, metrics.json and confusion_matrix.npy; a rerun skips
finished videos.
"""
import argparse

import engine
import helperFunctions as hf
import metrics
import scoring
import utils


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = utils.ArgumentParser(description=__doc__)
    scoring.add_test_flags(p, checkpoint="runs/3d/checkpoint.pt", batch_size=scoring.WINDOW_BATCH,
                           what="windows", out="runs/3d_test")
    p.add_argument("--mode", choices=["windows", "full"], default=scoring.MODE,
                   help="windows: every clip-long window at --stride; full: the whole video at "
                        "once")
    # Measured on the toy set (3 splits, 432 test videos, resnet10 at 32x32; not real UCF-101):
    # strides 8, 4 and 1 tie within one video, 16 loses 4; log_softmax never loses to softmax and
    # has the lower NLL; full mode is within noise of windows (20 vs 15 videos right only in one of
    # the two).
    p.add_argument("--stride", type=utils.positive_int, default=scoring.STRIDE,
                   help="frames between window starts (windows mode)")
    return p.parse_args(argv)


def main(args: argparse.Namespace) -> dict:
    ckpt = scoring.load_for_testing(args.checkpoint, "3d")
    class_list, paths, labels, split, val_groups = scoring.test_lists(
        args.data_root, args.split, args.val_groups, args.subset, ckpt, args.checkpoint)
    utils.check_writable(args.out)
    run = engine.setup(args.device, precision=args.precision)
    net = scoring.model_from_checkpoint(ckpt).to(run.device)
    # what a saved prediction was made with: a rerun reuses only those made alike
    identity = {"model": "3d", "checkpoint_sha256": ckpt["weights_sha256"], "split": split,
                "subset": args.subset, "val_groups": val_groups, "crops": args.crops,
                "flip": args.flip, "mode": args.mode,
                "stride": args.stride if args.mode == "windows" else 0, "average": args.average,
                "precision": run.precision}
    if args.overwrite:
        scoring.clear_run(args.out)
    scores, todo = scoring.finished_scores(args.out, paths, len(class_list), identity, args.average)
    print(f"{len(paths)} {args.subset} videos of split {split}: {len(paths) - len(todo)} already "
          f"scored in {args.out}, {len(todo)} to go", flush=True)

    dataset = hf.VideoDataset(paths[todo], labels[todo], size=ckpt["size"], crops=args.crops,
                              flip=args.flip)
    loader = hf.make_loader(dataset, 1, False, args.workers)
    def windows(view):
        # uint8 (T, S, S, 3) -> (windows, frames, S, S, 3), or (1, T, S, S, 3) in full mode
        return scoring.window_inputs(view, args.mode, ckpt["frames"], args.stride)
    failed = {}  # path: why it could not be read
    for batch in scoring.video_batches(loader, windows, args.batch_size, failed):
        with scoring.out_of_memory_message(batch, dataset.paths, args.out):
            logits = scoring.logits_of(net, batch.inputs, run, args.batch_size)  # (windows, C)
        for i, video_logits in batch.per_video(logits):
            scoring.save_video(scoring.video_file(args.out, paths[todo[i]]), video_logits, identity)
            scores[todo[i]] = metrics.aggregate(video_logits, args.average)

    summary = metrics.summarize(scores, labels, class_list)
    scoring.save_run(args.out, paths, labels, scores, class_list, summary, list(failed),
                     {**identity, **scoring.model_attrs(ckpt, args.checkpoint)})
    scoring.print_results(summary, class_list, [hf.video_name(p) for p in failed], args.subset,
                          args.out)
    # all-zero metrics are no result: say so with the exit status
    if summary["n_failed"] == len(paths):
        raise SystemExit(f"none of the {len(paths)} {args.subset} videos of split {split} could be "
                         f"read (each is named above with the reason): check --data-root "
                         f"{args.data_root}")
    return summary


if __name__ == "__main__":
    utils.interruptible(main, scoring.kept_on_interrupt)(parse_args())
