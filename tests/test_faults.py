"""Fault injection through the scripts: corrupt and awkward videos, bad split files and data roots,
wrong checkpoints and flags, CUDA out of memory and no network. Usage: pytest -q tests/test_faults.py

One copy of the toy set carries every kind of corrupt video (and every awkward but valid one) at once,
in both lists of split 1. Each training script, each test script and prepare_data.py runs on it once,
in this process (`main(parse_args(argv))`, what `python script.py argv` runs), and the tests check
that every bad file is named and counted, and that every awkward one is used. The faults that stop a
script are checked for their message; one runs as a real subprocess for the exit status.
Flags and one-line exits for set-up mistakes are here too: pretrained weights that are empty, partial
or of another kind, read-only folders, Ctrl-C, repeated split lines, predict.py's inputs.
(Interrupted training and corrupt checkpoints: tests/test_training.py; decoding errors:
tests/test_data.py; parse-time flag checks: tests/test_flags.py; reuse of saved results:
tests/test_reuse.py.)
"""
import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import torch
import torchvision
from conftest import TINY_TRAIN, script_cmd
from sklearn.metrics import accuracy_score

import engine
import helperFunctions as hf
import resnet_3d
import scoring
import test_3d
import test_single_frame
import train_3d
import train_single_frame
import utils
import video_io
from tools import predict, prepare_data

REPO = Path(__file__).resolve().parents[1]

# Toy sizes: small ResNets from scratch on 32x32 inputs, one epoch.
SF = ["--pretrained", "none", "--arch", "resnet18", "--train-from", "layer4", "--size", "32",
      "--epochs", "1", "--batch-size", "8", "--seed", "0"]
TD = ["--pretrained", "none", "--arch", "resnet10", "--train-from", "layer4", "--layer4-blocks", "1",
      "--size", "32", "--epochs", "1", "--batch-size", "8", "--seed", "0"]
# The flags of the session's checkpoints (conftest.trained_ckpts): a resume with them matches their identity.
TINY_SF = [*TINY_TRAIN, "--pretrained", "none", "--arch", "resnet18"]
# Corrupt videos (must be skipped / failed) and awkward ones (must be used), by the copy they live in.
BAD = {"zero_byte": "avi", "truncated": "avi", "garbage": "avi", "no_video": "hdf5", "float": "hdf5",
       "channels_first": "hdf5", "empty": "hdf5", "missing": None}
ODD = {"short": "avi", "gray_avi": "avi", "gray_raw": "hdf5", "odd_size_raw": "hdf5"}
# What the message says about each corrupt video, after its file name.
WHY = {"zero_byte": "cannot open this video", "truncated": "truncated", "garbage": "cannot open this video",
       "no_video": "neither a 'video' nor a 'jpeg' dataset", "float": "dtype float32",
       "channels_first": "expected (T, H, W, 3)", "empty": "no frames", "missing": "no copy of this video found"}
CLASSES = ["BallRollLeft", "BallRollRight", "RedCircle", "StripedSquare"]  # the 4-class toy's classInd


def run(script, argv):
    """script.main(script.parse_args(argv)) with stdout and stderr captured; returns the output."""
    buf = io.StringIO()
    with redirect_stdout(buf), redirect_stderr(buf):
        script.main(script.parse_args([str(a) for a in argv]))
    return buf.getvalue()


def fails(script, argv, *needles):
    """Run a script that must stop; the message (SystemExit, or the exception a traceback would end
    with) must hold every needle. Returns the message."""
    with pytest.raises((SystemExit, FileNotFoundError, ValueError)) as e:
        run(script, argv)
    msg = str(e.value)
    assert not isinstance(e.value, SystemExit) or e.value.code not in (0, None)  # non-zero exit status
    for needle in needles:
        assert str(needle) in msg, (needle, msg)
    return msg


def named_line(text, prefix, kind):
    """The output line that starts with prefix; asserts it says why (WHY[kind])."""
    lines = [line for line in text.splitlines() if line.startswith(prefix)]
    assert len(lines) == 1, (prefix, lines)
    assert WHY[kind] in lines[0], lines[0]
    return lines[0]


def write_avi(path, frames_rgb):
    """uint8 (T, H, W, 3) RGB -> MJPG AVI, as the toy set is written."""
    h, w = frames_rgb.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (w, h))
    for f in frames_rgb:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()


def write_raw(path, name, array):
    """The course's raw HDF5 copy, but with whatever dataset name, dtype and shape a fault needs."""
    with h5py.File(path, "w") as h:
        h.create_dataset(name, data=array)


@pytest.fixture(scope="module")
def bad_root(toy_root, shared_data, tmp_path_factory):
    """A copy of the toy set with every BAD and ODD video in split 1: each kind once in the train list
    (group 2) and once in the test list (group 1); the truncated one is a real UCF-101 clip (XviD) cut
    to half its bytes. Returns a dict: root, videos {(kind, list): path}, named {(kind, list): the file
    its error message names}, n_train, n_test."""
    root = tmp_path_factory.mktemp("faults") / "bad"
    shutil.copytree(toy_root, root)
    src = max((os.path.join(d, f) for d, _, fs in os.walk(root / "UCF-101") for f in fs), key=os.path.getsize)
    real_clip = shared_data / "videos" / "v_Archery_g01_c01.avi"
    good = video_io.read_frames(src)  # the longest toy clip, (T, 60, 80, 3): material for the awkward videos
    rng = np.random.default_rng(0)
    gray = cv2.cvtColor(np.ascontiguousarray(good[:20].reshape(-1, 80, 3)), cv2.COLOR_RGB2GRAY).reshape(20, 60, 80)
    makers = {
        "zero_byte": lambda p: open(p, "wb").close(),
        "truncated": lambda p: open(p, "wb").write(real_clip.read_bytes()[:real_clip.stat().st_size // 2]),
        "garbage": lambda p: open(p, "wb").write(rng.bytes(30_000)),
        "no_video": lambda p: write_raw(p, "frames", good[:20]),
        "float": lambda p: write_raw(p, "video", good[:20].astype(np.float32)),
        "channels_first": lambda p: write_raw(p, "video", good[:20].transpose(0, 3, 1, 2)),
        "empty": lambda p: write_raw(p, "video", np.zeros((0, 60, 80, 3), np.uint8)),
        "short": lambda p: write_avi(p, good[:5]),  # < 16 frames: the loaders loop it
        "gray_avi": lambda p: write_avi(p, np.repeat(gray[..., None], 3, axis=-1)),
        "gray_raw": lambda p: write_raw(p, "video", gray),  # (T, H, W)
        "odd_size_raw": lambda p: write_raw(p, "video", np.stack([cv2.resize(f, (97, 61)) for f in good[:20]])),
    }
    videos, named, lines = {}, {}, {"trainlist01.txt": [], "testlist01.txt": []}
    for k, (kind, fmt) in enumerate({**BAD, **ODD}.items()):
        cls = CLASSES[k % len(CLASSES)]
        for lst, group in (("train", 2), ("test", 1)):
            path = os.path.join(str(root), "UCF-101", cls, f"v_{cls}_g{group:02d}_{kind.replace('_', '')}.avi")
            real = path if fmt is None else video_io.store_path(path, fmt)
            if fmt is not None:
                os.makedirs(os.path.dirname(real), exist_ok=True)
                makers[kind](real)
            videos[kind, lst], named[kind, lst] = path, real
            rel = f"{cls}/{os.path.basename(path)}"
            lines[f"{lst}list01.txt"].append(f"{rel} {CLASSES.index(cls) + 1}" if lst == "train" else rel)
    for name, new in lines.items():
        with open(root / "ucfTrainTestlist" / name, "ab") as f:
            f.write("".join(line + "\r\n" for line in new).encode())
    _, (train, _), (test, _) = hf.getUCF101(str(root), 1)
    return dict(root=root, videos=videos, named=named, n_train=len(train), n_test=len(test))


@pytest.fixture(scope="module")
def trained(bad_root, tmp_path_factory):
    """One epoch of each training script on the corrupt set: {"single_frame"|"3d": (run folder, output)}."""
    out = tmp_path_factory.mktemp("runs")
    common = ["--data-root", bad_root["root"], "--split", "1"]
    return {"single_frame": (out / "sf", run(train_single_frame, common + SF + ["--workers", 2, "--out", out / "sf"])),
            "3d": (out / "3d", run(train_3d, common + TD + ["--workers", 0, "--out", out / "3d"]))}


# ----------------------------------------------------------------------------- corrupt data

@pytest.mark.slow
@pytest.mark.parametrize("kind", ["single_frame", "3d"])
def test_training_skips_counts_and_goes_on(bad_root, trained, kind):
    out, text = trained[kind]
    skipped = [line for line in text.splitlines() if line.startswith("skipping unreadable video: ")]
    for (fault, lst), real in bad_root["named"].items():
        line = f"skipping unreadable video: {real}: "
        if fault in ODD:
            assert line not in text, f"{fault} ({lst}) is a valid video but was skipped"
        else:  # a truncated AVI too, single frames included: one verdict, whatever frame is drawn
            named_line(text, line, fault)
    assert len(skipped) == len(set(skipped))  # each file named once
    with open(out / "log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1
    n_failed = int(rows[0]["failed_videos"])
    assert n_failed == len(skipped) == 2 * len(BAD)  # every bad video of both lists, once each
    assert f"skipped {n_failed}" in text  # the epoch summary line
    assert engine.load_checkpoint(out / "checkpoint.pt", kind)["epoch"] == 1  # it went on and saved


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["single_frame", "3d"])
def test_testing_lists_failed_and_counts_them_wrong(bad_root, trained, kind, tmp_path):
    ckpt = trained[kind][0] / "checkpoint.pt"
    argv = ["--data-root", bad_root["root"], "--checkpoint", ckpt, "--out", tmp_path]
    if kind == "single_frame":  # the checkpoint's resnet18 is rebuilt: a test script takes no --arch
        with pytest.raises(SystemExit):
            test_single_frame.parse_args([str(a) for a in argv] + ["--arch", "resnet50"])
        text = run(test_single_frame, argv + ["--workers", 2])
    else:
        text = run(test_3d, argv + ["--workers", 0, "--mode", "windows"])
    n, bad_names = bad_root["n_test"], {video_io.video_name(bad_root["videos"][k, "test"]) for k in BAD}
    for fault in BAD:
        named_line(text, f"FAILED (counted wrong) {bad_root['named'][fault, 'test']}: ", fault)
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["n_videos"] == n and m["n_failed"] == len(BAD) and set(m["failed"]) == bad_names
    # 4 classes: any decoded video has its label in the top 5, so top5 is exactly the decoded share
    assert m["top5"] == m["top10"] == pytest.approx((n - len(BAD)) / n) and m["top1"] <= (n - len(BAD)) / n
    with h5py.File(tmp_path / "predictions.h5", "r") as h:
        names = [v.decode() for v in h["videos"][()]]
        failed, scores, labels = h["failed"][()], h["scores"][()], h["labels"][()]
    assert len(names) == n and {v for v, f in zip(names, failed) if f} == bad_names
    assert np.isnan(scores[failed]).all() and np.isfinite(scores[~failed]).all()
    # top-1 recomputed from the saved scores (scikit-learn), the failed videos in the denominator
    assert m["top1"] == pytest.approx(accuracy_score(labels[~failed], scores[~failed].argmax(1)) * (n - len(BAD)) / n)
    per_class = np.bincount(labels, minlength=4)
    decoded = np.bincount(labels[~failed], minlength=4)
    assert np.allclose(np.load(tmp_path / "confusion_matrix.npy").sum(1), decoded / per_class)
    for fault in ODD:  # the awkward videos were scored, the short one looped to one 16-frame window
        with h5py.File(scoring.video_file(tmp_path, bad_root["videos"][fault, "test"]), "r") as h:
            rows = len(h["predictions"])
        assert rows == ((5 if fault == "short" else 20) if kind == "single_frame" else (1 if fault == "short" else 2))


def test_prepare_reports_each_and_goes_on(bad_root, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(bad_root["root"], root)
    named = {k: str(p).replace(str(bad_root["root"]), str(root)) for k, p in bad_root["named"].items()}
    for source in ("avi", "hdf5"):  # the AVIs, then the course's raw HDF5 copies
        text = run(prepare_data, ["--data-root", root, "--source", source, "--workers", 1])
        faults = [k for k, fmt in BAD.items() if fmt == source]
        for fault in faults:
            for lst in ("train", "test"):
                named_line(text, f"FAILED {named[fault, lst]}: ", fault)
                assert f"failed: {named[fault, lst]}" in text
        assert f"{2 * len(faults)} failed" in text
    for (fault, lst), path in bad_root["videos"].items():
        store = video_io.store_path(str(path).replace(str(bad_root["root"]), str(root)), "jpeg")
        assert video_io.is_complete(store, named[fault, lst]) == (fault in ODD), (fault, lst)
    odd = str(bad_root["videos"]["odd_size_raw", "test"]).replace(str(bad_root["root"]), str(root))
    assert video_io.resolve_video(odd)[0] == "jpeg" and video_io.read_frames(odd).shape == (20, 61, 97, 3)


@pytest.mark.slow
def test_every_video_unreadable_stops_with_reason(toy_root, trained_ckpts, tmp_path):
    """Nothing to learn from or to score: a non-zero exit status and a message saying why."""
    root = tmp_path / "root"
    shutil.copytree(toy_root / "ucfTrainTestlist", root / "ucfTrainTestlist")
    for d, _, files in os.walk(toy_root / "UCF-101"):  # every video a zero-byte file (a failed copy)
        for f in files:
            dst = root / os.path.relpath(os.path.join(d, f), toy_root)
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.touch()
    out = tmp_path / "run"
    cmd = [sys.executable, "train_single_frame.py", "--data-root", str(root), *SF, "--workers", "0", "--out", str(out)]
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert p.returncode != 0 and "Traceback" not in p.stderr
    assert "none of the 16 training videos of split 1 could be read" in p.stderr.strip().splitlines()[-1]
    assert p.stdout.count("skipping unreadable video: ") == 24 and str(root / "UCF-101") in p.stdout
    assert not (out / "checkpoint.pt").exists()  # no checkpoint of a model that saw no data

    fails(test_single_frame, ["--data-root", root, "--checkpoint", trained_ckpts["single_frame"],
                              "--out", tmp_path / "test", "--workers", 0], "none of the 8 test videos")
    assert json.loads((tmp_path / "test" / "metrics.json").read_text())["n_failed"] == 8  # still recorded


def _split_fault(root, fault):
    lists = root / "ucfTrainTestlist"
    if fault == "unreadable_split":
        (lists / "testlist01.txt").write_bytes(b"\xff\xfe\x00\x81 not text\r\n")
        return "testlist01.txt", "cannot read split file"
    if fault == "unknown_class":
        with open(lists / "testlist01.txt", "ab") as f:
            f.write(b"NoSuchClass/v_NoSuchClass_g01_c01.avi\r\n")
        return "testlist01.txt:9", "'NoSuchClass' is not in classInd.txt"
    if fault == "duplicate_line":  # a test video listed twice would be counted twice
        with open(lists / "testlist01.txt", "ab") as f:
            f.write((lists / "testlist01.txt").read_bytes().splitlines(keepends=True)[2])
        return "testlist01.txt:9", "is listed a second time (first on line 3)"
    if fault == "missing_root":
        shutil.rmtree(root)
        return root, "does not exist"
    if fault == "data_root_is_a_file":  # e.g. the path of the dataset's archive
        shutil.rmtree(root)
        root.write_bytes(b"Rar!")
        return root, "is a file, not a folder"
    shutil.rmtree(root / "UCF-101")  # no_video_folders: the split files but no videos at all
    return root, "none of the video folders"


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["unreadable_split", "unknown_class", "duplicate_line", "missing_root",
                                   "data_root_is_a_file", "no_video_folders"])
def test_bad_split_or_data_root_stops_before_work(toy_root, trained_ckpts, tmp_path, fault):
    root = tmp_path / "root"
    shutil.copytree(toy_root, root, symlinks=True)
    where, why = _split_fault(root, fault)
    fails(train_single_frame, ["--data-root", root, *SF, "--workers", 0, "--out", tmp_path / "sf"], where, why)
    assert not (tmp_path / "sf" / "checkpoint.pt").exists()
    test_argv = ["--data-root", root, "--checkpoint", trained_ckpts["single_frame"], "--out", tmp_path / "t",
                 "--workers", 0]
    fails(test_single_frame, test_argv, where, why)
    assert not (tmp_path / "t").exists()  # the test script stops before its --out is made
    if fault in ("no_video_folders", "missing_root", "data_root_is_a_file"):
        fails(prepare_data, ["--data-root", root, "--workers", 1], f"--data-root {root}", why)


# ----------------------------------------------------------------------------- wrong use

def _other_checkpoint(source, tmp_path, num_classes=None, arch=None):
    """A 2D checkpoint as train_single_frame.py writes it (its weight digest and its identity's class-list
    digest recomputed), for another class list or architecture."""
    ckpt = engine.load_checkpoint(source, "single_frame")
    num_classes, arch = num_classes or ckpt["num_classes"], arch or ckpt["arch"]
    model = getattr(torchvision.models, arch)(weights=None, num_classes=num_classes)
    classes = (CLASSES + [f"Extra{i}" for i in range(num_classes)])[:num_classes]
    path = tmp_path / f"{arch}_{num_classes}.pt"
    state = model.state_dict()
    identity = {**ckpt["identity"], "arch": arch, "classes_sha256": utils.text_sha256(*classes)}
    engine.save_checkpoint(path, {**ckpt, "model": state, "weights_sha256": utils.tensors_sha256(state),
                                  "arch": arch, "num_classes": num_classes, "class_list": classes,
                                  "identity": identity, "optimizer": {"state": {}, "param_groups": []}})
    return path


@pytest.mark.slow
@pytest.mark.parametrize("case", ["other_arch", "other_classes", "3d_in_2d_run"])
def test_resume_refuses_another_model(toy_root, trained_ckpts, tmp_path, case):
    """--resume onto a checkpoint of another architecture, class list or kind: one message naming what
    differs (and only that) and what to do; the checkpoint is left as it was."""
    out = tmp_path / "run"
    out.mkdir()
    src = {"other_arch": trained_ckpts["single_frame"], "3d_in_2d_run": trained_ckpts["3d"],
           "other_classes": _other_checkpoint(trained_ckpts["single_frame"], tmp_path, num_classes=5)}[case]
    shutil.copy(src, out / "checkpoint.pt")
    before = (out / "checkpoint.pt").read_bytes()
    argv = ["--data-root", toy_root, *TINY_SF, "--epochs", 2, "--out", out, "--resume"]
    if case == "other_arch":
        argv += ["--arch", "resnet34"]  # argparse: the last --arch wins
    needles = {"other_arch": ["--arch was 'resnet18', now 'resnet34'", "--overwrite", "another --out"],
               "other_classes": ["--data-root (its classInd.txt) was", "--overwrite", "another --out"],
               "3d_in_2d_run": ["3d model (resnet10)", "train_3d.py", "--overwrite"]}[case]
    msg = fails(train_single_frame, argv, out / "checkpoint.pt", *needles)
    assert msg.count(" was ") <= 1, msg  # nothing else differs, so nothing else is named
    assert (out / "checkpoint.pt").read_bytes() == before  # nothing overwritten


@pytest.mark.slow
@pytest.mark.parametrize("case", ["3d_to_2d_script", "single_frame_to_3d_script", "other_classes", "kinetics_file", "missing"])
def test_test_scripts_refuse_wrong_checkpoint(toy_root, trained_ckpts, tmp_path, case):
    kinetics = tmp_path / "resnet-50-kinetics.pth"  # Hara's format (weights cut short: not read that far)
    torch.save({"arch": "resnet-50", "state_dict": {"module.conv1.weight": torch.zeros(64, 3, 7, 7, 7)}}, kinetics)
    script, ckpt, needles = {
        "3d_to_2d_script": (test_single_frame, trained_ckpts["3d"], ["3d model", "test_3d.py"]),
        "single_frame_to_3d_script": (test_3d, trained_ckpts["single_frame"], ["single_frame model", "test_single_frame.py"]),
        "other_classes": (test_single_frame, _other_checkpoint(trained_ckpts["single_frame"], tmp_path, 5),
                          ["trained on 5 other classes than the 4 of", toy_root]),
        "kinetics_file": (test_3d, kinetics, ["not a checkpoint written by this repo"]),
        "missing": (test_3d, tmp_path / "nope.pt", ["not found"]),
    }[case]
    fails(script, ["--data-root", toy_root, "--checkpoint", ckpt, "--out", tmp_path / "t", "--workers", 0],
          ckpt, *needles)
    assert not (tmp_path / "t").exists()  # stopped before its --out was made


def _oom(*args, **kwargs):
    raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


@pytest.mark.slow
@pytest.mark.parametrize("case", ["2d_after_an_epoch", "3d_first_epoch"])
def test_cuda_out_of_memory_in_training(toy_root, trained_ckpts, tmp_path, monkeypatch, case):
    out = tmp_path / "run"
    monkeypatch.setattr(engine.FineTune, "forward", _oom)
    if case == "2d_after_an_epoch":
        out.mkdir()
        shutil.copy(trained_ckpts["single_frame"], out / "checkpoint.pt")
        before = (out / "checkpoint.pt").read_bytes()
        msg = fails(train_single_frame, ["--data-root", toy_root, *TINY_SF, "--epochs", 2,
                                         "--out", out, "--resume"],
                    "out of memory", "smaller --batch-size", "--train-from", out / "checkpoint.pt", "epoch 1",
                    "--resume")
        assert "--layer4-blocks" not in msg  # not a flag of the 2D script
        assert (out / "checkpoint.pt").read_bytes() == before
    else:
        fails(train_3d, ["--data-root", toy_root, *TD, "--workers", 0, "--out", out],
              "out of memory", "smaller --batch-size", "--train-from", "--layer4-blocks", "no checkpoint yet")


@pytest.mark.slow
def test_cuda_out_of_memory_in_testing(toy_root, trained_ckpts, tmp_path, monkeypatch):
    monkeypatch.setattr(engine.FineTune, "forward", _oom)
    fails(test_single_frame, ["--data-root", toy_root, "--checkpoint", trained_ckpts["single_frame"],
                              "--out", tmp_path, "--workers", 0],
          "out of memory", "smaller --batch-size", "rerun skips")


def test_pretrained_weights_offline_or_missing(toy_root, tmp_path, monkeypatch):
    import torchvision.models._api as tv_api

    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(tv_api, "load_state_dict_from_url", offline)
    argv = ["--data-root", toy_root, *SF, "--workers", 0, "--out", tmp_path / "run"]
    fails(train_single_frame, argv + ["--pretrained", "imagenet"],
          "could not download", "--pretrained /path/to/resnet18.pth", "--pretrained none")
    fails(train_single_frame, argv + ["--pretrained", tmp_path / "resnet18.pth"],
          tmp_path / "resnet18.pth", "file not found", "none")
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_kinetics_checkpoint_missing_or_other_arch(toy_root, tmp_path):
    argv = ["--data-root", toy_root, *TD, "--workers", 0, "--out", tmp_path / "run"]
    fails(train_3d, argv + ["--pretrained", tmp_path / "resnet-50-kinetics.pth"],
          tmp_path / "resnet-50-kinetics.pth", "--pretrained PATH", "--pretrained none")
    other = tmp_path / "resnet-10-kinetics.pth"  # a resnet10 Kinetics file in Hara's format, given to resnet18
    state = resnet_3d.build("resnet10", num_classes=400).state_dict()
    torch.save({"arch": "resnet-10", "state_dict": {f"module.{k}": v for k, v in state.items()}}, other)
    fails(train_3d, argv + ["--arch", "resnet18", "--pretrained", other],
          other, "does not fit resnet18", "--arch resnet10")
    # the Kinetics weights are of width 1: a narrower model is refused before any file is read
    fails(train_3d, argv + ["--widen-factor", 0.5, "--pretrained", other],
          "--widen-factor 0.5", "--pretrained none")
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_resume_refuses_another_width(toy_root, tmp_path):
    argv = ["--data-root", toy_root, *TD, "--workers", 0, "--epochs", 1, "--out", tmp_path / "run"]
    run(train_3d, argv + ["--widen-factor", 0.5])
    before = (tmp_path / "run" / "checkpoint.pt").read_bytes()
    fails(train_3d, argv + ["--epochs", 2, "--resume"], tmp_path / "run" / "checkpoint.pt",
          "--widen-factor was 0.5, now 1.0", "another --out")
    assert (tmp_path / "run" / "checkpoint.pt").read_bytes() == before  # the finished epoch is kept


# ----------------------------------------------------------------------------- set-up mistakes

def one_line_exit(script, argv):
    """Run `python script argv` as a user would: it must fail with one clear last line and no traceback.
    Returns that line."""
    r = subprocess.run(script_cmd(script, *argv), cwd=REPO, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    return r.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_data_root_too_deep(toy_root, tmp_path):
    line = one_line_exit("train_single_frame.py", ["--data-root", toy_root / "UCF-101", *SF, "--workers", 0,
                                                   "--out", tmp_path / "sf"])
    assert "too deep" in line and line.endswith(f"--data-root {toy_root}"), line
    fails(train_3d, ["--data-root", toy_root / "UCF-101" / "RedCircle", *TD, "--workers", 0, "--out", tmp_path],
          "too deep", f"--data-root {toy_root}")
    assert not (tmp_path / "sf").exists()
    # prepare_data given the AVI folder itself: the same hint, and nothing written anywhere
    fails(prepare_data, ["--data-root", toy_root / "UCF-101", "--workers", 1], "too deep", f"--data-root {toy_root}")
    assert not (toy_root / "UCF-101" / "UCF-101-jpeg").exists() and not (toy_root / "UCF-101-jpeg").exists()


def test_prepare_data_on_a_folder_without_videos(tmp_path):
    (tmp_path / "UCF-101" / "Empty").mkdir(parents=True)
    line = one_line_exit("tools/prepare_data.py", ["--data-root", tmp_path, "--workers", 1])
    assert "no source videos" in line and str(tmp_path / "UCF-101" / "<Class>") in line, line


@pytest.mark.slow
def test_missing_split_lists(toy_root, trained_ckpts, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(toy_root, root, symlinks=True)
    (root / "ucfTrainTestlist" / "trainlist01.txt").unlink()
    line = one_line_exit("train_3d.py", ["--data-root", root, *TD, "--workers", 0, "--out", tmp_path / "3d"])
    assert "trainlist01.txt" in line and "UCF101TrainTestSplits" in line, line
    # testing needs the test list only
    out = run(test_single_frame, ["--data-root", root, "--checkpoint", trained_ckpts["single_frame"],
                                  "--out", tmp_path / "t", "--workers", 0])
    assert json.loads((tmp_path / "t" / "metrics.json").read_text())["n_videos"] == 8, out
    shutil.rmtree(root / "ucfTrainTestlist")
    fails(test_single_frame, ["--data-root", root, "--checkpoint", trained_ckpts["single_frame"],
                              "--out", tmp_path / "t2", "--workers", 0], "classInd.txt", "UCF101TrainTestSplits")


def test_raw_copy_is_made_from_the_avis_not_the_compact_store(make_root):
    """prepare_data.py --to hdf5 in a root that already holds the lossy compact store: the raw copy
    holds exactly the AVIs' pixels (decoded here with OpenCV from the start)."""
    data = make_root(formats=("avi", "jpeg"))
    run(prepare_data, ["--data-root", data.root, "--to", "hdf5", "--workers", 1])
    for path in data.paths:
        cap, expected = cv2.VideoCapture(data.source[path]), []
        while (f := cap.read())[0]:
            expected.append(cv2.cvtColor(f[1], cv2.COLOR_BGR2RGB))
        with h5py.File(video_io.store_path(path, "hdf5"), "r") as h:
            np.testing.assert_array_equal(h["video"][()], np.stack(expected), err_msg=path)


@pytest.mark.slow
def test_predict_any_video_file_and_missing_ones(toy_root, trained_ckpts, tmp_path):
    avi = next((toy_root / "UCF-101" / "RedCircle").glob("*.avi"))
    mp4 = tmp_path / "clip.mp4"  # OpenCV decodes by content, whatever the extension
    shutil.copy(avi, mp4)
    missing = tmp_path / "nope" / "v_RedCircle_g01_c01.avi"
    argv = [mp4, missing, "--single-frame", trained_ckpts["single_frame"], "--device", "cpu"]
    buf = io.StringIO()
    with redirect_stdout(buf), redirect_stderr(buf):
        results = predict.main(predict.parse_args([str(a) for a in argv]))
    assert list(results) == [str(mp4)] and len(results[str(mp4)]["single_frame"]) == 4
    assert f"file not found: {missing}" in buf.getvalue().splitlines()
    assert "looked for" not in buf.getvalue()


def test_truncated_or_misplaced_kinetics_checkpoint(toy_root, tmp_path):
    state = resnet_3d.build("resnet10", num_classes=400).state_dict()
    kinetics = tmp_path / "resnet-10-kinetics.pth"  # Hara's format
    torch.save({"arch": "resnet-10", "state_dict": {f"module.{k}": v for k, v in state.items()}}, kinetics)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(kinetics.read_bytes()[:kinetics.stat().st_size // 2])
    fails(train_3d, ["--data-root", toy_root, *TD, "--workers", 0, "--out", tmp_path / "3d",
                     "--pretrained", truncated], truncated, "partial or corrupt", "download it again")
    line = one_line_exit("train_single_frame.py", ["--data-root", toy_root, *SF, "--workers", 0,
                                                   "--out", tmp_path / "sf", "--pretrained", kinetics])
    assert "3D" in line and f"train_3d.py --pretrained {kinetics}" in line, line
    fails(train_single_frame, ["--data-root", toy_root, *SF, "--workers", 0, "--out", tmp_path / "sf",
                               "--pretrained", truncated], truncated, "partial, corrupt", "again")


# ----------------------------------------------------------------------------- a last batch of one

def test_last_batch_of_one_is_not_stepped_on_alone(toy_root, tmp_path):
    """16 training videos in batches of 5: the last batch holds one video, which BatchNorm cannot train
    on at 1x1 maps (a 32x32 clip at layer4). It is dropped: 3 optimiser steps, 15 videos trained."""
    _, (train, _), _ = hf.getUCF101(str(toy_root), 1)
    assert len(train) == 16
    out = run(train_3d, ["--data-root", toy_root, *TD, "--batch-size", 5,
                         "--workers", 0, "--out", tmp_path / "3d"])
    ckpt = engine.load_checkpoint(tmp_path / "3d" / "checkpoint.pt", "3d")
    assert {int(s["step"]) for s in ckpt["optimizer"]["state"].values()} == {16 // 5}
    assert "1 left over in a last batch too small to train on" in out


def test_small_batches_merge_into_the_next(toy_root):
    """Batches thinned to one readable video by failures: merged into the next batch, so no optimiser
    step ever sees a single video; one left at the end is dropped."""
    _, (paths, labels), _ = hf.getUCF101(str(toy_root), 1)
    ds = hf.ClipDataset(paths, labels, augment=True, size=32, frames=16)
    batches = [hf.collate([ds[i] for i in idx]) for idx in ([0, 1, 2], [3], [4, 5, 6, 7], [8])]
    model = engine.FineTune(resnet_3d.build("resnet10", num_classes=4, layer4_blocks=1), "all",
                            *engine.input_stats("3d"))
    seen = []
    forward = model.forward
    model.forward = lambda x: (seen.append(len(x)), forward(x))[1]
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], 1e-3)

    r = engine.train_one_epoch(model, opt, batches, engine.Run(torch.device("cpu")), engine.FailureLog())
    assert seen == [3, 5] and r["n"] == 8 and r["dropped"] == 1


# ----------------------------------------------------------------------------- pretrained weights

def _hara_file(path, model):
    """Save a 3D ResNet as Hara et al.'s release does: DataParallel `module.` keys, no num_batches_tracked
    buffers (torch 0.3), inside {"arch", "state_dict", ...}."""
    sd = {f"module.{k}": v for k, v in model.state_dict().items() if "num_batches_tracked" not in k}
    torch.save({"arch": "resnet-18", "epoch": 200, "state_dict": sd}, path)
    return path


@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_empty_or_partial_pretrained_weights(toy_root, tmp_path, damage):
    """An interrupted download given to --pretrained, 2D or 3D: one line saying the file is empty or
    partial and to download it again (never an IndexError or a traceback of the unpickler)."""
    files = {"2d": tmp_path / "resnet18-f37072fd.pth", "3d": tmp_path / "resnet-10-kinetics.pth"}
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), files["2d"])
    _hara_file(files["3d"], resnet_3d.build("resnet10", 400))
    for f in files.values():
        data = f.read_bytes()
        f.write_bytes(b"" if damage == "empty" else data[:len(data) // 3])
    why = "is empty (0 bytes)" if damage == "empty" else "partial"
    fails(train_single_frame, ["--data-root", toy_root, *SF, "--workers", 0, "--out", tmp_path / "sf",
                               "--pretrained", files["2d"]], f"--pretrained {files['2d']}", why, "again")
    fails(train_3d, ["--data-root", toy_root, *TD, "--workers", 0, "--out", tmp_path / "3d",
                     "--pretrained", files["3d"]], files["3d"], why, "again")
    assert not (tmp_path / "sf" / "checkpoint.pt").exists() and not (tmp_path / "3d" / "checkpoint.pt").exists()
    if damage == "empty":  # as a user runs it: one line, a non-zero exit status, no traceback
        line = one_line_exit("train_3d.py", ["--data-root", toy_root, *TD, "--workers", 0, "--out", tmp_path / "x",
                                             "--pretrained", files["3d"]])
        assert "empty (0 bytes)" in line and "Download" in line and "again" in line, line


@pytest.mark.slow
def test_shortcut_a_kinetics_checkpoint_loads_with_its_arch(toy_root, tmp_path):
    """Hara's resnet18 and resnet34 use shortcut type A (no downsample weights). Such a file trains with
    --arch resnet18: the frozen layers keep the file's weights exactly, the checkpoint records the
    shortcut type and test_3d.py rebuilds the model from it. A wrong --arch is told to use resnet18."""
    src = resnet_3d.build("resnet18", 400, shortcut_type="A")
    assert not any("downsample" in k for k in src.state_dict())  # the premise: type A has none
    path = _hara_file(tmp_path / "resnet-18-kinetics.pth", src)
    flags = ["--data-root", toy_root, "--size", 32, "--frames", 8, "--epochs", 1, "--batch-size", 8,
             "--workers", 0, "--pretrained", path, "--out", tmp_path / "run"]
    for arch in ("resnet34", "resnet10"):
        fails(train_3d, flags + ["--arch", arch], path, f"does not fit {arch}", "--arch resnet18")
    run(train_3d, flags + ["--arch", "resnet18"])  # the default --train-from layer4.0: the rest frozen
    ckpt = engine.load_checkpoint(tmp_path / "run" / "checkpoint.pt", "3d")
    assert ckpt["shortcut_type"] == "A" and ckpt["identity"]["pretrained_sha256"] != "none"
    saved = {k[len("module."):]: v for k, v in torch.load(path, weights_only=True)["state_dict"].items()}
    frozen = [k for k in saved if not k.startswith(("layer4.", "fc."))]
    assert frozen and all(torch.equal(ckpt["model"][k], saved[k]) for k in frozen)
    assert not torch.equal(ckpt["model"]["layer4.0.conv1.weight"], saved["layer4.0.conv1.weight"])  # trained
    text = run(test_3d, ["--data-root", toy_root, "--checkpoint", tmp_path / "run" / "checkpoint.pt",
                         "--out", tmp_path / "test", "--workers", 0])
    assert json.loads((tmp_path / "test" / "metrics.json").read_text())["n_failed"] == 0, text


def test_own_or_2d_checkpoint_as_3d_pretrained(toy_root, trained_ckpts, tmp_path):
    """This repo's own checkpoints and 2D weights given to train_3d.py --pretrained are named for what
    they are (not "another 3D architecture"); the 2D script names its own checkpoints and 3D ones too."""
    argv = ["--data-root", toy_root, *TD, "--workers", 0, "--out", tmp_path / "run"]
    for kind in ("single_frame", "3d"):
        msg = fails(train_3d, argv + ["--pretrained", trained_ckpts[kind]], trained_ckpts[kind],
                    "checkpoint of this repo's training scripts", f"a {kind} ", "--resume")
        assert "looks like --arch" not in msg and "does not fit" not in msg, msg
    imagenet = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), imagenet)
    msg = fails(train_3d, argv + ["--pretrained", imagenet], imagenet, "2D convolutions", "train_single_frame.py")
    assert "looks like --arch" not in msg, msg
    fails(train_single_frame, ["--data-root", toy_root, *SF, "--workers", 0, "--out", tmp_path / "sf",
                               "--pretrained", trained_ckpts["single_frame"]],
          trained_ckpts["single_frame"], "checkpoint of this repo's training scripts", "--resume")
    fails(train_single_frame, ["--data-root", toy_root, *SF, "--workers", 0, "--out", tmp_path / "sf",
                               "--pretrained", trained_ckpts["3d"]], trained_ckpts["3d"], "checkpoint of this repo's")
    assert not (tmp_path / "run" / "checkpoint.pt").exists() and not (tmp_path / "sf" / "checkpoint.pt").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="fp16 is allowed where there is a GPU")
def test_fp16_on_the_cpu_is_refused(toy_root, tmp_path):
    fails(train_single_frame, ["--data-root", toy_root, *SF, "--workers", 0, "--out", tmp_path / "sf",
                               "--precision", "fp16", "--device", "cpu"], "--precision fp16 needs a GPU", "fp32")
    assert not (tmp_path / "sf" / "checkpoint.pt").exists()


# ----------------------------------------------------------------------------- folders that cannot be written

def unwritable(kind, tmp_path):
    """A folder nothing can be written into: `chmod` a folder read-only (root ignores that: skipped), or
    `read_only_mount` a place in sysfs (refused even to root; skipped where it is writable or absent)."""
    if kind == "chmod":
        folder = tmp_path / "read_only"
        folder.mkdir()
        folder.chmod(0o555)
        if os.access(folder, os.W_OK):
            pytest.skip("chmod does not stop this user (root) from writing")
        return folder
    folder = Path("/sys/kernel")
    try:
        with open(folder / ".ucf101-write-test", "w"):
            pass
        os.remove(folder / ".ucf101-write-test")
        pytest.skip(f"{folder} is writable here")
    except OSError:
        if not folder.is_dir():
            pytest.skip(f"{folder} is not there")
    return folder


@pytest.mark.parametrize("kind", ["chmod", "read_only_mount"])
def test_prepare_data_on_a_read_only_root_stops_before_converting(toy_root, tmp_path, kind):
    """The store folder cannot be written: prepare_data stops before decoding any video, naming the
    folder, in one line with a non-zero exit status."""
    root = tmp_path / "root"
    shutil.copytree(toy_root, root)
    place = unwritable(kind, tmp_path)
    if kind == "chmod":
        root.chmod(0o555)  # the data root itself read-only: UCF-101-jpeg/ cannot be made
        store = root / "UCF-101-jpeg"
    else:
        store = root / "UCF-101-jpeg"
        store.symlink_to(place, target_is_directory=True)  # the store on a read-only mount
    try:
        r = subprocess.run(script_cmd("tools/prepare_data.py", "--data-root", root, "--workers", 1), cwd=REPO,
                           capture_output=True, text=True, timeout=300)
    finally:
        root.chmod(0o755)
    lines = r.stderr.strip().splitlines()
    assert r.returncode != 0 and "Traceback" not in r.stderr and len(lines) == 1, r.stderr
    assert lines[0].startswith(f"--data-root {store}: cannot write there") and "choose a folder" in lines[0]
    assert "convert" not in r.stdout + r.stderr  # not one video was decoded or announced
    assert kind != "chmod" or not store.exists()


@pytest.mark.parametrize("kind", ["chmod", "read_only_mount"])
def test_unwritable_test_out_stops_before_scoring(toy_root, trained_ckpts, tmp_path, kind):
    out = unwritable(kind, tmp_path) / "ucf101_test_run"
    r = subprocess.run(script_cmd("test_single_frame.py", "--data-root", toy_root, "--checkpoint",
                                  trained_ckpts["single_frame"], "--out", out, "--workers", 0),
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    lines = r.stderr.strip().splitlines()
    assert r.returncode != 0 and "Traceback" not in r.stderr and len(lines) == 1, r.stderr
    assert lines[0].startswith(f"--out {out}: cannot write there") and "choose a folder you can write to" in lines[0]
    assert "test videos" not in r.stdout + r.stderr and not out.exists()  # no video was scored


# ----------------------------------------------------------------------------- Ctrl-C

def _many_videos_root(shared_data, root, n, classes=CLASSES):
    """A data root of n AVIs (symlinks to the 4 real clips, 130-164 frames at 320x240) named as videos of
    `classes`, all in split 1's test list: enough work for a Ctrl-C to land in the middle of it."""
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    clips = sorted((shared_data / "videos").glob("*.avi"))
    names = []
    for i in range(n):
        cls = classes[i % len(classes)]
        dst = root / "UCF-101" / cls / f"v_{cls}_g01_c{i:02d}.avi"
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.symlink_to(clips[i % len(clips)])
        names.append(f"{cls}/{dst.name}")
    (lists / "classInd.txt").write_text("".join(f"{k} {c}\r\n" for k, c in enumerate(classes, 1)))
    (lists / "testlist01.txt").write_text("".join(f"{n}\r\n" for n in names))
    (lists / "trainlist01.txt").write_text("")
    return root


def _interrupt_when(cmd, tmp_path, started, timeout=300):
    """Start `cmd` in its own process group, wait until started() holds, then Ctrl-C the group (as a
    terminal does: SIGINT to every process of it, loader workers included); returns (rc, output)."""
    log = open(tmp_path / "interrupted.log", "w")
    old = signal.signal(signal.SIGINT, signal.default_int_handler)  # inherited as the default, not ignored
    try:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    finally:
        signal.signal(signal.SIGINT, old)
    try:
        t0 = time.time()
        while not started():
            assert proc.poll() is None, (tmp_path / "interrupted.log").read_text()[-3000:]
            assert time.time() - t0 < timeout, "timed out waiting for the work to start"
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGINT)
        rc = proc.wait(120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(60)
        log.close()
    return rc, (tmp_path / "interrupted.log").read_text()


@pytest.mark.slow
def test_ctrl_c_in_prepare_data_keeps_what_is_converted(shared_data, tmp_path):
    root = _many_videos_root(shared_data, tmp_path / "root", 24)
    store = root / "UCF-101-jpeg"
    converted = lambda: [p for p in store.glob("*/*.hdf5")]
    rc, text = _interrupt_when(script_cmd("tools/prepare_data.py", "--data-root", root, "--workers", 1), tmp_path,
                               lambda: len(converted()) >= 1)
    assert rc != 0 and "Traceback" not in text and "KeyboardInterrupt" not in text, text[-3000:]
    last = text.strip().splitlines()[-1]
    kept = [p for p in converted() if video_io.is_complete(p, root / "UCF-101" / p.parent.name / f"{p.stem}.avi")]
    assert last == (f"interrupted: the {len(kept)} videos converted so far are kept in {store}; run the same "
                    f"command again to convert the rest"), last
    assert 1 <= len(kept) < 24 and len(kept) == len(converted())  # every file left behind is whole
    r = subprocess.run(script_cmd("tools/prepare_data.py", "--data-root", root, "--workers", 1), cwd=REPO,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"{len(kept)} already converted, {24 - len(kept)} to convert" in r.stdout
    assert len(converted()) == 24


@pytest.mark.slow
@pytest.mark.parametrize("script", ["test_single_frame.py", "test_3d.py"])
def test_ctrl_c_in_testing_keeps_what_is_scored(shared_data, trained_ckpts, tmp_path, script):
    root = _many_videos_root(shared_data, tmp_path / "root", 16)
    out = tmp_path / "out"
    kind = "single_frame" if script == "test_single_frame.py" else "3d"
    cmd = script_cmd(script, "--data-root", root, "--checkpoint", trained_ckpts[kind], "--out", out,
                     "--workers", 1, "--batch-size", 16)  # a forward pass per few frames: slow enough to stop
    scored = lambda: list((out / scoring.PREDICTIONS_DIR).glob("*/*.hdf5"))
    rc, text = _interrupt_when(cmd, tmp_path, lambda: len(scored()) >= 1)
    assert rc != 0 and "Traceback" not in text and "KeyboardInterrupt" not in text, text[-3000:]
    assert text.strip().splitlines()[-1] == (
        f"interrupted: every video scored so far is saved in {out}/{scoring.PREDICTIONS_DIR}; run the same "
        f"command again to continue from there"), text[-2000:]
    k = len(scored())
    assert 1 <= k < 16 and not (out / "predictions.h5").exists()
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"16 test videos of split 1: {k} already scored in {out}, {16 - k} to go" in r.stdout
    m = json.loads((out / "metrics.json").read_text())
    assert m["n_videos"] == 16 and m["n_failed"] == 0 and len(scored()) == 16


# ----------------------------------------------------------------------------- one verdict, no test video

@pytest.mark.slow
def test_truncated_avi_gets_one_verdict_everywhere(bad_root, trained, tmp_path):
    """The real clip cut to half its bytes: training skips it, testing counts it wrong, predict.py and
    prepare_data.py refuse it, each with the same reason (test_training_skips_..., test_testing_...,
    test_prepare_... check each on its own)."""
    real = bad_root["named"]["truncated", "test"]
    with pytest.raises(video_io.VideoReadError) as e:
        video_io.read_frames(real, [0])  # its first frame is in the half that is there
    reason = e.value.reason
    assert reason.startswith("truncated: the file has") and f"{os.path.getsize(real):,} of the" in reason
    assert f"skipping unreadable video: {bad_root['named']['truncated', 'train']}: {reason}" in trained["single_frame"][1]
    test_text = run(test_single_frame, ["--data-root", bad_root["root"], "--checkpoint",
                                        trained["single_frame"][0] / "checkpoint.pt", "--out", tmp_path / "t",
                                        "--workers", 0])
    assert f"FAILED (counted wrong) {real}: {reason}" in test_text
    buf = io.StringIO()
    with redirect_stdout(buf), redirect_stderr(buf), pytest.raises(SystemExit, match="no video could be predicted"):
        predict.main(predict.parse_args([real, "--single-frame", str(trained["single_frame"][0] / "checkpoint.pt")]))
    assert f"cannot read {real}: {reason}" in buf.getvalue()
    root = tmp_path / "alone"  # prepare_data on a root holding it alone
    (root / "UCF-101" / "Cut").mkdir(parents=True)
    shutil.copy(real, root / "UCF-101" / "Cut" / "v_Cut_g01_c01.avi")
    buf = io.StringIO()
    with redirect_stdout(buf), redirect_stderr(buf), pytest.raises(SystemExit, match="no video could be converted"):
        prepare_data.main(prepare_data.parse_args(["--data-root", str(root), "--workers", "1"]))
    assert f"FAILED {root / 'UCF-101' / 'Cut' / 'v_Cut_g01_c01.avi'}: {reason}" in buf.getvalue()
    assert not list((root / "UCF-101-jpeg").glob("*/*"))  # no partial file


def test_epoch_line_says_na_when_no_test_video_is_read(toy_root, tmp_path):
    """Every test video unreadable, every training video fine: training goes on, and the epoch line and
    log.csv say n/a for the clip-level test instead of a made-up 0."""
    root = tmp_path / "root"
    shutil.copytree(toy_root, root)
    _, _, (test, _) = hf.getUCF101(str(root), 1)
    for p in test:
        open(p, "wb").close()  # zero bytes: a failed copy
    text = run(train_single_frame, ["--data-root", root, *SF, "--workers", 0, "--out", tmp_path / "run"])
    line = next(line for line in text.splitlines() if line.startswith("epoch 1/1  train loss"))
    assert "test (clip-level: one frame per video) n/a (no test video could be read)" in line, line
    assert f"skipped {len(test)}" in line and "train loss " in line and "train loss n/a" not in line
    with open(tmp_path / "run" / "log.csv", newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert row["test_clip_loss"] == row["test_clip_acc"] == "n/a" and row["failed_videos"] == str(len(test))
    assert float(row["train_loss"]) > 0
    assert engine.load_checkpoint(tmp_path / "run" / "checkpoint.pt", "single_frame")["epoch"] == 1


def test_predict_names_a_folder_as_a_folder(toy_root, trained_ckpts, capsys):
    folder = toy_root / "UCF-101" / "RedCircle"
    with pytest.raises(SystemExit, match="no video could be predicted"):
        predict.main(predict.parse_args([str(folder), "--single-frame", trained_ckpts["single_frame"]]))
    err = capsys.readouterr().err
    assert f"{folder} is a folder, not a video file: name the video files (e.g. {folder}/*.avi)" in err, err
    assert "Is a directory" not in err and "cannot read" not in err
