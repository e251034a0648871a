"""The data layer: UCF-101's split files, augmentation, the assignment's loaders, datasets and the
DataLoader.

The assignment's functions keep their names and return shapes so that course material still
applies:

    class_list, (train_paths, train_labels), (test_paths, test_labels) = getUCF101(root, split=1)
    frame = loadFrame((path, augment))     # float32 [3, 224, 224], ImageNet-normalised
    clip = loadSequence((path, augment))   # float32 [3, 16, 224, 224], Kinetics-normalised

Paths are always the canonical `<root>/UCF-101/<Class>/<video>.avi`; video_io.py reads whichever
copy of that video exists. The training scripts do not use the float loaders: their workers hand
over the augmented uint8 clips (4x less to copy) and `normalize` runs once on the device. The float
loaders are those two steps in one call, so both paths give the same values.
"""
import os
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from video_io import VideoReadError, read_frames, video_name

# Normalisation constants (RGB, pixels scaled to [0, 1]).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
KINETICS_MEAN = (0.433, 0.4045, 0.3776)
KINETICS_STD = (0.1519876, 0.14855877, 0.156976)
# Hara et al.'s Kinetics checkpoint saw pixels in [0, 255] minus the ActivityNet mean, no std.
HARA_MEAN = (114.77, 107.74, 99.48)
PREFETCH_BATCHES = 4  # batches each loader worker prepares ahead
# A process forked after torch has run on the CPU (the handout's Pool(8) made after its model)
# inherits a thread pool it cannot use: normalize() there waited forever. One thread in every forked
# child, as in DataLoader workers.
os.register_at_fork(after_in_child=lambda: torch.set_num_threads(1))


# ----------------------------------------------------------------------------- split files

def _read_lines(path):
    """Non-empty, stripped lines of a split file as (line_number, text); tolerant of CRLF and
    blanks."""
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"split file not found: {path}. The official lists are "
            f"UCF101TrainTestSplits-RecognitionTask.zip, "
            f"published with UCF-101 by UCF's CRCV: unzip it into the data root as "
            f"ucfTrainTestlist/ (make_toy_ucf101.py writes them for a toy dataset)")
    try:
        with open(path, encoding="utf-8") as f:
            return [(n, line.strip()) for n, line in enumerate(f, 1) if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: cannot read split file ({e})") from e


def read_class_list(base_directory: str) -> np.ndarray:
    """Class names in classInd.txt order (label i is class_list[i])."""
    path = os.path.join(base_directory, "ucfTrainTestlist", "classInd.txt")
    names = []
    for n, line in _read_lines(path):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit() or int(parts[0]) != len(names) + 1:
            raise ValueError(f"{path}:{n}: expected '<index> <ClassName>' with index "
                             f"{len(names) + 1}, got {line!r}")
        names.append(parts[1])
    if not names:
        raise ValueError(f"{path}: no classes listed")
    return np.asarray(names)


def read_split(base_directory: str, split: int, subset: str,
               class_list: Sequence[str] | np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """(paths, labels) of one list of a split: subset "train" (trainlist0N.txt) or "test"
    (testlist0N.txt). Paths are `<base>/UCF-101/<Class>/<video>.avi`, labels 0-based in classInd
    order."""
    if split not in (1, 2, 3):
        raise ValueError(f"split must be 1, 2 or 3, got {split}")
    class_list = read_class_list(base_directory) if class_list is None else class_list
    return _read_split(base_directory, f"{subset}list0{split}.txt",
                       {c: i for i, c in enumerate(class_list)})


def _read_split(base_directory, name, class_index):
    path = os.path.join(base_directory, "ucfTrainTestlist", name)
    paths, labels, seen = [], [], {}
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
        if rel in seen:  # a video listed twice would be counted twice
            raise ValueError(f"{path}:{n}: {rel} is listed a second time "
                             f"(first on line {seen[rel]}); remove the repeated line")
        seen[rel] = n
        paths.append(os.path.join(base_directory, "UCF-101", rel))
        labels.append(label)
    return np.asarray(paths), np.asarray(labels, dtype=np.int64)


def getUCF101(base_directory: str = "", split: int = 1) -> tuple:
    """Read the official UCF-101 split files under `<base_directory>/ucfTrainTestlist/`.

    Returns (class_list, (train_paths, train_labels), (test_paths, test_labels)) as in the
    assignment: paths are `<base>/UCF-101/<Class>/<video>.avi`, labels are 0-based in classInd
    order.
    """
    class_list = read_class_list(base_directory)
    return class_list, read_split(base_directory, split, "train", class_list), read_split(
        base_directory, split, "test", class_list)


# A UCF-101 video name ends in _gNN_cMM: group NN (one actor / setting), clip MM of that group.
GROUP_PATTERN = re.compile(r"_g(\d+)(?:_[^_]*)?$")


def video_group(path: str) -> int:
    """'<root>/UCF-101/Class/v_Class_g08_c01.avi' -> 8 (the group number: _gNN, last or followed by
    one more _part such as _c01); ValueError if the name has none."""
    m = GROUP_PATTERN.search(video_name(path))
    if m is None:
        raise ValueError(f"{path}: not a UCF-101 video name ending in _gNN_cMM, so it has no group")
    return int(m.group(1))


def split_validation(paths: Sequence[str] | np.ndarray, labels: Sequence[int] | np.ndarray,
                     val_groups: int, source: str = "the train list") -> tuple:
    """Hold out the last `val_groups` groups of every class of a train list as a validation set.

    paths `(N,)`, labels `(N,)` -> ((train_paths, train_labels), (val_paths, val_labels)), both in
    the list's order. Deterministic: per class, the groups present in the list are sorted by number
    and the highest `val_groups` go to validation, so no group is ever split between the two (clips
    of one group share actor and setting) and no test-list group is touched. val_groups 0: all
    train.
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
            raise ValueError(f"{source}: class {cls} has {len(present)} groups, too few to hold "
                             f"out --val-groups {val_groups} and still train on one")
        val |= (labels == c) & np.isin(groups, present[-val_groups:])
    return (paths[~val], labels[~val]), (paths[val], labels[val])


def getUCF101_subsets(base_directory: str = "", split: int = 1, val_groups: int = 0) -> tuple:
    """getUCF101 with validation: (class_list, train, val, test), each of train/val/test a
    (paths, labels) pair; val holds the last `val_groups` groups of every class of the train list
    (see split_validation) and train the rest. val_groups 0 gives the assignment's train list."""
    class_list, train, test = getUCF101(base_directory, split)
    source = os.path.join(base_directory, "ucfTrainTestlist", f"trainlist0{split}.txt")
    train, val = split_validation(*train, val_groups, source)
    return class_list, train, val, test


# ------------------------------------------------------------------------- sampling + augmentation

def clip_indices(n_frames: int, frames: int, rng: np.random.Generator) -> np.ndarray:
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
    crop: tuple | None = None  # (y, x, h, w) in source pixels
    flip: bool = False
    brightness: int = 0  # added to 0-255 pixel values after resizing, saturating at 0 and 255


def draw_augment(rng: np.random.Generator, height: int, width: int) -> "Augment":
    """The assignment's augmentation: with probability 1/2 a random crop of 70-100% of the width and
    of the height independently (aspect ratio not kept), a horizontal flip with probability 1/2,
    and a brightness shift uniform over the integers -15..15."""
    crop = None
    if rng.integers(2) == 0:
        w1 = int(width * (0.3 * rng.random() + 0.7))
        h1 = int(height * (0.3 * rng.random() + 0.7))
        # +1: the assignment's randint(W - w1) missed the right/bottom edge and failed at w1 == W
        crop = (int(rng.integers(height - h1 + 1)), int(rng.integers(width - w1 + 1)), h1, w1)
    flip = bool(rng.integers(2) == 0)
    brightness = int(rng.integers(31)) - 15
    return Augment(crop, flip, brightness)


def apply_augment(frames: np.ndarray, aug: Augment, size: int) -> np.ndarray:
    """Crop, flip, resize and shift the brightness of uint8 frames (N, H, W, 3) -> uint8
    (N, size, size, 3).

    The brightness shift saturates at 0 and 255: the assignment's float (x + b) clipped to [0, 255],
    exactly, since x and b are integers.
    """
    out = np.empty((len(frames), size, size, 3), dtype=np.uint8)
    for i, f in enumerate(frames):
        if aug.crop is not None:
            y, x, h, w = aug.crop
            f = f[y:y + h, x:x + w]
        if aug.flip:  # cv2.flip: same pixels, ~30x faster than copying the reversed view f[:, ::-1]
            f = cv2.flip(f, 1)
        # a crop view: no copy
        cv2.resize(f, (size, size), dst=out[i], interpolation=cv2.INTER_LINEAR)
    # OpenCV's uint8 arithmetic saturates, in place (a numpy int16 round trip cost 35x more)
    if aug.brightness:
        rows = out.reshape(-1, size, 3)
        b = abs(aug.brightness)
        (cv2.add if aug.brightness > 0 else cv2.subtract)(rows, (b, b, b, 0), dst=rows)
    return out


def normalize(x: torch.Tensor, mean: tuple | torch.Tensor, std: tuple | torch.Tensor
              ) -> torch.Tensor:
    """uint8 frames (B, H, W, 3) or (B, T, H, W, 3) -> float32 ((x / 255) - mean) / std, channels
    first: (B, 3, H, W) or (B, 3, T, H, W). Runs on whatever device `x` is on; the result keeps the
    channels-last memory layout, which convolutions on GPU prefer."""
    x = x.float().div_(255)
    mean = torch.as_tensor(mean, dtype=x.dtype, device=x.device)
    std = torch.as_tensor(std, dtype=x.dtype, device=x.device)
    return ((x - mean) / std).movedim(-1, 1)


def _legacy_rng():
    # The assignment's loaders use the global NumPy RNG, so np.random.seed() controls them too.
    return np.random.default_rng(np.random.randint(2**31))


def load_clip(path: str, augment: bool, size: int, frames: int,
              rng: np.random.Generator) -> np.ndarray:
    """One random clip of `frames` frames (1: one random frame), augmented: uint8 (frames, size,
    size, 3)."""
    raw = read_frames(path, lambda n: clip_indices(n, frames, rng))  # the file is opened once
    aug = draw_augment(rng, raw.shape[1], raw.shape[2]) if augment else Augment()
    return apply_augment(raw, aug, size)


def loadFrame(args: tuple, size: int = 224, rng: np.random.Generator | None = None) -> np.ndarray:
    """(path, augment) -> float32 [3, size, size]: one random frame, ImageNet-normalised.

    Raises VideoReadError (naming the file) where the assignment returned an empty array.
    """
    path, augment = args
    frame = load_clip(path, augment, size, 1, rng or _legacy_rng())
    return normalize(torch.from_numpy(frame), IMAGENET_MEAN, IMAGENET_STD)[0].numpy()


def loadSequence(args: tuple, size: int = 224, frames: int = 16,
                 rng: np.random.Generator | None = None, mean: tuple = KINETICS_MEAN,
                 std: tuple = KINETICS_STD) -> np.ndarray:
    """(path, augment) -> float32 [3, frames, size, size]: one random clip, Kinetics-normalised."""
    path, augment = args
    clip = load_clip(path, augment, size, frames, rng or _legacy_rng())
    return normalize(torch.from_numpy(clip)[None], mean, std)[0].numpy()


# ----------------------------------------------------------------------------- datasets + loader

class ClipDataset(Dataset):
    """One random clip (frames > 1) or frame (frames == 1) per video: uint8 (T, S, S, 3) or
    (S, S, 3).

    Indexed by (index, epoch) pairs from `SeededBatches`: the augmentation of a sample depends only
    on (seed, epoch, index), never on which worker loads it, so `--seed` reproduces a run exactly
    whatever the number of workers, and a resumed run draws what the uninterrupted one would have.
    A video that cannot be read yields {"failed": path}; the collate function drops it.
    """

    def __init__(self, paths: Sequence[str] | np.ndarray, labels: Sequence[int] | np.ndarray,
                 augment: bool, size: int = 224, frames: int = 16, seed: int = 0) -> None:
        self.paths, self.labels = list(map(str, paths)), np.asarray(labels, dtype=np.int64)
        self.augment, self.size, self.frames, self.seed = augment, size, frames, seed

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        rng = np.random.default_rng([self.seed, epoch, index])
        try:
            sample = self.load(self.paths[index], rng)
        except VideoReadError as e:
            return {"failed": self.paths[index], "error": str(e), "index": index}
        return {**sample, "label": int(self.labels[index]), "index": index}

    def load(self, path: str, rng: np.random.Generator) -> dict:
        """The sample's data: {"video": uint8 clip}; subclasses load other views or forms of it."""
        clip = load_clip(path, self.augment, self.size, max(self.frames, 1), rng)
        return {"video": torch.from_numpy(clip[0] if self.frames == 1 else clip)}


TEST_CROPS = ("center", "three")  # --crops of the test scripts


def test_views(height: int, width: int, crops: str = "center", flip: bool = False) -> list:
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
        views = [Augment(crop=(0, s, side, side) if width >= height else (s, 0, side, side))
                 for s in starts]
    else:
        raise ValueError(f"crops must be one of {TEST_CROPS}, got {crops!r}")
    return views + [Augment(v.crop, True) for v in views] if flip else views


class VideoDataset(ClipDataset):
    """Every frame of a video in every test view (`test_views`), unaugmented: uint8
    (V, T, S, S, 3)."""

    def __init__(self, paths: Sequence[str] | np.ndarray, labels: Sequence[int] | np.ndarray,
                 size: int = 224, crops: str = "center", flip: bool = False) -> None:
        super().__init__(paths, labels, augment=False, size=size, frames=0)
        self.crops, self.flip = crops, flip

    def load(self, path: str, rng: np.random.Generator) -> dict:
        frames = read_frames(path)  # nothing random: rng is not drawn from
        views = test_views(*frames.shape[1:3], self.crops, self.flip)
        return {"video": torch.from_numpy(np.stack([apply_augment(frames, v, self.size)
                                                    for v in views]))}


class SeededBatches(Sampler):
    """The batches of one process, as lists of (index, epoch) pairs: the dataset in a seeded order
    (torch.randperm seeded with seed + epoch) cut into batches of `batch_size`, each batch shared
    out between the `world` processes (rank r takes its samples r, r + world, ...). An optimizer
    step sees the same samples whatever the number of processes, so --batch-size is the batch of a
    step in all.

    The epoch travels with each index, so workers (persistent ones too) know which augmentation to
    draw without being told `set_epoch` themselves.
    """

    def __init__(self, n: int, batch_size: int, shuffle: bool, seed: int = 0, world: int = 1,
                 rank: int = 0) -> None:
        self.n, self.batch_size, self.shuffle, self.seed = n, batch_size, shuffle, seed
        self.world, self.rank, self.epoch = world, rank, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-self.n // self.batch_size)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        if self.shuffle:
            order = torch.randperm(self.n, generator=torch.Generator().manual_seed(
                self.seed + self.epoch)).tolist()
        else:
            order = list(range(self.n))
        for start in range(0, self.n, self.batch_size):
            yield [(i, self.epoch)
                   for i in order[start:start + self.batch_size][self.rank::self.world]]


def collate(samples: list) -> dict:
    """Stack the samples that loaded; list the ones that failed.

    Returns {"video": uint8 (B, ...), "label": (B,), "index": (B,), "failed": [(path, error), ...]};
    B is 0 when every sample of the batch failed.
    """
    ok = [s for s in samples if "failed" not in s]
    return {"video": (torch.stack([s["video"] for s in ok]) if ok
                      else torch.empty(0, dtype=torch.uint8)),
            "label": torch.tensor([s["label"] for s in ok], dtype=torch.int64),
            "index": torch.tensor([s["index"] for s in ok], dtype=torch.int64),
            "failed": [(s["failed"], s["error"]) for s in samples if "failed" in s]}


def _worker_init(worker_id):
    # One OpenCV thread per worker: the workers already decode in parallel. torch seeds each worker
    # from the loader's generator; NumPy and random follow it, so that library code drawing from the
    # global RNGs is reproducible too.
    cv2.setNumThreads(1)
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def make_loader(dataset: Dataset, batch_size: int, shuffle: bool, workers: int, seed: int = 0,
                world: int = 1, rank: int = 0) -> DataLoader:
    """The one DataLoader set-up every script uses: `SeededBatches` of `batch_size` samples in all
    (this process's share of each under torchrun).

    Worker processes decode in parallel, memory is pinned for fast non-blocking copies to the GPU,
    workers persist across epochs. Call `loader.batch_sampler.set_epoch(epoch)` before each epoch.
    """
    batches = SeededBatches(len(dataset), batch_size, shuffle, seed, world, rank)
    return DataLoader(
        dataset, batch_sampler=batches, num_workers=workers, collate_fn=collate,
        pin_memory=torch.cuda.is_available(), persistent_workers=workers > 0,
        worker_init_fn=_worker_init, generator=torch.Generator().manual_seed(seed),
        prefetch_factor=PREFETCH_BATCHES if workers > 0 else None)
