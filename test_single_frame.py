"""Part 1 testing: score every frame of every test video with the single-frame model.

Usage: python test_single_frame.py --data-root /path/to/root
       [--checkpoint runs/single_frame/checkpoint.pt]
       [--subset test|val] [--crops center|three] [--flip]

Each frame is classified (batches of 200 frames; decoding runs ahead in DataLoader workers) and a
video's prediction is the mean of its frames' log-softmax, the assignment's naive-Bayes sum up to
scale (same ranking). Expected on real UCF-101 split 1: 77-79% video-level top-1, against 73-75%
for single frames. Writes per-video logits to <out>/UCF-101-predictions/<Class>/<video>.hdf5,
plus predictions.h5, metrics.json and confusion_matrix.npy; a rerun skips finished videos.
"""
import argparse

import engine
import helperFunctions as hf
import metrics
import scoring
import utils


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = utils.ArgumentParser(description=__doc__)
    scoring.add_test_flags(p, checkpoint="runs/single_frame/checkpoint.pt",
                           batch_size=scoring.FRAME_BATCH, what="frames",
                           out="runs/single_frame_test")
    return p.parse_args(argv)


def main(args: argparse.Namespace) -> dict:
    ckpt = scoring.load_for_testing(args.checkpoint, "single_frame")
    class_list, paths, labels, split, val_groups = scoring.test_lists(
        args.data_root, args.split, args.val_groups, args.subset, ckpt, args.checkpoint)
    utils.check_writable(args.out)
    run = engine.setup(args.device, precision=args.precision)
    net = scoring.model_from_checkpoint(ckpt).to(run.device)
    # what a saved prediction was made with: a rerun reuses only those made alike
    identity = {"model": "single_frame", "checkpoint_sha256": ckpt["weights_sha256"],
                "split": split, "subset": args.subset, "val_groups": val_groups,
                "crops": args.crops, "flip": args.flip, "average": args.average,
                "precision": run.precision}
    if args.overwrite:
        scoring.clear_run(args.out)
    scores, todo = scoring.finished_scores(args.out, paths, len(class_list), identity, args.average)
    print(f"{len(paths)} {args.subset} videos of split {split}: {len(paths) - len(todo)} already "
          f"scored in {args.out}, {len(todo)} to go", flush=True)

    dataset = hf.VideoDataset(paths[todo], labels[todo], size=ckpt["size"], crops=args.crops,
                              flip=args.flip)
    loader = hf.make_loader(dataset, 1, False, args.workers)
    failed = {}  # path: why it could not be read
    for batch in scoring.video_batches(loader, lambda view: view, args.batch_size, failed):
        with scoring.out_of_memory_message(batch, dataset.paths, args.out):
            logits = scoring.logits_of(net, batch.inputs, run, args.batch_size)  # (frames, C)
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
