"""Saved results are reused only when they were made the way they are asked for.

Every saved thing records what it was made from: a checkpoint its run identity (flags, data lists,
pretrained weights), a prediction file its checkpoint's weight digest and test settings, a store file
its source video's size and modification time. These tests change one of those things and check that
nothing made otherwise is taken for current: the script stops in one line naming what differs and
what to do (--resume, --overwrite, another --out), or reads the source instead (a replaced AVI), and
with --overwrite the figures it then prints are the ones recomputed here independently (the
checkpoint's network rebuilt from torchvision, frames decoded with OpenCV, scikit-learn).

Usage: .venv/bin/python -m pytest -q tests/test_reuse.py   (on the session's toy set and checkpoints, conftest)
"""
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import torch
import torchvision
from conftest import TINY_TRAIN, script_cmd
from scipy import special
from sklearn.metrics import accuracy_score

import helperFunctions as hf
import scoring
import test_3d
import test_single_frame
import train_single_frame
import video_io
from tools import predict, prepare_data

REPO = Path(__file__).resolve().parents[1]
TINY_SF = [*TINY_TRAIN, "--pretrained", "none", "--arch", "resnet18"]  # the flags of trained_ckpts' 2D run


def run(script, argv):
    """script.main(script.parse_args(argv)) with stdout and stderr captured: (stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        script.main(script.parse_args([str(a) for a in argv]))
    return out.getvalue(), err.getvalue()


def stops(script, argv, *needles):
    """Run a script that must stop with a message (SystemExit, non-zero) holding every needle."""
    with pytest.raises(SystemExit) as e:
        run(script, argv)
    msg = str(e.value)
    assert e.value.code not in (0, None)
    for needle in needles:
        assert str(needle) in msg, (needle, msg)
    return msg


def decode(path):
    """Every frame of an AVI, decoded here with OpenCV: uint8 RGB (T, H, W, 3)."""
    cap, frames = cv2.VideoCapture(str(path)), []
    while (f := cap.read())[0]:
        frames.append(cv2.cvtColor(f[1], cv2.COLOR_BGR2RGB))
    cap.release()
    return np.stack(frames)


def logits_by_hand(checkpoint, frames):
    """The single-frame checkpoint's logits of every frame, computed here: torchvision's resnet18 with the
    checkpoint's weights, frames resized with OpenCV and normalised with ImageNet's mean/std in numpy."""
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    net = torchvision.models.resnet18(num_classes=ckpt["num_classes"])
    net.load_state_dict(ckpt["model"])
    s = ckpt["size"]
    x = np.stack([cv2.resize(f, (s, s), interpolation=cv2.INTER_LINEAR) for f in frames]) / 255.0
    x = (x - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    with torch.no_grad():
        return net.eval()(torch.from_numpy(x.transpose(0, 3, 1, 2)).float()).numpy()


def video_score(logits):
    """A video's log-probabilities: the mean of its frames' log-softmax, renormalised (scipy)."""
    return special.log_softmax(special.log_softmax(logits.astype(np.float64), axis=1).mean(0))


def files_of(out):
    """{relative path: bytes} of every file under a run folder."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(Path(out).rglob("*")) if p.is_file()}


# ----------------------------------------------------------------------------- checkpoints and their tests

@pytest.mark.slow
def test_retrained_checkpoint_is_not_mixed_with_old_predictions(toy_root, trained_ckpts, tmp_path):
    """Train, test into T; training again into the run folder without --resume stops before any epoch
    (checkpoint untouched), --overwrite with another --seed replaces it; testing that checkpoint into T
    then stops naming both weight digests; --overwrite rescores, and the top-1 it prints and saves is
    the one computed here from the checkpoint's weights on frames decoded here."""
    run_dir, out = tmp_path / "sf", tmp_path / "sf_test"
    shutil.copytree(Path(trained_ckpts["single_frame"]).parent, run_dir)
    ckpt_path = run_dir / "checkpoint.pt"
    test_argv = ["--data-root", toy_root, "--checkpoint", ckpt_path, "--out", out, "--workers", 0]
    run(test_single_frame, test_argv)
    old = torch.load(ckpt_path, weights_only=True)["weights_sha256"]
    first = files_of(out)

    before = ckpt_path.read_bytes()
    with pytest.raises(SystemExit) as e:  # another --seed, --resume forgotten
        out_text, _ = run(train_single_frame, ["--data-root", toy_root, *TINY_SF, "--seed", 1, "--out", run_dir])
    assert str(e.value) == (f"--out {run_dir} already holds a single_frame resnet18 run (epoch 1): add --resume to "
                            f"continue it, --overwrite to replace it, or use another --out")
    assert ckpt_path.read_bytes() == before and not (run_dir / "checkpoint.pt.tmp").exists()

    text, _ = run(train_single_frame, ["--data-root", toy_root, *TINY_SF, "--seed", 1, "--out", run_dir, "--overwrite"])
    assert f"--overwrite: {ckpt_path} will be replaced after the first epoch" in text and "epoch 1/1  train" in text
    new = torch.load(ckpt_path, weights_only=True)
    assert new["identity"]["seed"] == 1 and new["weights_sha256"] != old
    # the digest is of the weights themselves (recomputed here: names, dtypes, shapes, bytes in name order)
    h = hashlib.sha256()
    for name in sorted(new["model"]):
        t = new["model"][name].contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode() + t.reshape(-1).view(torch.uint8).numpy().tobytes())
    assert h.hexdigest() == new["weights_sha256"]

    msg = stops(test_single_frame, test_argv, f"--out {out} holds predictions made otherwise",
                f"--checkpoint (its weights) was {old[:12]}, now {new['weights_sha256'][:12]}", "--overwrite")
    assert "; " not in msg.split("otherwise (")[1]  # the weights are all that differ
    assert files_of(out) == first  # nothing replaced, nothing added

    text, _ = run(test_single_frame, test_argv + ["--overwrite"])
    _, _, (paths, labels) = hf.getUCF101(str(toy_root), 1)
    scores = []
    for p in paths:
        mine = logits_by_hand(ckpt_path, decode(p))
        with h5py.File(scoring.video_file(out, p), "r") as f:
            np.testing.assert_allclose(f["predictions"][()], mine, rtol=1e-4, atol=1e-4)
            assert f.attrs["checkpoint_sha256"] == new["weights_sha256"]
        scores.append(video_score(mine))
    top1 = accuracy_score(labels, np.argmax(scores, axis=1))
    assert json.loads((out / "metrics.json").read_text())["top1"] == pytest.approx(top1)
    printed = re.search(r"video-level accuracy over 8 test videos \(0 failed\): top1 (\d\.\d{4})", text)
    assert printed and float(printed.group(1)) == pytest.approx(top1, abs=5e-5), text


@pytest.mark.slow
def test_other_test_settings_into_the_same_out_stop(toy_root, trained_ckpts, tmp_path):
    """An --out holding single-frame predictions given to test_3d.py, or 3D predictions made with other
    --crops, --mode, --stride, --flip or --average: each stops naming the setting with its saved and
    asked values, and leaves every file as it was; the run's predictions.h5 alone is enough to tell, and a
    run killed before predictions.h5 was written is caught by its per-video files."""
    sf, td = tmp_path / "sf", tmp_path / "3d"
    common = ["--data-root", toy_root, "--workers", 0]
    run(test_single_frame, common + ["--checkpoint", trained_ckpts["single_frame"], "--out", sf])
    saved = files_of(sf)
    stops(test_3d, common + ["--checkpoint", trained_ckpts["3d"], "--out", sf],
          f"--out {sf} holds predictions made otherwise", "(test_single_frame.py / test_3d.py) was 'single_frame', now '3d'")
    stops(test_single_frame, common + ["--checkpoint", trained_ckpts["single_frame"], "--out", sf, "--flip"],
          "--flip was False, now True")
    assert files_of(sf) == saved

    run(test_3d, common + ["--checkpoint", trained_ckpts["3d"], "--out", td])
    saved = files_of(td)
    for flags, needle in ((["--crops", "three"], "--crops was 'center', now 'three'"),
                          (["--mode", "full"], "--mode was 'windows', now 'full'"),
                          (["--stride", "4"], "--stride was 8, now 4"),
                          (["--flip"], "--flip was False, now True"),
                          (["--average", "softmax"], "--average was 'log_softmax', now 'softmax'")):
        stops(test_3d, common + ["--checkpoint", trained_ckpts["3d"], "--out", td, *flags],
              f"--out {td} holds predictions made otherwise", needle, "--overwrite")
        assert files_of(td) == saved, flags
    alone = tmp_path / "3d_run_file_only"  # the run's file without its per-video files (copied alone, say)
    shutil.copytree(td, alone, ignore=shutil.ignore_patterns(scoring.PREDICTIONS_DIR))
    stops(test_3d, common + ["--checkpoint", trained_ckpts["3d"], "--out", alone, "--stride", "4"],
          f"--out {alone} holds predictions made otherwise (--stride was 8, now 4)")
    assert not (alone / scoring.PREDICTIONS_DIR).exists()  # nothing scored
    os.remove(td / "predictions.h5")  # killed after the videos, before the run's file
    _, _, (paths, _) = hf.getUCF101(str(toy_root), 1)
    stops(test_3d, common + ["--checkpoint", trained_ckpts["3d"], "--out", td, "--stride", "4"],
          f"({scoring.video_file(td, paths[0])}: --stride was 8, now 4)")
    text, _ = run(test_3d, common + ["--checkpoint", trained_ckpts["3d"], "--out", td])  # the same settings: reused
    assert f"8 test videos of split 1: 8 already scored in {td}, 0 to go" in text


@pytest.mark.slow
@pytest.mark.parametrize("flag", ["--lr", "--size", "--train-from", "--seed", "--pretrained"])
def test_resume_with_another_flag_stops_in_one_line(toy_root, trained_ckpts, tmp_path, flag):
    """--resume with another --lr, --size, --train-from, --seed or --pretrained: one line naming the flag,
    its saved and asked values, a non-zero exit status, no traceback, the checkpoint untouched."""
    run_dir = tmp_path / "run"
    shutil.copytree(Path(trained_ckpts["single_frame"]).parent, run_dir)
    before = (run_dir / "checkpoint.pt").read_bytes()
    if flag == "--pretrained":  # ImageNet-style weights of a resnet18, and their digest computed here
        weights = tmp_path / "resnet18.pth"
        torch.manual_seed(1)
        state = torchvision.models.resnet18(weights=None).state_dict()
        torch.save(state, weights)
        h = hashlib.sha256()
        for name in sorted(state):
            t = state[name].contiguous()
            h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode() + t.reshape(-1).view(torch.uint8).numpy().tobytes())
        value, expected = weights, f"--pretrained (the weights' contents) was 'none', now {h.hexdigest()[:12]}"
    else:
        value, expected = {"--lr": ("1e-3", "--lr was 0.0001, now 0.001"), "--size": ("48", "--size was 32, now 48"),
                           "--train-from": ("layer4", "--train-from was 'all', now 'layer4'"),
                           "--seed": ("1", "--seed was 0, now 1")}[flag]
    r = subprocess.run(script_cmd("train_single_frame.py", "--data-root", toy_root, *TINY_SF, flag, value,
                                  "--out", run_dir, "--resume"), cwd=REPO, capture_output=True, text=True, timeout=300)
    lines = r.stderr.strip().splitlines()
    assert r.returncode != 0 and "Traceback" not in r.stderr and len(lines) == 1, r.stderr[-3000:]
    assert lines[0].startswith(f"--resume: {run_dir / 'checkpoint.pt'} holds a single_frame resnet18 run (epoch 1) "
                               f"made otherwise: {expected}. "), lines[0]
    assert lines[0].count(" was ") == 1 and "--overwrite" in lines[0]  # that flag alone, and what to do
    assert (run_dir / "checkpoint.pt").read_bytes() == before and "epoch 1/" not in r.stdout


@pytest.mark.slow
def test_resume_continues_to_more_epochs_and_refuses_fewer(toy_root, trained_ckpts, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(Path(trained_ckpts["single_frame"]).parent, run_dir)
    text, _ = run(train_single_frame, ["--data-root", toy_root, *TINY_SF, "--epochs", 2, "--out", run_dir, "--resume"])
    assert f"resumed from {run_dir / 'checkpoint.pt'} after epoch 1" in text and "epoch 2/2  train" in text
    assert "epoch 1/2" not in text  # the first epoch is not redone
    assert torch.load(run_dir / "checkpoint.pt", weights_only=True)["epoch"] == 2
    assert [line.split(",")[0] for line in (run_dir / "log.csv").read_text().splitlines()[1:]] == ["1", "2"]
    before = (run_dir / "checkpoint.pt").read_bytes()
    stops(train_single_frame, ["--data-root", toy_root, *TINY_SF, "--epochs", 1, "--out", run_dir, "--resume"],
          "has already trained 2 epochs, more than --epochs 1: pass --epochs 2 or more")
    assert (run_dir / "checkpoint.pt").read_bytes() == before


# ----------------------------------------------------------------------------- a video replaced after preparing

@pytest.mark.slow
def test_replaced_avi_is_read_everywhere_then_reconverted(toy_root, trained_ckpts, tmp_path, monkeypatch):
    """Two AVIs (one of the train list, one of the test list) replaced after the compact store was made:
    training, testing and predict.py (given the AVI's own path) read the new AVI, as OpenCV decodes it
    here, each with a warning naming the stale store file; prepare_data converts those two again."""
    root = tmp_path / "toy"
    shutil.copytree(toy_root, root)
    run(prepare_data, ["--data-root", root, "--workers", 1])
    _, (train, _), (test, _) = hf.getUCF101(str(root), 1)
    replaced = {"train": Path(train[0]), "test": Path(test[0])}
    donors = {"train": Path(train[-1]), "test": Path(test[-1])}  # other classes, other frames
    for k, path in replaced.items():
        shutil.copyfile(donors[k], path)
    new = {k: decode(p) for k, p in replaced.items()}
    stale = {k: video_io.store_path(str(p), "jpeg") for k, p in replaced.items()}
    warning = {k: f"warning: {stale[k]} is older than its source {p}" for k, p in replaced.items()}

    # training: the dataset it trains on draws its clip from the new frames, and says so
    monkeypatch.setattr(video_io, "_WARNED", set())
    rng = np.random.default_rng([0, 0, 0])
    idx = hf.clip_indices(len(new["train"]), 1, rng)
    sample = hf.ClipDataset([str(replaced["train"])], [0], augment=True, size=32, frames=1, seed=0)[(0, 0)]
    by_hand = hf.apply_augment(new["train"][idx], hf.draw_augment(rng, *new["train"].shape[1:3]), 32)[0]
    assert np.array_equal(sample["video"].numpy(), by_hand)
    monkeypatch.setattr(video_io, "_WARNED", set())
    text, err = run(train_single_frame, ["--data-root", root, *TINY_SF, "--out", tmp_path / "run"])
    assert warning["train"] in err and warning["test"] in err and "skipped 0" in text

    # testing: the replaced test video's saved logits are the checkpoint's on the new frames
    monkeypatch.setattr(video_io, "_WARNED", set())
    ckpt = trained_ckpts["single_frame"]
    _, err = run(test_single_frame, ["--data-root", root, "--checkpoint", ckpt, "--out", tmp_path / "t", "--workers", 0])
    assert warning["test"] in err
    mine = logits_by_hand(ckpt, new["test"])
    with h5py.File(scoring.video_file(tmp_path / "t", str(replaced["test"])), "r") as f:
        np.testing.assert_allclose(f["predictions"][()], mine, rtol=1e-4, atol=1e-4)

    # predict.py given the AVI's own path (the data root's canonical name of the video)
    monkeypatch.setattr(video_io, "_WARNED", set())
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        res = predict.main(predict.parse_args([str(replaced["test"]), "--single-frame", ckpt, "--device", "cpu"]))
    assert warning["test"] in err.getvalue() and f"({len(new['test'])} frames)" in out.getvalue()
    got = dict(res[str(replaced["test"])]["single_frame"])
    classes = list(hf.read_class_list(str(root)))
    np.testing.assert_allclose([got[c] for c in classes], np.exp(video_score(mine)), rtol=1e-4, atol=1e-6)

    # prepare_data: the two stale files are converted again, the others kept; then nothing warns
    text, _ = run(prepare_data, ["--data-root", root, "--workers", 1])
    assert "24 videos in" in text and "22 already converted, 2 to convert" in text and "2 of them again" in text
    monkeypatch.setattr(video_io, "_WARNED", set())
    for k, p in replaced.items():
        assert video_io.is_complete(stale[k], str(p))
        err = io.StringIO()
        with redirect_stderr(err):
            frames = video_io.read_frames(str(p))
        assert frames.shape == new[k].shape and np.abs(frames.astype(int) - new[k]).mean() < 2 and not err.getvalue()
