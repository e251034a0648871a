"""The prediction files: written, read and aligned in one place.

    <out>/UCF-101-predictions/<Class>/<video>.hdf5   one per video: dataset `predictions` float32 (n, C),
                                                     the logits of its frames, windows or views; attrs say how
    <out>/predictions.h5                             every video of a run: `videos` str (N,), `class_list`
                                                     str (C,), `labels` int64 (N,), `scores` float32 (N, C)
                                                     per-video log-probabilities (NaN rows: failed),
                                                     `failed` bool (N,); attrs: settings, level "video"
    <out>/metrics.json, <out>/confusion_matrix.npy   the run's video-level metrics

The test scripts write them (a rerun skips the videos already saved with the same settings);
combine_results.py reads and aligns them by video name, never by file order.
"""
import json
import os
from dataclasses import dataclass, field

import h5py
import numpy as np

import metrics
from atomic import atomic_write
from video_io import video_name

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
