"""The steps both test scripts (and predict.py) share: which videos to score, and scoring a whole video
frame by frame (single-frame model) or window by window (3D model), with every video's predictions
saved as it is done, so that one bad video or an interruption never costs the others.
"""
import os

import numpy as np
import torch
from tqdm import tqdm

import engine
import helperFunctions as hf
import metrics
import predictions
import video_io

SUBSETS = ("test", "val")  # what the test scripts score: the split's test list, or the held-out groups
# The test scripts' defaults, which predict.py scores with too.
AVERAGE = "log_softmax"  # how frame / window predictions are combined (the assignment's naive-Bayes sum)
FRAME_BATCH = 200        # frames per forward pass (single-frame model)
WINDOW_BATCH = 32        # windows per forward pass (3D model)
MODE, STRIDE = "windows", 8  # the 3D model: 16-frame windows every 8 frames


def test_lists(data_root: str, split: int, val_groups: int | None, subset: str, ckpt: dict, checkpoint: str):
    """(class_list, paths, labels, val_groups) of the videos a test script scores: the split's test list,
    or (subset "val") the groups held out of its train list. val_groups None: the checkpoint's. Stops
    with a message when the checkpoint was trained on another split or validation set, on other classes,
    or the subset is empty."""
    val_groups = ckpt["val_groups"] if val_groups is None else val_groups
    if (split, val_groups) != (ckpt["split"], ckpt["val_groups"]):
        raise SystemExit(f"{checkpoint} was trained on split {ckpt['split']} with --val-groups {ckpt['val_groups']}, "
                         f"not split {split} with --val-groups {val_groups}: its scores on these "
                         f"videos would not be held out; test it with the settings it was trained with")
    if subset == "test":  # the test list alone: testing never needs the train list
        try:
            video_io.check_data_root(data_root)
            class_list = hf.read_class_list(data_root)
            paths, labels = hf.read_split(data_root, split, "test", class_list)
        except (FileNotFoundError, ValueError) as e:
            raise SystemExit(f"--data-root {data_root}: {e}") from None
    else:
        class_list, _, (paths, labels), _ = engine.split_lists(data_root, split, val_groups)
    if list(class_list) != list(ckpt["class_list"]):
        raise SystemExit(f"{checkpoint} was trained on {ckpt['num_classes']} other classes than the "
                         f"{len(class_list)} of {data_root}")
    if len(paths) == 0:
        raise SystemExit(f"--subset {subset} of split {split} is empty in {data_root}/ucfTrainTestlist: "
                         + ("train with --val-groups N (N > 0) to hold groups out for validation"
                            if subset == "val" else "its test list names no video"))
    return class_list, paths, labels, val_groups


def model_from_checkpoint(ckpt: dict) -> engine.FineTune:
    """Rebuild the trained network of a checkpoint (eval mode, on CPU)."""
    if ckpt["kind"] == "3d":
        import resnet_3d
        model = resnet_3d.build(ckpt["arch"], num_classes=ckpt["num_classes"], layer4_blocks=ckpt.get("layer4_blocks"),
                                widen_factor=ckpt.get("widen_factor", 1.0))
    else:
        import torchvision
        model = getattr(torchvision.models, ckpt["arch"])(weights=None, num_classes=ckpt["num_classes"])
    model.load_state_dict(ckpt["model"])
    return engine.FineTune(model, "fc", ckpt.get("layer4_blocks")).eval()


def logits_of(net, inputs: torch.Tensor, device, mean, std, batch_size: int) -> torch.Tensor:
    """uint8 model inputs, frames (N, H, W, 3) or clips (N, T, H, W, 3) -> logits (N, C), `batch_size`
    inputs a forward pass."""
    return torch.cat([net(hf.normalize(chunk.to(device, non_blocking=True), mean, std))
                      for chunk in inputs.split(batch_size)])


def window_starts(n_frames: int, frames: int, stride: int) -> list:
    """Starts of the `frames`-long windows every `stride` frames, the last window always included."""
    starts = list(range(0, max(n_frames - frames, 0) + 1, stride))
    if starts[-1] != max(n_frames - frames, 0):
        starts.append(n_frames - frames)
    return starts


def window_inputs(video: torch.Tensor, mode: str, frames: int, stride: int) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> the 3D model's inputs: its `frames`-long windows every `stride` frames
    (n_windows, frames, H, W, 3) (mode "windows"), or the whole video (1, T, H, W, 3) (mode "full"). A
    video shorter than `frames` is looped, as in training."""
    if len(video) < frames:
        video = video[torch.arange(frames) % len(video)]
    if mode == "full":
        return video[None]
    return torch.stack([video[s:s + frames] for s in window_starts(len(video), frames, stride)])


def score_videos(loader, inputs, forward, batch_size: int, device, out: str, paths, todo: list, scores, labels,
                 attrs: dict, average: str) -> dict:
    """Score the videos `loader` yields (an hf.VideoDataset of paths[todo], one video a batch).
    inputs(view) maps a view, uint8 (T, S, S, 3), to its model inputs (n, ...) (frames or windows), and
    forward(x) maps inputs to logits (n, C), `batch_size` a forward pass (logits_of). Short videos'
    inputs are batched together, up to `batch_size` (a batch of one 40-frame video keeps a CPU several
    times below its speed); a longer video is scored alone. Every view's rows are averaged
    together, like frames or windows. Each video's logits are saved to its prediction file and its
    aggregated scores (C,) written into `scores` (N, C), so memory stays flat over thousands of videos.
    A video that fails to decode is listed and keeps a NaN row (counted wrong). Returns {path: error}."""
    failed, hits, done = {}, np.zeros(len(engine.TOP_K)), 0
    pending = []  # (index into paths, its inputs) of the videos not scored yet
    bar = tqdm(total=len(todo), desc="test videos", dynamic_ncols=True)

    def score_pending():
        nonlocal hits, done
        batch_inputs = torch.cat([v for _, v in pending])
        try:
            with engine.autocast(device):
                logits = forward(batch_inputs).float().cpu().numpy()
        except torch.cuda.OutOfMemoryError:
            raise SystemExit(f"CUDA out of memory on {', '.join(paths[i] for i, _ in pending)} ({len(batch_inputs)} "
                             f"inputs of {tuple(batch_inputs.shape[1:])}): try a smaller --batch-size (test_3d.py: "
                             f"or --mode windows); the {done} videos scored so far are saved in {out} and a rerun "
                             f"skips them") from None
        rows = np.cumsum([len(v) for _, v in pending])[:-1]
        for (i, _), video_logits in zip(pending, np.split(logits, rows)):
            predictions.save_video(predictions.video_file(out, paths[i]), video_logits, attrs)
            scores[i] = metrics.aggregate(video_logits, average)
            top = np.argsort(-scores[i])[:max(engine.TOP_K)]
            hits += [labels[i] in top[:k] for k in engine.TOP_K]
            done += 1
        bar.update(len(pending))
        bar.set_postfix_str("running top1/5/10 %.3f/%.3f/%.3f" % tuple(hits / done))
        pending.clear()

    with torch.inference_mode():
        for batch in loader:
            for path, err in batch["failed"]:
                failed[path] = err
                bar.update(1)
                tqdm.write(f"FAILED (counted wrong) {err}")
            if len(batch["label"]) == 0:
                continue
            x = torch.cat([inputs(view) for view in batch["video"][0]])
            # batched with the videos before it while they fit and have inputs of its shape (mode
            # "full": its own length)
            if pending and (sum(len(p) for _, p in pending) + len(x) > batch_size
                            or x.shape[1:] != pending[0][1].shape[1:]):
                score_pending()
            pending.append((todo[batch["index"][0].item()], x))
        if pending:
            score_pending()
    bar.close()
    return failed


def model_attrs(ckpt: dict, checkpoint: str) -> dict:
    """How the tested model was made, for the prediction files and the report's methods section (None
    values left out: HDF5 attributes cannot hold them)."""
    train = ckpt.get("args", {})
    about = {"checkpoint": os.path.abspath(checkpoint), "epochs": ckpt["epoch"], "frames": ckpt["frames"],
             "train_from": ckpt.get("train_from"), "layer4_blocks": ckpt.get("layer4_blocks"),
             "widen_factor": ckpt.get("widen_factor"), "preprocess": ckpt.get("preprocess"), "lr": train.get("lr"),
             "batch_size": train.get("batch_size"),
             "pretrained": train.get("weights", train.get("kinetics_checkpoint"))}
    return {k: v for k, v in about.items() if v is not None}


def print_results(summary: dict, class_list, failed_names: list, subset: str, out: str) -> None:
    """Per-class accuracy worst first, the failed videos, and the video-level top-1/5/10 line."""
    acc, counts = summary["per_class"]["accuracy"], summary["per_class"]["n_videos"]
    print("\nper-class accuracy (video-level), worst first:")
    for c in np.argsort(np.nan_to_num(acc, nan=2.0), kind="stable"):
        if counts[c]:
            print(f"  {class_list[c]:<28s} {acc[c]:6.3f}  ({counts[c]} videos)")
    if failed_names:
        print(f"{len(failed_names)} videos could not be decoded and count as wrong: {', '.join(failed_names)}")
    print(f"video-level accuracy over {summary['n_videos']} {subset} videos ({summary['n_failed']} failed): "
          f"top1 {summary['top1']:.4f}  top5 {summary['top5']:.4f}  top10 {summary['top10']:.4f}  "
          f"mean class {summary['mean_class_accuracy']:.4f}")
    print(f"saved {out}/predictions.h5, metrics.json, confusion_matrix.npy and UCF-101-predictions/")
