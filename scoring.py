"""The steps both test scripts (and predict.py) share: which videos to score, and scoring a whole video
frame by frame (single-frame model) or window by window (3D model), with every video's predictions
saved as it is done, so that one bad video or an interruption never costs the others.
"""
import json
import os
from dataclasses import dataclass, field

import h5py
import numpy as np
import torch
from tqdm import tqdm

import engine
import helperFunctions as hf
import metrics
import video_io
from utils import atomic_write
from video_io import video_name

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
            save_video(video_file(out, paths[i]), video_logits, attrs)
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
    print(f"saved {out}/h5, metrics.json, confusion_matrix.npy and UCF-101-predictions/")


# ----------------------------------------------------------------------------- prediction files

METRIC_KEYS = ("level", "n_videos", "n_failed", "top1", "top5", "top10", "mean_class_accuracy")


def video_file(out: str, video_path: str) -> str:
    """Where a video's saved predictions go: <out>/UCF-101-predictions/<Class>/<video>.hdf5, mirroring
    the dataset as the assignment does."""
    cls = os.path.basename(os.path.dirname(str(video_path)))
    return os.path.join(out, "UCF-101-predictions", cls, video_name(video_path) + ".hdf5")


def save_video(path: str, logits: np.ndarray, attrs: dict) -> None:
    """Per-video logits (n, C) -> HDF5 dataset `predictions`, atomically; attrs say how they were made."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with atomic_write(path) as tmp, h5py.File(tmp, "w") as h:
        h.create_dataset("predictions", data=logits.astype(np.float32))
        h.attrs.update(attrs)


def load_video(path: str, attrs: dict) -> np.ndarray | None:
    """Saved logits of a finished video, or None when absent, unreadable or made another way (other
    checkpoint, mode or stride), so that a rerun resumes but never mixes settings."""
    try:
        with h5py.File(path, "r") as h:
            if any(h.attrs.get(k) != v for k, v in attrs.items()):
                return None
            return h["predictions"][()]
    except (OSError, KeyError):
        return None


def finished_scores(out: str, paths, n_classes: int, attrs: dict, average: str) -> tuple[np.ndarray, list]:
    """Scores of the videos an earlier run saved with the same `attrs`: (float32 (N, C), NaN rows for
    the videos still to do, and their indices)."""
    scores = np.full((len(paths), n_classes), np.nan, dtype=np.float32)
    todo = []
    for i, p in enumerate(paths):
        logits = load_video(video_file(out, p), attrs)
        if logits is None:
            todo.append(i)
        else:
            scores[i] = metrics.aggregate(logits, average)
    return scores, todo


def save_run(out: str, paths, labels, scores: np.ndarray, class_list, summary: dict, failed, attrs: dict) -> None:
    """Write <out>/predictions.h5, metrics.json and confusion_matrix.npy of a scored subset.
    `failed`: the paths that could not be decoded; `summary`: metrics.summarize of the scores."""
    os.makedirs(out, exist_ok=True)
    with atomic_write(os.path.join(out, "predictions.h5")) as tmp, h5py.File(tmp, "w") as h:
        h.create_dataset("videos", data=np.array([video_name(p) for p in paths], dtype=object),
                         dtype=h5py.string_dtype())
        h.create_dataset("class_list", data=np.array(class_list, dtype=object), dtype=h5py.string_dtype())
        h.create_dataset("labels", data=np.asarray(labels, dtype=np.int64))
        h.create_dataset("scores", data=scores)
        h.create_dataset("failed", data=np.isnan(scores).all(1))
        h.attrs.update({**attrs, "level": "video"})
    np.save(os.path.join(out, "confusion_matrix.npy"), summary["confusion"])
    failed_names = [video_name(p) for p in paths if p in failed]
    with atomic_write(os.path.join(out, "metrics.json")) as tmp, open(tmp, "w") as f:
        json.dump({**{k: summary[k] for k in METRIC_KEYS}, "failed": failed_names, **attrs}, f, indent=2)


@dataclass
class Predictions:
    """Contents of a predictions.h5 (N videos, C classes)."""
    path: str
    videos: np.ndarray      # str (N,)
    labels: np.ndarray      # int64 (N,)
    scores: np.ndarray      # float32 (N, C) per-video log-probabilities, NaN rows where failed
    failed: np.ndarray      # bool (N,)
    class_list: np.ndarray  # str (C,)
    attrs: dict = field(default_factory=dict)


def _plain(value):
    # h5py hands attrs back as numpy scalars/bytes; json and comparisons want plain python values
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    return value.item() if isinstance(value, np.generic) else value


def load_run(path: str) -> "Predictions":
    """Read a predictions.h5 (or a run folder holding one) -> Predictions. ValueError or FileNotFoundError
    naming the file when it is missing or not one."""
    if os.path.isdir(path):
        path = os.path.join(path, "predictions.h5")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"predictions file not found: {path}")
    try:
        with h5py.File(path, "r") as f:
            videos = f["videos"].asstr()[()]
            class_list = (f["class_list"].asstr()[()] if "class_list" in f
                          else np.array(_plain(f.attrs["class_list"]), dtype=str))
            labels = f["labels"][()].astype(np.int64)
            scores = f["scores"][()].astype(np.float32)
            failed = f["failed"][()].astype(bool)
            attrs = {k: _plain(v) for k, v in f.attrs.items() if k != "class_list"}
    except KeyError as e:
        raise ValueError(f"{path}: missing dataset ({e})") from e
    except OSError as e:
        raise ValueError(f"{path}: cannot read as HDF5 ({e})") from e
    n, c = len(videos), len(class_list)
    if scores.shape != (n, c) or labels.shape != (n,) or failed.shape != (n,):
        raise ValueError(f"{path}: inconsistent shapes videos {videos.shape}, labels {labels.shape}, "
                         f"scores {scores.shape}, failed {failed.shape}, {c} classes")
    if n and (labels.min() < 0 or labels.max() >= c):
        raise ValueError(f"{path}: labels outside [0, {c})")
    if len(set(videos)) != n:
        raise ValueError(f"{path}: duplicate video names")
    if attrs.get("level", "video") != "video":
        raise ValueError(f"{path}: level is {attrs['level']!r}, expected 'video'")
    failed = failed | metrics.failed_rows(scores)
    scores[failed] = np.nan  # a failed video must count as wrong even if its row holds numbers
    return Predictions(path, videos, labels, scores, failed, class_list, attrs)


def align(a: Predictions, b: Predictions) -> Predictions:
    """Reorder b's rows to a's video order; raise ValueError naming both files on any mismatch."""
    if list(a.class_list) != list(b.class_list):
        raise ValueError(f"class lists differ between {a.path} and {b.path}")
    only_a = sorted(set(a.videos) - set(b.videos))
    only_b = sorted(set(b.videos) - set(a.videos))
    if only_a or only_b:
        raise ValueError(f"video sets differ between {a.path} and {b.path}: {len(only_a)} only in the "
                         f"first (e.g. {only_a[:3]}), {len(only_b)} only in the second (e.g. {only_b[:3]})")
    position = {v: i for i, v in enumerate(b.videos)}
    order = np.array([position[v] for v in a.videos], dtype=np.int64)
    aligned = Predictions(b.path, b.videos[order], b.labels[order], b.scores[order], b.failed[order],
                          b.class_list, b.attrs)
    bad = np.flatnonzero(aligned.labels != a.labels)
    if len(bad):
        raise ValueError(f"labels differ between {a.path} and {b.path} for {len(bad)} videos "
                         f"(e.g. {a.videos[bad[0]]})")
    return aligned


def run_cli(main, parse_args, script):
    """main(parse_args()) as a command: a bad input file (ValueError, FileNotFoundError, whose messages
    name it) ends with one line `<script>: <message>` and exit status 1, not a traceback."""
    try:
        return main(parse_args())
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f"{script}: {e}") from None
