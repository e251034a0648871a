"""The steps both test scripts (and tools/predict.py) share, and the prediction files they write.

Which videos a test scores, the trained model of a checkpoint, its inputs (every frame, or the 3D
model's windows), short videos batched together, and the files every video's predictions are saved
to as it is done, so that one bad video or an interruption never costs the others:

    <out>/UCF-101-predictions/<Class>/<video>.hdf5   one per video: dataset `predictions` float32
                                                     (n, C), the logits of its frames, windows or
                                                     views
    <out>/predictions.h5                             every video of a run: `videos` str (N,),
                                                     `class_list` str (C,), `labels` int64 (N,),
                                                     `scores` float32 (N, C) per-video
                                                     log-probabilities (NaN rows: failed),
                                                     `failed` bool (N,)
    <out>/metrics.json, <out>/confusion_matrix.npy   the run's video-level metrics

Every file records how it was made in its attributes (`identity`: the checkpoint's weight digest and
the test settings); a rerun reuses only what was made alike, and an --out holding predictions made
otherwise stops the run unless --overwrite. combine_results.py reads and aligns runs by video name,
never by file order.
"""
import argparse
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import h5py
import numpy as np
import torch
from tqdm import tqdm

import engine
import helperFunctions as hf
import metrics
import utils
import video_io
from video_io import video_name

SUBSETS = ("test", "val")  # the test scripts score the split's test list or its held-out groups
# The test scripts' defaults, which tools/predict.py scores with too.
AVERAGE = "log_softmax"  # how frames / windows are combined (the assignment's naive-Bayes sum)
AVERAGES = ("log_softmax", "softmax")
FRAME_BATCH = 200        # frames per forward pass (single-frame model)
WINDOW_BATCH = 32        # windows per forward pass (3D model)
MODE, STRIDE = "windows", 8  # the 3D model: 16-frame windows every 8 frames
PREDICTIONS_DIR = "UCF-101-predictions"
METRIC_KEYS = ("level", "n_videos", "n_failed", *metrics.TOP_K_KEYS, "mean_class_accuracy")
# What decides a video's saved predictions, and the flag that changes it.
IDENTITY_FLAGS = {"model": "the test script (test_single_frame.py / test_3d.py)",
                  "checkpoint_sha256": "--checkpoint (its weights)", "split": "--split",
                  "subset": "--subset", "val_groups": "--val-groups", "crops": "--crops",
                  "flip": "--flip", "mode": "--mode", "stride": "--stride", "average": "--average",
                  "precision": "--precision"}


# ------------------------------------------------------------------------ flags, checkpoint, videos

def add_test_flags(p: argparse.ArgumentParser, checkpoint: str, batch_size: int, what: str,
                   out: str) -> None:
    """The flags both test scripts share; `what` the model scores ("frames", "windows")."""
    engine.add_data_flags(p, val_groups_default=None)
    p.add_argument("--checkpoint", default=checkpoint, help="checkpoint.pt of the training script")
    p.add_argument("--subset", choices=SUBSETS, default="test",
                   help="test: the split's test list; val: the --val-groups held out of its train "
                        "list")
    p.add_argument("--crops", choices=hf.TEST_CROPS, default="center",
                   help="center: the whole frame resized (the assignment's); three: three squares "
                        f"along the longer side; predictions averaged over views like {what}")
    p.add_argument("--flip", action="store_true", help="also score every view mirrored")
    p.add_argument("--average", choices=AVERAGES, default=AVERAGE,
                   help=f"how the {what}' predictions are combined (log_softmax: the assignment's)")
    p.add_argument("--batch-size", type=utils.positive_int, default=batch_size,
                   help=f"{what} per forward pass")
    engine.add_device_flags(p)
    p.add_argument("--out", default=out, help="run folder: predictions, metrics")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the predictions in --out when they were made otherwise (another "
                        "checkpoint or other settings); without it such an --out stops the run")


def load_for_testing(checkpoint: str, kind: str) -> dict:
    """The checkpoint a test script scores with, or one line saying why it cannot be used."""
    try:
        return engine.load_checkpoint(checkpoint, kind)
    except (FileNotFoundError, ValueError) as e:
        # a message, not a traceback: wrong or missing file
        raise SystemExit(f"--checkpoint: {e}") from None


def test_lists(data_root: str, split: int | None, val_groups: int | None, subset: str, ckpt: dict,
               checkpoint: str) -> tuple:
    """(class_list, paths, labels, split, val_groups) of the videos a test script scores: the
    split's test list, or (subset "val") the groups held out of its train list. split / val_groups
    None: the checkpoint's. Stops with a message when the checkpoint was trained on another split or
    validation set, on other classes, or the subset is empty."""
    split = ckpt["split"] if split is None else split
    val_groups = ckpt["val_groups"] if val_groups is None else val_groups
    if (split, val_groups) != (ckpt["split"], ckpt["val_groups"]):
        raise SystemExit(f"{checkpoint} was trained on split {ckpt['split']} with --val-groups "
                         f"{ckpt['val_groups']}, "
                         f"not split {split} with --val-groups {val_groups}: its scores on these "
                         f"videos would not be held out; test it with the settings it was trained "
                         f"with")
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
        raise SystemExit(f"{checkpoint} was trained on {ckpt['num_classes']} other classes than "
                         f"the {len(class_list)} of {data_root}")
    if len(paths) == 0:
        raise SystemExit(f"--subset {subset} of split {split} is empty in "
                         f"{data_root}/ucfTrainTestlist: "
                         + ("train with --val-groups N (N > 0) to hold groups out for validation"
                            if subset == "val" else "its test list names no video"))
    return class_list, paths, labels, split, val_groups


def model_from_checkpoint(ckpt: dict) -> engine.FineTune:
    """Rebuild the trained network of a checkpoint (eval mode, on CPU); it takes uint8 inputs."""
    if ckpt["kind"] == "3d":
        import resnet_3d
        model = resnet_3d.build(ckpt["arch"], num_classes=ckpt["num_classes"],
                                layer4_blocks=ckpt["layer4_blocks"],
                                widen_factor=ckpt["widen_factor"],
                                shortcut_type=ckpt["shortcut_type"])
    else:
        import torchvision
        model = getattr(torchvision.models, ckpt["arch"])(weights=None,
                                                          num_classes=ckpt["num_classes"])
    model.load_state_dict(ckpt["model"])
    stats = engine.input_stats(ckpt["kind"], ckpt.get("preprocess", "assignment"))
    return engine.FineTune(model, "fc", *stats).eval()


def model_attrs(ckpt: dict, checkpoint: str) -> dict:
    """How the tested model was made, for the prediction files and the report's methods section."""
    train = ckpt["args"]
    about = {"checkpoint": os.path.abspath(checkpoint), "epochs": ckpt["epoch"],
             "arch": ckpt["arch"],
             "size": ckpt["size"], "frames": ckpt["frames"], "train_from": ckpt["train_from"],
             "frozen_bn": ckpt["frozen_bn"],
             "layer4_blocks": ckpt.get("layer4_blocks"), "widen_factor": ckpt.get("widen_factor"),
             "preprocess": ckpt.get("preprocess"), "lr": train["lr"],
             "batch_size": train["batch_size"],
             "pretrained": train["pretrained"], "train_precision": ckpt["precision"],
             "processes": ckpt["processes"]}
    return {k: v for k, v in about.items() if v is not None}  # HDF5 attributes cannot hold None


# ------------------------------------------------------------------------ model inputs and scoring

def window_starts(n_frames: int, frames: int, stride: int) -> list:
    """Starts of the `frames`-long windows every `stride` frames, the last window always
    included."""
    starts = list(range(0, max(n_frames - frames, 0) + 1, stride))
    if starts[-1] != max(n_frames - frames, 0):
        starts.append(n_frames - frames)
    return starts


def window_inputs(video: torch.Tensor, mode: str, frames: int, stride: int) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> the 3D model's inputs: its `frames`-long windows every `stride`
    frames (n_windows, frames, H, W, 3) (mode "windows"), or the whole video (1, T, H, W, 3) (mode
    "full"). A video shorter than `frames` is looped, as in training."""
    if len(video) < frames:
        video = video[torch.arange(frames) % len(video)]
    if mode == "full":
        return video[None]
    return torch.stack([video[s:s + frames] for s in window_starts(len(video), frames, stride)])


def logits_of(net: torch.nn.Module, inputs: torch.Tensor, run: engine.Run,
              batch_size: int) -> np.ndarray:
    """uint8 model inputs, frames (N, H, W, 3) or clips (N, T, H, W, 3) -> float32 logits (N, C),
    `batch_size` inputs a forward pass."""
    with torch.inference_mode(), engine.autocast(run):
        return torch.cat([net(chunk.to(run.device, non_blocking=True)).float().cpu()
                          for chunk in inputs.split(batch_size)]).numpy()


@dataclass
class VideoBatch:
    """The inputs of consecutive videos scored in one forward pass: `indices` into the loader's
    dataset, `rows` inputs of each, their inputs concatenated (sum(rows), ...)."""
    indices: list
    rows: list
    inputs: torch.Tensor

    def per_video(self, logits: np.ndarray) -> Iterator[tuple]:
        """(index, its logits (rows, C)) of every video of the batch."""
        return zip(self.indices, np.split(logits, np.cumsum(self.rows)[:-1]))


def video_batches(loader: torch.utils.data.DataLoader, to_inputs: Callable, batch_size: int,
                  failed: dict) -> Iterator[VideoBatch]:
    """The videos of `loader` (an hf.VideoDataset, one video a batch) as VideoBatch: the inputs of
    consecutive videos are put together while they fit `batch_size` and have one shape (a batch of
    one 40-frame video keeps a CPU or GPU far below its speed); a longer video is a batch of its
    own. to_inputs(view) maps a view, uint8 (T, S, S, 3), to its model inputs (n, ...); every view's
    rows are averaged together later, like frames or windows. A video that fails to decode is added
    to `failed` {path: error} and printed. Shows a progress bar of the videos done."""
    pending, bar = [], tqdm(total=len(loader.dataset), desc="test videos", dynamic_ncols=True)

    def batch_of_pending():
        return VideoBatch([i for i, _ in pending], [len(v) for _, v in pending],
                          torch.cat([v for _, v in pending]))

    for batch in loader:
        for path, err in batch["failed"]:
            failed[path] = err
            tqdm.write(f"FAILED (counted wrong) {err}")
            bar.update(1)
        if len(batch["label"]) == 0:
            continue
        x = torch.cat([to_inputs(view) for view in batch["video"][0]])
        if pending and (sum(len(v) for _, v in pending) + len(x) > batch_size
                        or x.shape[1:] != pending[0][1].shape[1:]):
            yield batch_of_pending()
            bar.update(len(pending))
            pending = []
        pending.append((int(batch["index"][0]), x))
    if pending:
        yield batch_of_pending()
        bar.update(len(pending))
    bar.close()


@contextmanager
def out_of_memory_message(batch: VideoBatch, paths: Sequence[str], out: str) -> Iterator[None]:
    """A CUDA out-of-memory error in testing as one line saying what to change and what is
    kept."""
    try:
        yield
    except torch.cuda.OutOfMemoryError:
        raise SystemExit(f"CUDA out of memory on "
                         f"{', '.join(video_name(paths[i]) for i in batch.indices)} "
                         f"({len(batch.inputs)} inputs of {tuple(batch.inputs.shape[1:])}): try a "
                         f"smaller --batch-size (test_3d.py: or --mode windows); the videos scored "
                         f"so far are saved in {out} and a rerun skips them") from None


def kept_on_interrupt(args: argparse.Namespace) -> str:
    """What an interrupted test run keeps, and how to go on (utils.interruptible)."""
    return (f"every video scored so far is saved in {args.out}/{PREDICTIONS_DIR}; run the same "
            f"command again to continue from there")


def print_results(summary: dict, class_list: Sequence[str] | np.ndarray, failed_names: list,
                  subset: str, out: str) -> None:
    """Per-class accuracy worst first, the failed videos, and the video-level top-1/5/10 line."""
    acc, counts = summary["per_class"]["accuracy"], summary["per_class"]["n_videos"]
    print("\nper-class accuracy (video-level), worst first:")
    for c in np.argsort(np.nan_to_num(acc, nan=2.0), kind="stable"):
        if counts[c]:
            print(f"  {class_list[c]:<28s} {acc[c]:6.3f}  ({counts[c]} videos)")
    if failed_names:
        print(f"{len(failed_names)} videos could not be decoded and count as wrong: "
              f"{', '.join(failed_names)}")
    top = "  ".join(f"top{k} {summary[f'top{k}']:.4f}" for k in metrics.TOP_K)
    print(f"video-level accuracy over {summary['n_videos']} {subset} videos "
          f"({summary['n_failed']} failed): "
          f"{top}  mean class {summary['mean_class_accuracy']:.4f}")
    print(f"saved {out}/predictions.h5, metrics.json, confusion_matrix.npy and {PREDICTIONS_DIR}/")


# ----------------------------------------------------------------------------- prediction files

def video_file(out: str, video_path: str) -> str:
    """Where a video's saved predictions go: <out>/UCF-101-predictions/<Class>/<video>.hdf5,
    mirroring the dataset as the assignment does."""
    cls = os.path.basename(os.path.dirname(str(video_path)))
    return os.path.join(out, PREDICTIONS_DIR, cls, video_name(video_path) + ".hdf5")


def save_video(path: str, logits: np.ndarray, identity: dict) -> None:
    """Per-video logits (n, C) -> HDF5 dataset `predictions`, atomically, with how they were
    made."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with utils.atomic_write(path) as tmp, h5py.File(tmp, "w") as h:
        h.create_dataset("predictions", data=logits.astype(np.float32))
        h.attrs.update(identity)


def _identity_of(attrs) -> dict:
    return {k: _plain(attrs[k]) for k in IDENTITY_FLAGS if k in attrs}


def _differ(saved: dict, identity: dict) -> str:
    """'--crops was center, now three; ...' for the identity keys that differ, or ''."""
    return "; ".join(f"{IDENTITY_FLAGS[k]} was {utils.shown(saved.get(k))}, "
                     f"now {utils.shown(identity.get(k))}"
                     for k in utils.differences(saved, identity))


def clear_run(out: str) -> None:
    """Remove the prediction files of a test run folder (--overwrite); nothing else in it."""
    shutil.rmtree(os.path.join(out, PREDICTIONS_DIR), ignore_errors=True)
    for name in ("predictions.h5", "metrics.json", "confusion_matrix.npy"):
        if os.path.exists(os.path.join(out, name)):
            os.remove(os.path.join(out, name))


def finished_scores(out: str, paths: Sequence[str] | np.ndarray, n_classes: int, identity: dict,
                    average: str) -> tuple[np.ndarray, list]:
    """Scores of the videos an earlier run saved in `out` with this `identity`: (float32 (N, C)
    with NaN rows for the videos still to do, their indices). Stops with one line naming what
    differs when `out` holds predictions made otherwise (its predictions.h5, or any video's
    file)."""
    run_file = os.path.join(out, "predictions.h5")
    if os.path.isfile(run_file):
        try:
            with h5py.File(run_file, "r") as h:
                saved = _identity_of(h.attrs)
        except OSError:
            saved = {}
        if saved and _differ(saved, identity):
            raise SystemExit(f"--out {out} holds predictions made otherwise "
                             f"({_differ(saved, identity)}): use "
                             f"another --out, or --overwrite to replace them")
    scores = np.full((len(paths), n_classes), np.nan, dtype=np.float32)
    todo = []
    for i, p in enumerate(paths):
        try:
            with h5py.File(video_file(out, p), "r") as h:
                saved, logits = _identity_of(h.attrs), h["predictions"][()]
        except (OSError, KeyError):  # absent, or cut short by a kill: score it (again)
            todo.append(i)
            continue
        if _differ(saved, identity):
            raise SystemExit(f"--out {out} holds predictions made otherwise ({video_file(out, p)}: "
                             f"{_differ(saved, identity)}): use another --out, or --overwrite to "
                             f"replace them")
        scores[i] = metrics.aggregate(logits, average)
    return scores, todo


def save_run(out: str, paths: Sequence[str] | np.ndarray, labels: np.ndarray, scores: np.ndarray,
             class_list: Sequence[str] | np.ndarray, summary: dict, failed: list,
             attrs: dict) -> None:
    """Write <out>/predictions.h5, metrics.json and confusion_matrix.npy of a scored subset.
    `failed`: the paths that could not be decoded; `summary`: metrics.summarize of the scores;
    `attrs`: the identity and how the model was made."""
    os.makedirs(out, exist_ok=True)
    with utils.atomic_write(os.path.join(out, "predictions.h5")) as tmp, h5py.File(tmp, "w") as h:
        h.create_dataset("videos", data=np.array([video_name(p) for p in paths], dtype=object),
                         dtype=h5py.string_dtype())
        h.create_dataset("class_list", data=np.array(class_list, dtype=object),
                         dtype=h5py.string_dtype())
        h.create_dataset("labels", data=np.asarray(labels, dtype=np.int64))
        h.create_dataset("scores", data=scores)
        h.create_dataset("failed", data=np.isnan(scores).all(1))
        h.attrs.update({**attrs, "level": "video"})
    with utils.atomic_write(os.path.join(out, "confusion_matrix.npy")) as tmp, open(tmp, "wb") as f:
        np.save(f, summary["confusion"])
    failed_names = [video_name(p) for p in failed]
    utils.write_json(os.path.join(out, "metrics.json"),
                     {**{k: summary[k] for k in METRIC_KEYS}, "failed": failed_names, **attrs},
                     indent=2)


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


def load_run(path: str) -> Predictions:
    """Read a predictions.h5 (or a run folder holding one) -> Predictions. ValueError or
    FileNotFoundError naming the file when it is missing or not one."""
    if os.path.isdir(path):
        path = os.path.join(path, "predictions.h5")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"predictions file not found: {path}")
    try:
        with h5py.File(path, "r") as f:
            videos = f["videos"].asstr()[()]
            class_list = f["class_list"].asstr()[()]
            labels = f["labels"][()].astype(np.int64)
            scores = f["scores"][()].astype(np.float32)
            failed = f["failed"][()].astype(bool)
            attrs = {k: _plain(v) for k, v in f.attrs.items()}
    except KeyError as e:
        raise ValueError(f"{path}: missing dataset ({e})") from e
    except OSError as e:
        raise ValueError(f"{path}: cannot read as HDF5 ({e})") from e
    n, c = len(videos), len(class_list)
    if scores.shape != (n, c) or labels.shape != (n,) or failed.shape != (n,):
        raise ValueError(f"{path}: inconsistent shapes videos {videos.shape}, "
                         f"labels {labels.shape}, "
                         f"scores {scores.shape}, failed {failed.shape}, {c} classes")
    if n and (labels.min() < 0 or labels.max() >= c):
        raise ValueError(f"{path}: labels outside [0, {c})")
    if len(set(videos)) != n:
        raise ValueError(f"{path}: duplicate video names")
    if attrs.get("level") != "video" or "model" not in attrs:
        raise ValueError(f"{path}: not a predictions.h5 of test_single_frame.py or test_3d.py")
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
        raise ValueError(f"video sets differ between {a.path} and {b.path}: {len(only_a)} only in "
                         f"the first (e.g. {only_a[:3]}), {len(only_b)} only in the second "
                         f"(e.g. {only_b[:3]})")
    position = {v: i for i, v in enumerate(b.videos)}
    order = np.array([position[v] for v in a.videos], dtype=np.int64)
    aligned = Predictions(b.path, b.videos[order], b.labels[order], b.scores[order],
                          b.failed[order], b.class_list, b.attrs)
    bad = np.flatnonzero(aligned.labels != a.labels)
    if len(bad):
        raise ValueError(f"labels differ between {a.path} and {b.path} for {len(bad)} videos "
                         f"(e.g. {a.videos[bad[0]]})")
    return aligned
