"""Shared pytest fixtures: the real UCF-101 material in ../shared/data and data roots built from it.

Usage: imported by pytest; e.g. `def test_x(real_root): video_io.read_frames(real_root.paths[0])`.

The real split files and four real clips live beside the project root (never copied into the
repository). `real_root` builds, once per session, a data root holding the clips in all three
formats; `make_root` makes private roots (symlinks to those copies) that a test may modify.
"""
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

import video_io
from tools import prepare_data

REPO = Path(__file__).resolve().parents[1]

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
# Frame counts of the real clips, from ../shared/data/README.md.
REAL_CLIPS = {"v_ApplyEyeMakeup_g01_c01": 164, "v_Archery_g01_c01": 131,
              "v_Basketball_g01_c01": 141, "v_Shotput_g05_c02": 130}
# The one file-name/folder mismatch of the real data: HandstandPushups/v_HandStandPushups_*.
_CLASS_QUIRKS = {"HandStandPushups": "HandstandPushups"}


def class_of(video):
    """'v_<Class>_gNN_cMM' (with or without a folder or extension) -> the class folder name."""
    m = re.fullmatch(r"v_(.+)_g\d+_c\d+", video_io.video_name(video))
    if m is None:
        raise ValueError(f"{video}: not a UCF-101 video name v_<Class>_gNN_cMM")
    return _CLASS_QUIRKS.get(m.group(1), m.group(1))


def canonical_path(root, video):
    """The canonical `<root>/UCF-101/<Class>/<video>.avi` of a video name."""
    name = video_io.video_name(video)
    return os.path.join(str(root), "UCF-101", class_of(name), name + ".avi")


@dataclass
class DataRoot:
    """A data root and its videos. `paths` are canonical .avi paths, sorted by name."""
    root: Path
    paths: list
    frames: dict = field(default_factory=dict)  # canonical path -> number of frames
    source: dict = field(default_factory=dict)  # canonical path -> the original AVI in ../shared

    def copy(self, path, fmt):
        """Real file of the `fmt` copy ("jpeg", "hdf5" or "avi") of a canonical path."""
        return video_io.store_path(path, fmt)


@pytest.fixture(scope="session")
def shared_data():
    """../shared/data, or skip: the tests on real UCF-101 material need it."""
    if not (SHARED / "ucfTrainTestlist" / "classInd.txt").is_file() or not (SHARED / "videos").is_dir():
        pytest.skip(f"real UCF-101 material not found at {SHARED} (split files in ucfTrainTestlist/ "
                    f"and clips in videos/, see its README.md)")
    return SHARED


@pytest.fixture(scope="session")
def split_dir(shared_data):
    """The official ucfTrainTestlist/ folder (read-only)."""
    return shared_data / "ucfTrainTestlist"


@pytest.fixture(scope="session")
def real_root(shared_data, tmp_path_factory):
    """A data root with the 4 real clips as UCF-101/ (symlinked AVIs), UCF-101-hdf5/ (raw) and
    UCF-101-jpeg/ (compact store), both written by prepare_data, plus ucfTrainTestlist/.

    Shared by the whole session: do not modify it (use `make_root` for a private copy).
    """
    root = tmp_path_factory.mktemp("real_root")
    (root / "ucfTrainTestlist").symlink_to(shared_data / "ucfTrainTestlist", target_is_directory=True)
    data = DataRoot(root, [])
    for name, n in sorted(REAL_CLIPS.items()):
        src = shared_data / "videos" / (name + ".avi")
        if not src.is_file():
            pytest.skip(f"real clip {src} not found")
        dst = canonical_path(root, name)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        os.symlink(src, dst)
        data.paths.append(dst)
        data.frames[dst], data.source[dst] = n, str(src)
    for to in ("hdf5", "jpeg"):
        prepare_data.main(prepare_data.parse_args(["--data-root", str(root), "--to", to, "--workers", "1"]))
    return data


@pytest.fixture
def make_root(real_root, tmp_path):
    """Factory: a private data root holding the `formats` copies of the real clips `names`
    (default all), as symlinks (copy=True: real copies), plus ucfTrainTestlist/. Safe to modify."""
    counter = iter(range(10**6))

    def make(formats=video_io.FORMATS, names=None, copy=False):
        root = tmp_path / f"root{next(counter)}"
        root.mkdir(parents=True)
        (root / "ucfTrainTestlist").symlink_to(real_root.root / "ucfTrainTestlist", target_is_directory=True)
        data = DataRoot(root, [])
        for path in real_root.paths:
            if names is not None and video_io.video_name(path) not in names:
                continue
            new = canonical_path(root, path)
            for fmt in formats:
                src, dst = real_root.copy(path, fmt), video_io.store_path(new, fmt)
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                if copy:
                    shutil.copyfile(src, dst)
                else:
                    os.symlink(os.path.realpath(src), dst)
            data.paths.append(new)
            data.frames[new], data.source[new] = real_root.frames[path], real_root.source[path]
        return data

    return make


@pytest.fixture
def write_video():
    """Factory: write uint8 RGB frames (T, H, W, 3) as the `fmt` copy ("hdf5" raw or "jpeg")
    of video `name` under `root`; returns its canonical .avi path."""

    def write(root, name, frames, fmt="hdf5", fps=25.0):
        path = canonical_path(root, name)
        video_io.write_video(video_io.store_path(path, fmt), np.ascontiguousarray(frames, dtype=np.uint8),
                                 fps, to=fmt)
        return path

    return write


@pytest.fixture(scope="session")
def toy_root(tmp_path_factory):
    """A tiny toy UCF-101 made by make_toy_ucf101 once per session: 4 classes x 3 groups x 2 clips of
    12-28 frames at 80x60 (AVIs only); split 1 tests group 1 (8 videos, 3 under 16 frames).
    Shared by the whole session: do not modify it (copy it first)."""
    from tools import make_toy_ucf101
    root = tmp_path_factory.mktemp("toy_root") / "toy"
    make_toy_ucf101.make_toy(root, classes=4, groups=3, clips=2, frames=20, width=80, height=60, workers=1)
    return root


def script_cmd(script, *argv):
    """The command line a user types for a repo script: `python train_3d.py ...`, or for the tools
    (folder tools/) `python -m tools.prepare_data ...`, run from the repository root."""
    module = str(script).removesuffix(".py").replace("/", ".")
    run = ["-m", module] if str(script).startswith(("tools/", "benchmarks/")) else [str(script)]
    return [sys.executable, *run, *map(str, argv)]


# Tiny training flags shared by the tests that only need *a* trained model (32x32, one epoch).
TINY_TRAIN = ["--size", "32", "--epochs", "1", "--batch-size", "8", "--workers", "0", "--train-from", "all"]


@pytest.fixture(scope="session")
def trained_ckpts(toy_root, tmp_path_factory):
    """One tiny trained checkpoint of each kind, made once per session on `toy_root` by the training
    scripts' main(): {"single_frame": resnet18 checkpoint.pt, "3d": resnet10 (one layer4 block) checkpoint.pt},
    1 epoch at 32x32 on the whole train list of split 1 (no validation groups held out).

    For tests that need some trained model, not a particular training behaviour. Read-only: copy a
    checkpoint before resuming or modifying it."""
    import train_3d
    import train_single_frame
    tmp = tmp_path_factory.mktemp("trained_ckpts")
    common = ["--data-root", str(toy_root), *TINY_TRAIN]
    train_single_frame.main(train_single_frame.parse_args(
        common + ["--weights", "none", "--arch", "resnet18", "--out", str(tmp / "sf")]))
    train_3d.main(train_3d.parse_args(
        common + ["--kinetics-checkpoint", "none", "--arch", "resnet10", "--layer4-blocks", "1",
                  "--out", str(tmp / "3d")]))
    return {"single_frame": str(tmp / "sf" / "checkpoint.pt"), "3d": str(tmp / "3d" / "checkpoint.pt")}


@pytest.fixture(scope="module")
def no_discussion_left():
    """`make demo` and tools/rehearse.py build the report with the default --discussion
    report/discussion.md, which make_report makes from the template when it is missing: a test that
    runs them removes it afterwards when it was not there before (the repository stays as it was)."""
    path = REPO / "report" / "discussion.md"
    existed = path.exists()
    yield path
    if not existed and path.exists():
        path.unlink()
