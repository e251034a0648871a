"""Dataset helpers for UCF-101: split files, video decoding, augmentation and the DataLoader.

The assignment's three functions keep their names and return shapes so that course material still
applies:

    class_list, (train_paths, train_labels), (test_paths, test_labels) = getUCF101(root, split=1)
    frame = loadFrame((path, augment))     # float32 [3, 224, 224], ImageNet-normalised
    clip = loadSequence((path, augment))   # float32 [3, 16, 224, 224], Kinetics-normalised

Paths are always the canonical `<root>/UCF-101/<Class>/<video>.avi`; whichever copy of that video
exists is read (see `resolve_video`): our compact JPEG store, the course's raw uint8 HDF5, or the AVI.

The training scripts do not use the float loaders. Their workers hand over uint8 tensors (4x less to
copy) and `normalize` runs once on the device; the float loaders call the very same functions, so
both paths give the same values.
"""
import itertools
import os
import queue
import random
import re
import threading
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import av
import cv2
import h5py
import numpy as np
import simplejpeg
import torch
from av.video.reformatter import VideoReformatter
from torch.utils.data import DataLoader, Dataset, DistributedSampler

# Normalisation constants (RGB, pixels scaled to [0, 1]).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
KINETICS_MEAN = (0.433, 0.4045, 0.3776)
KINETICS_STD = (0.1519876, 0.14855877, 0.156976)
# Hara et al.'s Kinetics checkpoint saw pixels in [0, 255] minus the ActivityNet mean, no std.
HARA_MEAN = (114.77, 107.74, 99.48)

FORMATS = ("jpeg", "hdf5", "avi")  # the order in which copies of a video are looked for
STORE_DIRS = {"jpeg": "UCF-101-jpeg", "hdf5": "UCF-101-hdf5", "avi": "UCF-101"}

cv2.setNumThreads(1)  # decoding runs in DataLoader workers: one thread each avoids oversubscription


class VideoReadError(RuntimeError):
    """A video that cannot be read. The message names the file and what is wrong with it."""

    def __init__(self, path, reason):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


# ----------------------------------------------------------------------------- split files

def _read_lines(path):
    """Non-empty, stripped lines of a split file as (line_number, text); tolerant of CRLF and blanks."""
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"split file not found: {path}. The official lists are UCF101TrainTestSplits-RecognitionTask.zip, "
            f"published with UCF-101 by UCF's CRCV: unzip it into the data root as ucfTrainTestlist/ "
            f"(make_toy_ucf101.py writes them for a toy dataset)")
    try:
        with open(path, encoding="utf-8") as f:
            return [(n, line.strip()) for n, line in enumerate(f, 1) if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: cannot read split file ({e})") from e


def read_class_list(base_directory):
    """Class names in classInd.txt order (label i is class_list[i])."""
    path = os.path.join(base_directory, "ucfTrainTestlist", "classInd.txt")
    names = []
    for n, line in _read_lines(path):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit() or int(parts[0]) != len(names) + 1:
            raise ValueError(f"{path}:{n}: expected '<index> <ClassName>' with index {len(names) + 1}, "
                             f"got {line!r}")
        names.append(parts[1])
    if not names:
        raise ValueError(f"{path}: no classes listed")
    return np.asarray(names)


def read_split(base_directory, split, subset, class_list=None):
    """(paths, labels) of one list of a split: subset "train" (trainlist0N.txt) or "test" (testlist0N.txt).
    Paths are `<base>/UCF-101/<Class>/<video>.avi`, labels 0-based in classInd order."""
    if split not in (1, 2, 3):
        raise ValueError(f"split must be 1, 2 or 3, got {split}")
    class_list = read_class_list(base_directory) if class_list is None else class_list
    return _read_split(base_directory, f"{subset}list0{split}.txt", {c: i for i, c in enumerate(class_list)})


def _read_split(base_directory, name, class_index):
    path = os.path.join(base_directory, "ucfTrainTestlist", name)
    paths, labels = [], []
    for n, line in _read_lines(path):
        parts = line.split()
        rel = parts[0].replace("\\", "/")
        cls = rel.split("/")[0]
        if len(parts) > 2 or "/" not in rel or not rel.endswith(".avi"):
            raise ValueError(f"{path}:{n}: expected '<Class>/<video>.avi [label]', got {line!r}")
        if cls not in class_index:
            raise ValueError(f"{path}:{n}: class {cls!r} is not in classInd.txt")
        label = class_index[cls]
        if len(parts) == 2 and parts[1] != str(label + 1):
            raise ValueError(f"{path}:{n}: label {parts[1]} does not match class {cls!r} "
                             f"(classInd.txt gives {label + 1})")
        paths.append(os.path.join(base_directory, "UCF-101", rel))
        labels.append(label)
    return np.asarray(paths), np.asarray(labels, dtype=np.int64)


def getUCF101(base_directory="", split=1):
    """Read the official UCF-101 split files under `<base_directory>/ucfTrainTestlist/`.

    Returns (class_list, (train_paths, train_labels), (test_paths, test_labels)) as in the
    assignment: paths are `<base>/UCF-101/<Class>/<video>.avi`, labels are 0-based in classInd order.
    """
    class_list = read_class_list(base_directory)
    return class_list, read_split(base_directory, split, "train", class_list), read_split(
        base_directory, split, "test", class_list)


# A UCF-101 video name ends in _gNN_cMM: group NN (one actor / setting), clip MM of that group.
GROUP_PATTERN = re.compile(r"_g(\d+)(?:_[^_]*)?$")


def video_group(path):
    """'<root>/UCF-101/Class/v_Class_g08_c01.avi' -> 8 (the group number: _gNN, last or followed by one
    more _part such as _c01); ValueError if the name has none."""
    m = GROUP_PATTERN.search(video_name(path))
    if m is None:
        raise ValueError(f"{path}: not a UCF-101 video name ending in _gNN_cMM, so it has no group")
    return int(m.group(1))


def split_validation(paths, labels, val_groups, source="the train list"):
    """Hold out the last `val_groups` groups of every class of a train list as a validation set.

    paths `(N,)`, labels `(N,)` -> ((train_paths, train_labels), (val_paths, val_labels)), both in
    the list's order. Deterministic: per class, the groups present in the list are sorted by number
    and the highest `val_groups` go to validation, so no group is ever split between the two (clips
    of one group share actor and setting) and no test-list group is touched. val_groups 0: all train.
    Raises ValueError naming `source` when a class has too few groups to keep one for training.
    """
    paths, labels = np.asarray(paths), np.asarray(labels, dtype=np.int64)
    if val_groups < 0:
        raise ValueError(f"--val-groups must be 0 or more, got {val_groups}")
    if val_groups == 0:  # the assignment's train list, whatever its names look like
        return (paths, labels), (paths[:0], labels[:0])
    groups = np.array([video_group(p) for p in paths], dtype=np.int64)
    val = np.zeros(len(paths), dtype=bool)
    for c in np.unique(labels):
        present = np.unique(groups[labels == c])
        if len(present) <= val_groups:
            cls = os.path.basename(os.path.dirname(str(paths[labels == c][0])))
            raise ValueError(f"{source}: class {cls} has {len(present)} groups, too few to hold out "
                             f"--val-groups {val_groups} and still train on one")
        val |= (labels == c) & np.isin(groups, present[-val_groups:])
    return (paths[~val], labels[~val]), (paths[val], labels[val])


def getUCF101_subsets(base_directory="", split=1, val_groups=0):
    """getUCF101 with validation: (class_list, train, val, test), each of train/val/test a
    (paths, labels) pair; val holds the last `val_groups` groups of every class of the train list
    (see split_validation) and train the rest. val_groups 0 gives the assignment's train list."""
    class_list, train, test = getUCF101(base_directory, split)
    source = os.path.join(base_directory, "ucfTrainTestlist", f"trainlist0{split}.txt")
    train, val = split_validation(*train, val_groups, source)
    return class_list, train, val, test


def video_name(path):
    """'<root>/UCF-101/Class/v_Class_g01_c01.avi' -> 'v_Class_g01_c01'."""
    return os.path.splitext(os.path.basename(str(path)))[0]


# ----------------------------------------------------------------------------- decoding

def store_path(path, fmt):
    """Where the copy of format `fmt` of the canonical video `path` lives."""
    path = str(path)
    cls_dir, fname = os.path.split(path)
    root = os.path.dirname(os.path.dirname(cls_dir))
    ext = ".avi" if fmt == "avi" else ".hdf5"
    return os.path.join(root, STORE_DIRS[fmt], os.path.basename(cls_dir), os.path.splitext(fname)[0] + ext)


def resolve_video(path, formats=FORMATS):
    """Return (fmt, real_path) of the first existing copy of a video, in `formats` order.

    `path` may also point straight at a video file anywhere: a .hdf5 in either store format, or any
    other file, which FFmpeg decodes (fmt "avi", read through PyAV), e.g. for predict.py.
    """
    path = str(path)
    candidates = [(fmt, store_path(path, fmt)) for fmt in formats]
    if path.endswith(".hdf5"):  # a direct HDF5 path: which kind is decided by its content
        candidates.insert(0, ("hdf5", path))
    elif "avi" in formats:
        candidates.append(("avi", path))
    for fmt, p in candidates:
        if os.path.isfile(p):
            return fmt, p
    tried = ", ".join(dict.fromkeys(p for _, p in candidates))
    raise VideoReadError(path, f"no copy of this video found (looked for {tried})")


@contextmanager
def _open_h5(real):
    """(kind, dataset) of an HDF5 copy of a video, kind "jpeg" (compact store) or "hdf5" (raw frames),
    while the file is open. h5py raises OSError for files that are not (complete) HDF5, on opening or
    on reading: either becomes a VideoReadError naming the file."""
    try:
        with h5py.File(real, "r") as h:
            yield _h5_dataset(h, real)
    except OSError as e:
        raise VideoReadError(real, f"cannot read as HDF5 ({e})") from e


def _h5_dataset(h, path):
    if "jpeg" in h:
        return "jpeg", h["jpeg"]
    if "video" in h:
        return "hdf5", h["video"]
    raise VideoReadError(path, f"HDF5 file has neither a 'video' nor a 'jpeg' dataset "
                               f"(found: {list(h.keys())})")


def _to_rgb(frames, path):
    """Check a raw HDF5 array and return uint8 (N, H, W, 3); grayscale is expanded."""
    if frames.dtype != np.uint8:
        raise VideoReadError(path, f"'video' has dtype {frames.dtype}, expected uint8")
    if frames.ndim == 3:
        frames = frames[..., None]
    if frames.ndim != 4 or frames.shape[-1] not in (1, 3):
        raise VideoReadError(path, f"'video' has shape {frames.shape}, expected (T, H, W, 3)")
    return np.repeat(frames, 3, axis=-1) if frames.shape[-1] == 1 else frames


def _jpeg_span(ds, keys):
    """The JPEG byte strings of frames `keys` (sorted) of a compact-store dataset: one h5py read of
    their span (16 single-element reads cost ~4 ms more, ~20% of reading and decoding a clip)."""
    if not len(keys):
        return ds[:0]
    return ds[keys[0]:keys[-1] + 1][keys - keys[0]]


def _decode_jpeg(buf, path, index, out=None):
    """Decode one compact-store frame to uint8 RGB (H, W, 3), straight into `out` when given.

    simplejpeg calls libjpeg-turbo without cv2.imdecode's overhead: the same pixels, faster
    (benchmark.py's "JPEG decoding" table), and it can write into our array.
    """
    try:
        if out is not None:
            h, w = simplejpeg.decode_jpeg_header(buf)[:2]
            if (h, w) != out.shape[:2]:
                raise VideoReadError(path, f"frame {index} is {w}x{h}, the first frame "
                                           f"{out.shape[1]}x{out.shape[0]}")
        return simplejpeg.decode_jpeg(buf, "RGB", buffer=out)
    except ValueError as e:  # corrupt or truncated data
        raise VideoReadError(path, f"frame {index} is not a valid JPEG ({e})") from e


def _decode_all(bufs, path, keys):
    """Decode JPEG frames into one uint8 (N, H, W, 3) RGB array (each frame decoded in place)."""
    if not len(bufs):
        return np.empty((0, 0, 0, 3), dtype=np.uint8)
    first = _decode_jpeg(bufs[0], path, keys[0])
    frames = np.empty((len(bufs),) + first.shape, dtype=np.uint8)
    frames[0] = first
    for i in range(1, len(bufs)):
        _decode_jpeg(bufs[i], path, keys[i], out=frames[i])
    return frames


# A container's frame count above this is bogus (11 hours at 25 fps; UCF-101's longest clip has 1,776
# frames): a raw MPEG-4 elementary stream under an .avi name reports e.g. -192153584101141, or 0.
MAX_PLAUSIBLE_FRAMES = 10**6
_DECODED_COUNTS = {}  # (path, mtime_ns, size) -> frames counted by decoding, for implausible headers


def _file_key(path):
    st = os.stat(path)
    return os.path.realpath(path), st.st_mtime_ns, st.st_size


@contextmanager
def _open_avi(path):
    """(container, video stream) of a video file FFmpeg reads (through PyAV), decoding on this
    thread only (DataLoader workers decode in parallel: one thread each), while it is open."""
    try:
        container = av.open(path)
    except av.FFmpegError as e:
        raise VideoReadError(path, f"cannot open this video (empty, corrupt or not a video: {e})") from e
    try:
        if not container.streams.video:
            raise VideoReadError(path, "cannot open this video: it holds no video stream")
        stream = container.streams.video[0]
        stream.thread_count = 1
        yield container, stream
    finally:
        container.close()


def _header_frames(stream):
    """The container's frame count, or None where it is implausible (<= 0 or > MAX_PLAUSIBLE_FRAMES)."""
    n = stream.frames
    return n if 0 < n <= MAX_PLAUSIBLE_FRAMES else None


def _avi_frame_count(path, stream):
    """Frames of an open video: its header's count where plausible, else counted by decoding the file
    once (remembered for this process, keyed by path, mtime and size), so that counting, training
    and testing give one file one verdict."""
    n = _header_frames(stream)
    n = _DECODED_COUNTS.get(_file_key(path)) if n is None else n
    if n is None:
        with _open_avi(path) as (container, s):
            n = _DECODED_COUNTS[_file_key(path)] = sum(1 for _ in _decoded(container, s))
    return n


def _decoded(container, stream):
    """The frames of `stream` in display order; ends at the first packet FFmpeg cannot decode (a
    truncated or corrupt file), as OpenCV's grab() does: the caller says what is missing."""
    try:
        yield from container.decode(stream)
    except av.FFmpegError:
        return


def _seekable(container, stream):
    """Whether a decoded frame's timestamp is its frame number, so that a seek lands where we know:
    an AVI (one timestamp tick per frame) whose decoder reorders nothing. Packed-bitstream DivX
    (two of the four real clips) has B-frames and timestamps that run 1, 2, 4, 3, 5, ...: such files
    are read from the start, counting frames, like a raw stream (no index to seek by) and any file
    whose header count is implausible (a broken header: its index is not trusted either)."""
    rate, tb = stream.average_rate, stream.time_base
    return (container.format.name == "avi" and not stream.codec_context.has_b_frames
            and _header_frames(stream) is not None and rate is not None and tb is not None and rate * tb == 1)


def _collect(path, container, stream, want, n, i):
    """Decode forward, converting frames `want` (sorted unique) to uint8 RGB (len(want), H, W, 3).
    Frames are numbered from `i`; i=None after a seek: from the first decoded frame's timestamp,
    whose successors must then count up by one, else None is returned (the caller reads from the
    start). `n`: the frame count the error message quotes (None: the file's length is unknown)."""
    seeking, out, k = i is None, None, 0
    for frame in _decoded(container, stream):
        if seeking and (frame.pts is None or (i is None and frame.pts > want[0]) or
                        (i is not None and frame.pts != i)):
            return None
        i = frame.pts if i is None else i
        if i == want[k]:
            out = _put(out, k, frame, len(want), path)
            k += 1
            if k == len(want):
                break
        i += 1
    if k < len(want):
        _missing(path, i, n)
    return out


_THREAD = threading.local()  # per thread: a swscale context may not be used by two threads at once


def _to_rgb24(frame):
    """A decoded frame as uint8 RGB (H, W, 3), through one reformatter per thread and process: its
    swscale context is reused from frame to frame (frame.to_ndarray sets one up per frame, which
    made a whole-video read 2x slower). One swscale thread (`threads=1`: the cores belong to the
    DataLoader workers); a context inherited through fork is never used (a forked DataLoader worker
    hung on the parent's swscale thread pool)."""
    if getattr(_THREAD, "pid", None) != os.getpid():
        _THREAD.rgb, _THREAD.pid = VideoReformatter(), os.getpid()
    return _THREAD.rgb.reformat(frame, format="rgb24", threads=1).to_ndarray()


def _put(out, k, frame, total, path):
    """Convert a decoded frame to RGB into out[k], allocating out (total, H, W, 3) at the first frame
    (one array for the clip: no list of frames to stack, a copy less)."""
    rgb = _to_rgb24(frame)
    if out is None:
        out = np.empty((total,) + rgb.shape, dtype=np.uint8)
    elif rgb.shape != out.shape[1:]:
        raise VideoReadError(path, f"frame {k} is {rgb.shape[1]}x{rgb.shape[0]}, the first frame "
                                   f"{out.shape[2]}x{out.shape[1]}")
    out[k] = rgb
    return out


def _missing(path, decoded, n):
    """Raise the error for a video that ended after `decoded` of its `n` frames."""
    if not decoded:
        raise VideoReadError(path, "no frame could be decoded (empty, corrupt or not a video)")
    raise VideoReadError(path, f"only {decoded} of the {n} frames in its header could be decoded "
                               f"(truncated or corrupt file?)")


def _read_avi(path, container, stream, n, keys):
    """Decode frames `keys` (sorted unique array; None: all) of an open video of `n` frames (None:
    unknown, then all are read) as uint8 RGB (N, H, W, 3).

    For a clip, seek to the keyframe before its first frame where timestamps are frame numbers
    (`_seekable`): frame-exact and several times faster than decoding from the start for late
    clips (benchmark.py measures it); else decode from the start. Only the frames asked for are
    converted to RGB. PyAV decodes through FFmpeg as OpenCV does, to the same pixels (tests check
    it), with less work per frame (benchmark.py's one-core table).
    """
    if keys is not None and not len(keys):
        return np.empty((0, 0, 0, 3), dtype=np.uint8)
    if keys is not None and keys[-1] >= n:
        raise VideoReadError(path, f"frames up to {keys[-1]} requested, the video has {n}")
    if keys is None and n is None:  # length unknown: frames listed, then stacked
        frames = [_to_rgb24(f) for f in _decoded(container, stream)]
        if not frames:
            _missing(path, 0, n)
        return np.stack(frames)
    if keys is None:
        out, k = None, 0
        for k, frame in enumerate(itertools.islice(_decoded(container, stream), n)):
            out = _put(out, k, frame, n, path)
        if out is None or k < n - 1:
            _missing(path, 0 if out is None else k + 1, n)
        return out
    want = keys.tolist()
    if want[0] > 0 and _seekable(container, stream):
        container.seek(want[0], stream=stream, backward=True, any_frame=False)
        frames = _collect(path, container, stream, want, n, None)
        if frames is not None:
            return frames
        with _open_avi(path) as (container, stream):
            return _collect(path, container, stream, want, n, 0)
    return _collect(path, container, stream, want, n, 0)


def count_frames(path: str) -> int:
    """Number of frames of a video (any format): an AVI's header count where plausible, else the
    frames decoded (once per file and process)."""
    fmt, real = resolve_video(path)
    if fmt == "avi":
        with _open_avi(real) as (_, stream):
            n = _avi_frame_count(real, stream)
        if n <= 0:
            raise VideoReadError(real, "no frame could be decoded (empty, corrupt or not a video)")
        return n
    with _open_h5(real) as (_, ds):
        n = len(ds)
    if n == 0:
        raise VideoReadError(real, "the video has no frames")
    return n


def read_frames(path, indices=None, formats=FORMATS):
    """Decode frames of a video as uint8 RGB (N, H, W, 3).

    `indices`: None for every frame; the frame numbers; or a function of the video's frame count
    returning them, so that a random clip is chosen and read with the file opened once.
    Indices may repeat or be unordered (short clips are padded by repeating frames).
    `formats`: which copies may be read, in order (prepare_data.py reads its source format only).
    """
    fmt, real = resolve_video(path, formats)
    if fmt == "avi":  # one open: the count (for a random clip), then the frames
        with _open_avi(real) as (container, stream):
            if indices is None and _header_frames(stream) is None:  # a raw stream read whole: its
                frames = _read_avi(real, container, stream, None, None)  # length is what decodes
                _DECODED_COUNTS[_file_key(real)] = len(frames)
                return frames
            n = _avi_frame_count(real, stream)
            if n == 0:
                raise VideoReadError(real, "no frame could be decoded (empty, corrupt or not a video)")
            keys, order = _unique_indices(real, indices(n) if callable(indices) else indices)
            frames = _read_avi(real, container, stream, n, keys)
    else:
        with _open_h5(real) as (kind, ds):
            n = len(ds)
            if n == 0:
                raise VideoReadError(real, "the video has no frames")
            keys, order = _unique_indices(real, indices(n) if callable(indices) else indices)
            if keys is None:
                keys = np.arange(n)
            elif len(keys) and keys[-1] >= n:
                raise VideoReadError(real, f"frames up to {keys[-1]} requested, the video has {n}")
            if kind == "jpeg":
                frames = _decode_all(_jpeg_span(ds, keys), real, keys)
            else:
                frames = _to_rgb(ds[:] if indices is None else ds[keys], real)
    if order is None or (len(order) == len(keys) and (order[1:] > order[:-1]).all()):
        return frames  # sorted, no repeats (a clip inside the video): no reordering copy
    return frames[order]


def _unique_indices(path, indices):
    """(sorted unique frame numbers, positions of `indices` in them), or (None, None) for all."""
    if indices is None:
        return None, None
    uniq, order = np.unique(np.asarray(indices, dtype=np.int64), return_inverse=True)
    if len(uniq) and uniq[0] < 0:
        raise VideoReadError(path, f"negative frame index {uniq[0]}")
    return uniq, order


# ----------------------------------------------------------------------------- sampling + augmentation

def clip_indices(n_frames, frames, rng):
    """Start a `frames`-long clip uniformly over the whole video (the last frames included).

    A video shorter than `frames` is padded by looping it (Hara et al.'s LoopPadding).
    """
    if n_frames >= frames:
        start = int(rng.integers(n_frames - frames + 1))
        return np.arange(start, start + frames)
    return np.arange(frames) % n_frames


@dataclass
class Augment:
    """One augmentation draw, applied identically to every frame of a clip."""
    crop: tuple = None   # (y, x, h, w) in source pixels, or None
    flip: bool = False
    brightness: int = 0  # added to 0-255 pixel values after resizing, then clipped


def draw_augment(rng, height, width):
    """The assignment's augmentation: with probability 1/2 a random crop of 70-100% of the width and
    of the height independently (aspect ratio not kept), a horizontal flip with probability 1/2,
    and a brightness shift uniform over the integers -15..15."""
    crop = None
    if rng.integers(2) == 0:
        w1 = int(width * (0.3 * rng.random() + 0.7))
        h1 = int(height * (0.3 * rng.random() + 0.7))
        # +1: the assignment's randint(W - w1) never touched the right/bottom edge and failed at w1 == W
        crop = (int(rng.integers(height - h1 + 1)), int(rng.integers(width - w1 + 1)), h1, w1)
    flip = bool(rng.integers(2) == 0)
    brightness = int(rng.integers(31)) - 15
    return Augment(crop, flip, brightness)


def apply_augment(frames, aug, size):
    """Crop, flip and resize uint8 frames (N, H, W, 3) -> uint8 (N, size, size, 3).

    Brightness is not applied here: it is added in `normalize`, in float, as the assignment does.
    """
    out = np.empty((len(frames), size, size, 3), dtype=np.uint8)
    for i, f in enumerate(frames):
        if aug.crop is not None:
            y, x, h, w = aug.crop
            f = f[y:y + h, x:x + w]
        if aug.flip:  # cv2.flip: same pixels, ~30x faster than copying the reversed view f[:, ::-1]
            f = cv2.flip(f, 1)
        cv2.resize(f, (size, size), dst=out[i], interpolation=cv2.INTER_LINEAR)  # a crop view: no copy
    return out


def normalize(x, brightness, mean, std):
    """uint8 frames -> normalised float32, channels first. Runs on whatever device `x` is on.

    x: uint8 (B, H, W, 3) or (B, T, H, W, 3); brightness: (B,) values added before clipping to
    [0, 255]. Returns float32 (B, 3, H, W) or (B, 3, T, H, W) ((x / 255) - mean) / std.
    The result keeps the channels-last memory layout, which convolutions on GPU prefer.
    """
    x = x.float()
    b = torch.as_tensor(brightness, dtype=x.dtype, device=x.device).reshape(-1, *[1] * (x.ndim - 1))
    x = (x + b).clamp_(0, 255).div_(255)
    mean = torch.as_tensor(mean, dtype=x.dtype, device=x.device)
    std = torch.as_tensor(std, dtype=x.dtype, device=x.device)
    return ((x - mean) / std).movedim(-1, 1)


def _legacy_rng():
    # The assignment's loaders use the global NumPy RNG, so np.random.seed() controls them too.
    return np.random.default_rng(np.random.randint(2**31))


def load_clip_uint8(path, augment, size, frames, rng):
    """Read one random clip of `frames` frames (frames=1: one random frame) and augment it.

    Returns (uint8 (frames, size, size, 3), brightness int).
    """
    raw = read_frames(path, lambda n: clip_indices(n, frames, rng))  # the file is opened once
    aug = draw_augment(rng, raw.shape[1], raw.shape[2]) if augment else Augment()
    return apply_augment(raw, aug, size), aug.brightness


def load_clip_jpeg(path, augment, frames, rng):
    """The first half of decoding on the device (`--decode device`): read one random clip's JPEG
    byte strings from the compact store and draw its augmentation, without decoding anything.

    The random draws are those of `load_clip_uint8`, in the same order, so both paths train on the
    same clips, crops and flips. Returns (list of `frames` uint8 byte arrays, Augment with its crop
    filled in: (y, x, h, w) in source pixels, the whole frame when augmentation drew none).
    """
    fmt, real = resolve_video(path)
    if fmt != "jpeg":
        raise VideoReadError(real, f"decoding on the device needs the compact store (prepare_data.py); "
                                   f"this video has only a {fmt} copy")
    with _open_h5(real) as (kind, ds):
        if kind != "jpeg":
            raise VideoReadError(real, "decoding on the device needs a 'jpeg' dataset (compact store); "
                                       "this file holds raw frames")
        idx = clip_indices(len(ds), frames, rng) if len(ds) else np.zeros(0, dtype=np.int64)
        uniq, order = _unique_indices(real, idx)
        bufs = _jpeg_span(ds, uniq)[order]
        height, width = int(ds.file.attrs.get("height", 0)), int(ds.file.attrs.get("width", 0))
    if not len(bufs):
        raise VideoReadError(real, "the video has no frames")
    for k, b in zip(idx, bufs):  # a truncated frame would fail the whole batch's decode on the GPU
        if len(b) < 4 or b[0] != 0xFF or b[1] != 0xD8 or b[-2] != 0xFF or b[-1] != 0xD9:
            raise VideoReadError(real, f"frame {k} is not a complete JPEG (no start or end marker)")
    if not height or not width:  # a store written without the attributes: decode one frame for its size
        height, width = _decode_jpeg(bufs[0], real, idx[0]).shape[:2]
    aug = draw_augment(rng, height, width) if augment else Augment()
    aug.crop = aug.crop or (0, 0, height, width)
    return list(bufs), aug


def loadFrame(args, size=224, rng=None):
    """(path, augment) -> float32 [3, size, size]: one random frame, ImageNet-normalised.

    Raises VideoReadError (naming the file) where the assignment returned an empty array.
    """
    path, augment = args
    frame, b = load_clip_uint8(path, augment, size, 1, rng or _legacy_rng())
    return normalize(torch.from_numpy(frame), [b], IMAGENET_MEAN, IMAGENET_STD)[0].numpy()


def loadSequence(args, size=224, frames=16, rng=None, mean=KINETICS_MEAN, std=KINETICS_STD):
    """(path, augment) -> float32 [3, frames, size, size]: one random clip, Kinetics-normalised."""
    path, augment = args
    clip, b = load_clip_uint8(path, augment, size, frames, rng or _legacy_rng())
    return normalize(torch.from_numpy(clip)[None], [b], mean, std)[0].numpy()


# ----------------------------------------------------------------------------- datasets + loader

class ClipDataset(Dataset):
    """One random clip (frames > 1) or frame (frames == 1) per video, as uint8.

    Indexed by (index, epoch) pairs from `SeededSampler`: the augmentation of a sample depends only
    on (seed, epoch, index), never on which worker loads it, so `--seed` reproduces a run exactly
    whatever the number of workers, and a resumed run draws what the uninterrupted one would have.
    A video that cannot be read yields {"failed": path}; the collate function drops it.
    """

    def __init__(self, paths, labels, augment, size=224, frames=16, seed=0, decode="worker"):
        self.paths, self.labels = list(map(str, paths)), np.asarray(labels, dtype=np.int64)
        self.augment, self.size, self.frames, self.seed = augment, size, frames, seed
        self.decode = decode  # "worker": decode and augment here; "device": hand over JPEG bytes

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, key):
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        rng = np.random.default_rng([self.seed, epoch, index])
        path, label = self.paths[index], int(self.labels[index])
        try:
            if self.decode == "device":
                bufs, aug = load_clip_jpeg(path, self.augment, max(self.frames, 1), rng)
                return {"jpeg": bufs, "box": aug.crop + (int(aug.flip),), "size": self.size,
                        "single": self.frames == 1, "brightness": float(aug.brightness), "label": label,
                        "index": index, "path": path}
            clip, b = load_clip_uint8(path, self.augment, self.size, self.frames, rng)
        except VideoReadError as e:
            return {"failed": path, "error": str(e), "index": index}
        video = torch.from_numpy(clip[0] if self.frames == 1 else clip)
        return {"video": video, "brightness": float(b), "label": label, "index": index}


def FrameDataset(paths, labels, augment, size=224, seed=0):
    """One random frame per video: uint8 (H, W, 3) samples for the single-frame model."""
    return ClipDataset(paths, labels, augment, size=size, frames=1, seed=seed)


class VideoDataset(ClipDataset):
    """Every frame of a video, resized, no augmentation: uint8 (T, size, size, 3), for testing."""

    def __init__(self, paths, labels, size=224):
        super().__init__(paths, labels, augment=False, size=size, frames=0)

    def __getitem__(self, key):
        index = key[0] if isinstance(key, tuple) else key
        try:
            frames = apply_augment(read_frames(self.paths[index]), Augment(), self.size)
        except VideoReadError as e:
            return {"failed": self.paths[index], "error": str(e), "index": index}
        return {"video": torch.from_numpy(frames), "brightness": 0.0,
                "label": int(self.labels[index]), "index": index}


TEST_CROPS = ("center", "three")  # --crops of the test scripts


def test_views(height, width, crops="center", flip=False):
    """The test-time views of a (height, width) video as Augment draws (no brightness).

    crops "center": the assignment's single view, the whole frame resized to the input size (it is
    centred and cuts nothing). "three": three squares of side min(height, width) along the longer
    side (start, centre, end: left, centre, right for UCF-101's 320x240), as video toolboxes crop
    after resizing the short side. flip: each view also mirrored, after the unflipped ones.
    """
    if crops == "center":
        views = [Augment()]
    elif crops == "three":
        side = min(height, width)
        starts = [0, (max(height, width) - side) // 2, max(height, width) - side]
        views = [Augment(crop=(0, s, side, side) if width >= height else (s, 0, side, side)) for s in starts]
    else:
        raise ValueError(f"crops must be one of {TEST_CROPS}, got {crops!r}")
    return views + [Augment(v.crop, True) for v in views] if flip else views


class MultiViewDataset(VideoDataset):
    """Every frame of a video in every test view (`test_views`): uint8 (V, T, size, size, 3)."""

    def __init__(self, paths, labels, size=224, crops="center", flip=False):
        super().__init__(paths, labels, size=size)
        self.crops, self.flip = crops, flip

    def __getitem__(self, key):
        index = key[0] if isinstance(key, tuple) else key
        try:
            frames = read_frames(self.paths[index])
            views = test_views(*frames.shape[1:3], self.crops, self.flip)
            video = np.stack([apply_augment(frames, v, self.size) for v in views])
        except VideoReadError as e:
            return {"failed": self.paths[index], "error": str(e), "index": index}
        return {"video": torch.from_numpy(video), "brightness": 0.0,
                "label": int(self.labels[index]), "index": index}


class SeededSampler(DistributedSampler):
    """A DistributedSampler (one replica when not distributed) that yields (index, epoch) pairs.

    The epoch travels with each index, so workers (persistent ones too) know which augmentation
    to draw without being told `set_epoch` themselves.
    """

    def __init__(self, dataset, shuffle, seed, num_replicas=1, rank=0):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed)

    def __iter__(self):
        return ((i, self.epoch) for i in super().__iter__())


def collate(samples):
    """Stack the samples that loaded; list the ones that failed.

    Returns {"video": uint8 (B, ...), "brightness": (B,), "label": (B,), "index": (B,),
    "failed": [(path, error), ...]}. B may be 0 when every sample of the batch failed.
    Samples for decoding on the device give, instead of "video", "jpeg": uint8 (n_bytes,) all the
    batch's JPEG frames back to back (one tensor: one shared-memory transfer, not B x T),
    "offsets": (B * T + 1,), "box": (B, 5) crop y, x, h, w and flip per clip, "size", "single", "path".
    """
    ok = [s for s in samples if "failed" not in s]
    batch = {"brightness": torch.tensor([s["brightness"] for s in ok], dtype=torch.float32),
             "label": torch.tensor([s["label"] for s in ok], dtype=torch.int64),
             "index": torch.tensor([s["index"] for s in ok], dtype=torch.int64),
             "failed": [(s["failed"], s["error"]) for s in samples if "failed" in s]}
    if ok and "jpeg" in ok[0]:
        bufs = [b for s in ok for b in s["jpeg"]]
        batch.update(jpeg=torch.from_numpy(np.concatenate(bufs)),
                     offsets=torch.from_numpy(np.cumsum([0] + [len(b) for b in bufs])),
                     box=torch.tensor([s["box"] for s in ok]), size=ok[0]["size"], single=ok[0]["single"],
                     path=[s["path"] for s in ok])
    else:
        batch["video"] = torch.stack([s["video"] for s in ok]) if ok else torch.empty(0, dtype=torch.uint8)
    return batch


def decode_on_device(batch, device):
    """The second half of `--decode device`: decode a collated batch of JPEG clips on `device`
    (nvJPEG on a GPU) and crop, flip and resize them there, as `apply_augment` does on the CPU.

    Returns the batch as the workers' path gives it, with "video" uint8 (B, T, S, S, 3) (single
    frames: (B, S, S, 3)) on `device`. A clip whose frames fail to decode is dropped and listed
    in "failed", like a video a worker cannot read: one bad video never costs the batch.
    """
    from torchvision.io import ImageReadMode, decode_jpeg
    from torchvision.ops import roi_align

    bufs = list(torch.tensor_split(batch["jpeg"], batch["offsets"][1:-1]))
    B, S = len(batch["label"]), batch["size"]
    T = len(bufs) // B
    try:
        imgs = decode_jpeg(bufs, mode=ImageReadMode.RGB, device=device)
        ok = list(range(B))
    except RuntimeError:  # nvJPEG fails the whole batch for one bad image: find the clip(s) by decoding each
        imgs, ok = [], []
        for b in range(B):
            try:
                imgs += decode_jpeg(bufs[b * T:(b + 1) * T], mode=ImageReadMode.RGB, device=device)
                ok.append(b)
            except RuntimeError as e:
                batch["failed"].append((batch["path"][b], f"{batch['path'][b]}: a frame is not a valid JPEG "
                                                          f"(decoding on {device}: {str(e)[:200]})"))
    box = batch["box"][ok]
    # roi_align with one sample per output pixel and aligned=True samples each crop at the pixel
    # centres (x + (j + 0.5) * w / S - 0.5), bilinearly: cv2.resize's INTER_LINEAR. One call crops and
    # resizes every frame of the batch; frames are grouped by size (UCF-101's are all 320x240).
    out = torch.empty(len(imgs), 3, S, S, device=device)
    groups = {}
    for i, im in enumerate(imgs):
        groups.setdefault(tuple(im.shape), []).append(i)
    for idx in groups.values():
        y, x, h, w = box[torch.tensor(idx) // T, :4].to(device=device, dtype=torch.float32).unbind(1)
        rois = torch.stack([torch.arange(len(idx), device=device, dtype=torch.float32), x, y, x + w, y + h], 1)
        frames = torch.stack([imgs[i] for i in idx]).float()
        out[idx] = roi_align(frames, rois, (S, S), spatial_scale=1.0, sampling_ratio=1, aligned=True)
    video = out.round_().clamp_(0, 255).to(torch.uint8).view(len(ok), T, 3, S, S)
    flip = box[:, 4].bool().to(device)
    video = torch.where(flip[:, None, None, None, None], video.flip(-1), video)
    video = video.permute(0, 1, 3, 4, 2).contiguous()  # (B, T, S, S, 3), as the workers hand it over
    keep = torch.tensor(ok, dtype=torch.int64)
    return {"video": video[:, 0] if batch["single"] else video, "brightness": batch["brightness"][keep],
            "label": batch["label"][keep], "index": batch["index"][keep], "failed": batch["failed"]}


class DeviceAhead:
    """Iterate a loader with every batch put on the device one step ahead, in a thread (on its own
    CUDA stream on a GPU): batch k+1 is read and decoded (`--decode device`: `decode_on_device`,
    nvJPEG's host-side work included) or copied (`--decode worker`, with `copy=True`) while the model
    trains on batch k, rather than queued behind it in the training stream.
    """

    _END = object()

    def __init__(self, loader, device, depth=2, copy=False):
        self.loader, self.device, self.depth, self.copy = loader, device, depth, copy

    def __len__(self):
        return len(self.loader)

    @staticmethod
    def _put(out, stop, item):
        """Queue `item` unless the training loop has stopped; True when it was queued."""
        while not stop.is_set():  # a bounded queue: stay `depth` batches ahead, no more
            try:
                out.put(item, timeout=0.1)
                return True
            except queue.Full:
                pass
        return False

    def _work(self, out, stop, stream):
        try:
            with torch.cuda.stream(stream) if stream is not None else nullcontext():
                for batch in self.loader:
                    if "jpeg" in batch:
                        batch = decode_on_device(batch, self.device)
                    elif self.copy:
                        batch["video"] = batch["video"].to(self.device, non_blocking=True)
                    if stream is not None:
                        batch["ready"] = torch.cuda.Event()
                        batch["ready"].record(stream)
                    if not self._put(out, stop, batch):
                        return
        except Exception as e:  # handed to the training thread, which raises it
            self._put(out, stop, e)
            return
        self._put(out, stop, self._END)

    def __iter__(self):
        out, stop = queue.Queue(maxsize=self.depth), threading.Event()
        stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None
        thread = threading.Thread(target=self._work, args=(out, stop, stream), daemon=True)
        thread.start()
        try:
            while (batch := out.get()) is not self._END:
                if isinstance(batch, Exception):
                    raise batch
                if "ready" in batch:  # the training stream waits for the decode stream, not the CPU
                    main = torch.cuda.current_stream(self.device)
                    main.wait_event(batch.pop("ready"))
                    if batch["video"].is_cuda:
                        batch["video"].record_stream(main)  # freed memory is reused only after training used it
                yield batch
        finally:
            stop.set()
            thread.join(timeout=10)  # it exits within its current loader step


def _seed_worker(worker_id):
    # torch seeds each worker from the loader's generator; make NumPy and random follow it, so
    # that any library code drawing from the global RNGs is reproducible too.
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def make_loader(dataset, batch_size, shuffle, workers, seed=0, num_replicas=1, rank=0):
    """The one DataLoader set-up every script uses.

    Worker processes decode in parallel, memory is pinned for fast non-blocking copies to the GPU,
    workers persist across epochs. Call `loader.sampler.set_epoch(epoch)` before each epoch.
    """
    sampler = SeededSampler(dataset, shuffle=shuffle, seed=seed, num_replicas=num_replicas, rank=rank)
    return DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, num_workers=workers, collate_fn=collate,
        pin_memory=torch.cuda.is_available(), persistent_workers=workers > 0,
        worker_init_fn=_seed_worker, generator=torch.Generator().manual_seed(seed),
        prefetch_factor=4 if workers > 0 else None)


def check_data_root(root):
    """Fail early, naming what is missing, when `root` does not look like a UCF-101 data root
    (FileNotFoundError; a root one level too deep, e.g. its UCF-101/ folder, is named as such).
    Returns the video folders found."""
    root = os.path.normpath(str(root))
    if not os.path.isdir(root):
        raise FileNotFoundError(f"data root {root} does not exist (expected a folder holding "
                                f"ucfTrainTestlist/ and UCF-101/, UCF-101-hdf5/ or UCF-101-jpeg/)")
    if not os.path.isdir(os.path.join(root, "ucfTrainTestlist")):
        # a folder inside the data root (its UCF-101/, or a class folder): name the root itself
        ups = [os.path.dirname(root), os.path.dirname(os.path.dirname(root))]
        above = next((u for u in ups if os.path.isdir(os.path.join(u, "ucfTrainTestlist"))), None)
        if above is None and os.path.basename(root) in STORE_DIRS.values():
            above = os.path.dirname(root)
        if above is not None:
            raise FileNotFoundError(f"data root {root} is a folder inside the data root (too deep): pass the "
                                    f"folder that holds ucfTrainTestlist/ and the video folders, --data-root {above}")
    found = [d for d in STORE_DIRS.values() if os.path.isdir(os.path.join(root, d))]
    if not found:
        raise FileNotFoundError(f"data root {root} holds none of the video folders "
                                f"{', '.join(STORE_DIRS.values())}")
    return found
