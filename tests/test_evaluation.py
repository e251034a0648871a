"""Evaluation a reviewer trusts: validation groups, intervals, paired tests, a fusion weight chosen on
validation, test-time crops and flips, the inputs of a fusion checked, and the summary over splits.

The statistics are checked against scipy / scikit-learn and by hand; the scripts run for real on the
tiny toy UCF-101 of conftest (4 classes x 3 groups x 2 clips; split 1 tests group 1 and trains on
groups 2-3, so --val-groups 1 holds out group 3).

Usage: pytest -q tests/test_evaluation.py
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import script_cmd
from scipy import special, stats
from sklearn.metrics import accuracy_score, confusion_matrix

import combine_results
import engine
import helperFunctions as hf
import metrics
import scoring
import test_3d
import test_single_frame
import train_3d
import train_single_frame
import video_io
from tools import splits_summary

ROOT = Path(__file__).resolve().parents[1]

TRAIN = ["--size", "32", "--epochs", "1", "--batch-size", "8", "--workers", "0", "--train-from", "all"]


# ----------------------------------------------------------------------------- statistics

def test_bootstrap_ci_is_the_documented_resampling():
    """Same draws as the docstring says (one rng.integers(0, N, N) per resample, in order), scored by
    sklearn's accuracy_score, bounds by np.quantile: the interval must match exactly."""
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 5, 150)
    preds = np.where(rng.random(150) < 0.7, labels, (labels + 1) % 5)
    correct = preds == labels
    n_resamples = 2000
    draw = np.random.default_rng(metrics.BOOTSTRAP_SEED)
    accs = []
    for _ in range(n_resamples):
        idx = draw.integers(0, 150, 150)
        accs.append(accuracy_score(labels[idx], preds[idx]))
    expected = np.quantile(accs, [0.025, 0.975])
    assert metrics.bootstrap_ci(correct, n_resamples=n_resamples) == pytest.approx(tuple(expected), abs=1e-12)
    # the defaults (10,000 resamples, the fixed seed): the same interval as the draws made here, every time
    assert metrics.bootstrap_ci(correct) == pytest.approx(bootstrap_by_hand(correct), abs=1e-12)


def bootstrap_by_hand(correct, n_resamples=10000, seed=0):
    """The documented 95% percentile interval: per resample, in order, rng.integers(0, N, N) indices
    of default_rng(seed); the mean of each; np.quantile at 2.5% and 97.5%."""
    correct = np.asarray(correct, dtype=float)
    draw = np.random.default_rng(seed)
    means = [correct[draw.integers(0, len(correct), len(correct))].mean() for _ in range(n_resamples)]
    return tuple(np.quantile(means, [0.025, 0.975]))


def test_bootstrap_ci_agrees_with_scipy():
    rng = np.random.default_rng(1)
    correct = rng.random(400) < 0.62
    ours = metrics.bootstrap_ci(correct)
    ref = stats.bootstrap((correct.astype(float),), np.mean, n_resamples=10000, method="percentile",
                          confidence_level=0.95, random_state=np.random.default_rng(7)).confidence_interval
    assert ours[0] == pytest.approx(ref.low, abs=0.01) and ours[1] == pytest.approx(ref.high, abs=0.01)
    assert ours[0] < correct.mean() < ours[1]
    # a model right on every video: no resample can say otherwise
    assert metrics.bootstrap_ci(np.ones(30, bool)) == (1.0, 1.0)
    assert all(np.isnan(metrics.bootstrap_ci(np.zeros(0, bool))))


@pytest.mark.parametrize("a_only,b_only,both,neither", [(1, 5, 10, 3), (0, 0, 7, 2), (12, 3, 0, 0),
                                                        (1500, 1600, 400, 283), (0, 9, 1, 1)])
def test_mcnemar_exact_against_scipy_binomtest(a_only, b_only, both, neither):
    a = np.array([1] * a_only + [0] * b_only + [1] * both + [0] * neither, bool)
    b = np.array([0] * a_only + [1] * b_only + [1] * both + [0] * neither, bool)
    perm = np.random.default_rng(0).permutation(len(a))
    a, b = a[perm], b[perm]
    got = metrics.mcnemar_exact(a, b)
    (_, only_b), (only_a, _) = confusion_matrix(a, b, labels=[False, True])[:, [0, 1]]
    assert got[:2] == (a_only, b_only) == (only_a, only_b)
    n = a_only + b_only
    expected = 1.0 if n == 0 else stats.binomtest(a_only, n, 0.5, alternative="two-sided").pvalue
    assert got[2] == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_mcnemar_by_hand():
    # 1 vs 5 discordant videos: P(X <= 1) = (1 + 6) / 64, doubled
    a = np.array([1, 0, 0, 0, 0, 0, 1, 1], bool)
    b = np.array([0, 1, 1, 1, 1, 1, 1, 0], bool)
    a[7] = b[7] = False
    assert metrics.mcnemar_exact(a, b) == (1, 5, pytest.approx(14 / 64))
    with pytest.raises(ValueError):
        metrics.mcnemar_exact(a, b[:-1])


def test_choose_fusion_weight_against_direct_fusion():
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 6, 80)
    a, b = rng.normal(0, 1, (80, 6)), rng.normal(0, 1, (80, 6))
    a[np.arange(80), labels] += 1.0
    b[np.arange(80), labels] += 1.6
    top1 = {}
    for w in np.round(np.linspace(0, 1, 11), 2):
        fused = w * special.log_softmax(a, axis=1) + (1 - w) * special.log_softmax(b, axis=1)
        top1[float(w)] = accuracy_score(labels, fused.argmax(1))
    best = max(top1.values())
    nearest = min((w for w, t in top1.items() if t == best), key=lambda w: (abs(w - 0.5), w))
    w, rows = metrics.choose_fusion_weight(a, b, labels)
    assert w == nearest and {r["weight"]: r["top1"] for r in rows} == pytest.approx(top1)
    # ties: every weight gives the same top-1 on identical models -> the preferred weight wins
    assert metrics.choose_fusion_weight(a, a, labels, prefer=0.3)[0] == 0.3


# ----------------------------------------------------------------------------- validation groups

def test_split_validation_on_the_official_lists(split_dir):
    root = split_dir.parent
    names = lambda f: [line.split()[0] for line in open(split_dir / f, encoding="utf-8") if line.strip()]
    train_lines, test_lines = names("trainlist01.txt"), names("testlist01.txt")
    _, train, val, test = hf.getUCF101_subsets(str(root), 1, val_groups=1)
    # every class of split 1 trains on groups 8-25: the last group is 25
    expected_val = [n for n in train_lines if "_g25_" in n]
    assert [f"{Path(p).parent.name}/{Path(p).name}" for p in val[0]] == expected_val
    assert len(train[0]) + len(val[0]) == len(train_lines) and len(test[0]) == len(test_lines)
    assert not set(map(str, val[0])) & set(map(str, test[0])) and not set(map(str, val[0])) & set(map(str, train[0]))
    _, train2, val2, _ = hf.getUCF101_subsets(str(root), 1, val_groups=2)
    assert {hf.video_group(p) for p in val2[0]} == {24, 25} and len(val2[0]) > len(val[0])
    _, train0, val0, _ = hf.getUCF101_subsets(str(root), 1, val_groups=0)
    assert len(val0[0]) == 0 and [str(p) for p in train0[0]] == [str(p) for p in hf.getUCF101(str(root), 1)[1][0]]


def test_split_validation_per_class_and_too_few_groups(toy_root):
    _, train, val, test = hf.getUCF101_subsets(str(toy_root), 1, val_groups=1)
    assert {hf.video_group(p) for p in val[0]} == {3} and {hf.video_group(p) for p in train[0]} == {2}
    assert np.bincount(val[1]).tolist() == [2, 2, 2, 2]  # 2 clips of group 3 in each of 4 classes
    with pytest.raises(ValueError, match=r"trainlist01.txt: class \w+ has 2 groups, too few"):
        hf.getUCF101_subsets(str(toy_root), 1, val_groups=2)
    with pytest.raises(ValueError, match="no group"):
        hf.video_group("/r/UCF-101/A/clip.avi")


def test_test_views_boxes():
    assert hf.test_views(240, 320) == [hf.Augment()]
    three = hf.test_views(240, 320, "three", flip=True)
    assert [v.crop for v in three] == [(0, 0, 240, 240), (0, 40, 240, 240), (0, 80, 240, 240)] * 2
    assert [v.flip for v in three] == [False] * 3 + [True] * 3
    assert [v.crop for v in hf.test_views(100, 60, "three")] == [(0, 0, 60, 60), (20, 0, 60, 60), (40, 0, 60, 60)]
    with pytest.raises(ValueError):
        hf.test_views(240, 320, "ten")


def test_multi_view_dataset_pixels(toy_root):
    _, _, (paths, labels) = hf.getUCF101(str(toy_root), 1)
    import cv2
    frames = video_io.read_frames(paths[0])
    plain = np.stack([cv2.resize(f, (32, 32), interpolation=cv2.INTER_LINEAR) for f in frames])  # by hand
    center = hf.VideoDataset(paths, labels, size=32)[0]["video"].numpy()
    np.testing.assert_array_equal(center, plain[None])  # the default is the assignment's view, unchanged
    views = hf.VideoDataset(paths, labels, size=32, crops="three", flip=True)[0]["video"].numpy()
    h, w = frames.shape[1:3]
    side = min(h, w)
    right = cv2.resize(np.ascontiguousarray(frames[5, :side, w - side:]), (32, 32), interpolation=cv2.INTER_LINEAR)
    assert views.shape == (6, len(frames), 32, 32, 3)
    np.testing.assert_array_equal(views[2, 5], right)
    np.testing.assert_array_equal(views[5, 5], cv2.flip(right, 1))  # mirrored crop == mirrored resize


# ----------------------------------------------------------------------------- scripts, for real

@pytest.fixture(scope="module")
def val_run(toy_root, tmp_path_factory):
    """1-epoch checkpoints trained with --val-groups 1, and the val / test predictions of both."""
    tmp = tmp_path_factory.mktemp("val_run")
    common = ["--data-root", str(toy_root), "--val-groups", "1", *TRAIN]
    train_single_frame.main(train_single_frame.parse_args(
        common + ["--pretrained", "none", "--arch", "resnet18", "--out", str(tmp / "sf")]))
    train_3d.main(train_3d.parse_args(
        common + ["--pretrained", "none", "--arch", "resnet10", "--layer4-blocks", "1", "--out", str(tmp / "3d")]))
    ck = {"single_frame": str(tmp / "sf" / "checkpoint.pt"), "3d": str(tmp / "3d" / "checkpoint.pt")}
    out = {}
    for subset in ("val", "test"):
        out[f"sf_{subset}"] = run(test_single_frame, toy_root, ck["single_frame"], tmp / f"sf_{subset}", "--subset", subset)
        out[f"3d_{subset}"] = run(test_3d, toy_root, ck["3d"], tmp / f"3d_{subset}", "--subset", subset)
    return {"tmp": tmp, "ckpt": ck, **out}


def run(script, root, ckpt, out, *extra):
    script.main(script.parse_args(["--data-root", str(root), "--checkpoint", ckpt, "--out", str(out),
                                   "--workers", "0", *extra]))
    return Path(out)


@pytest.mark.slow
def test_training_holds_the_validation_groups_out(val_run, toy_root):
    import torch
    ckpt = torch.load(val_run["ckpt"]["single_frame"], weights_only=True)
    assert ckpt["val_groups"] == 1 and ckpt["split"] == 1
    # what the training scripts train on: group 2 only, 4 classes x 2 clips
    _, (train_paths, train_labels), _, _ = engine.split_lists(str(toy_root), 1, 1)
    assert sorted(video_io.video_name(p) for p in train_paths) == sorted(
        f"v_{c}_g02_c0{k}" for c in hf.read_class_list(str(toy_root)) for k in (1, 2))
    with h5py.File(val_run["sf_val"] / "predictions.h5") as h:
        names = list(h["videos"].asstr()[()])
        assert h.attrs["subset"] == "val" and h.attrs["val_groups"] == 1
    assert len(names) == 8 and all("_g03_" in n for n in names)
    with h5py.File(val_run["sf_test"] / "predictions.h5") as h:
        assert all("_g01_" in n for n in h["videos"].asstr()[()]) and h.attrs["subset"] == "test"


@pytest.mark.slow
def test_resume_and_test_refuse_other_validation_groups(val_run, toy_root, tmp_path):
    sf = val_run["tmp"] / "sf"
    before = (sf / "checkpoint.pt").read_bytes()
    with pytest.raises(SystemExit, match=r"made otherwise: --data-root \(its train list\) was \w{12}, now \w{12}; --val-groups was 1, now 0\. "):
        train_single_frame.main(train_single_frame.parse_args(
            ["--data-root", str(toy_root), *TRAIN, "--pretrained", "none", "--arch", "resnet18", "--out", str(sf),
             "--resume", "--epochs", "2"]))
    assert (sf / "checkpoint.pt").read_bytes() == before
    with pytest.raises(SystemExit, match="not split 1 with --val-groups 0"):
        run(test_single_frame, toy_root, val_run["ckpt"]["single_frame"], tmp_path / "x", "--val-groups", "0")
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_empty_validation_subset_is_one_clear_error(toy_root, trained_ckpts, tmp_path):
    # a checkpoint trained on the whole train list (the session's) has no validation videos to score
    cmd = [sys.executable, "test_single_frame.py", "--data-root", str(toy_root), "--checkpoint",
           trained_ckpts["single_frame"], "--subset", "val", "--out", str(tmp_path / "val"), "--workers", "0"]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode != 0 and "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines() == [
        f"--subset val of split 1 is empty in {toy_root}/ucfTrainTestlist: train with --val-groups N (N > 0) "
        f"to hold groups out for validation"]
    with pytest.raises(SystemExit, match="too few to hold out --val-groups 2"):
        train_single_frame.main(train_single_frame.parse_args(
            ["--data-root", str(toy_root), *TRAIN, "--pretrained", "none", "--val-groups", "2", "--out", str(tmp_path / "b")]))
    assert not (tmp_path / "b").exists()


def combine(val_run, out, *extra, val=True):
    argv = ["--single-frame", str(val_run["sf_test"]), "--three-d", str(val_run["3d_test"]), "--out", str(out)]
    if val:
        argv += ["--val-single-frame", str(val_run["sf_val"]), "--val-three-d", str(val_run["3d_val"])]
    return combine_results.main(combine_results.parse_args(argv + list(extra)))


@pytest.mark.slow
def test_fusion_weight_chosen_on_validation(val_run, tmp_path):
    res = combine(val_run, tmp_path / "c", "--sweep")
    sf_val, td_val = (scoring.load_run(str(val_run[k])) for k in ("sf_val", "3d_val"))
    td_val = scoring.align(sf_val, td_val)
    # independently: fuse with scipy on the validation predictions and take the best top-1
    best, best_key = None, None
    for w in np.round(np.linspace(0, 1, 11), 2):
        fused = w * special.log_softmax(sf_val.scores, 1) + (1 - w) * special.log_softmax(td_val.scores, 1)
        acc = accuracy_score(sf_val.labels, fused.argmax(1))
        key = (acc, -abs(w - 0.5), -w)
        if best_key is None or key > best_key:
            best, best_key = float(w), key
    assert res["fusion"]["chosen_on"] == "validation" and res["fusion"]["weight"] == best
    assert res["fusion"]["validation_videos"] == 8 and res["weight_single_frame"] == best
    sf, td = (scoring.load_run(str(val_run[k])) for k in ("sf_test", "3d_test"))
    td = scoring.align(sf, td)
    fused = best * special.log_softmax(sf.scores, 1) + (1 - best) * special.log_softmax(td.scores, 1)
    assert res["models"]["fused"]["top1"] == pytest.approx(accuracy_score(sf.labels, fused.argmax(1)))
    assert "oracle" in res["sweep"]["note"]
    saved = json.loads((tmp_path / "c" / "results.json").read_text())
    correct = {"single_frame": sf.scores.argmax(1) == sf.labels, "3d": td.scores.argmax(1) == td.labels,
               "fused": fused.argmax(1) == sf.labels}
    for name, c in correct.items():
        low, high = saved["models"][name]["top1_ci95"]
        assert low <= c.mean() <= high and (low, high) == pytest.approx(bootstrap_by_hand(c))
    for a, b in (("3d", "single_frame"), ("fused", "3d"), ("fused", "single_frame")):
        r = saved["paired"][f"{a}_vs_{b}"]
        a_only, b_only = int((correct[a] & ~correct[b]).sum()), int((correct[b] & ~correct[a]).sum())
        n = a_only + b_only
        p = 1.0 if n == 0 else stats.binomtest(a_only, n, 0.5).pvalue
        assert (r["a_only"], r["b_only"]) == (a_only, b_only) and r["p_value"] == pytest.approx(p)


@pytest.mark.slow
def test_fixed_weight_without_validation_says_so(val_run, tmp_path, capsys):
    res = combine(val_run, tmp_path / "c", "--weight", "0.3", val=False)
    assert res["fusion"] == {"weight": 0.3, "chosen_on": "fixed", "validation_videos": 0}
    assert "fixed (--weight; no validation predictions given" in capsys.readouterr().out


def cli_error(script, *argv):
    p = subprocess.run(script_cmd(script, *argv), cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode != 0 and "Traceback" not in p.stderr, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    return lines[0]


@pytest.mark.slow
def test_fusion_refuses_mixed_subsets_and_crops(val_run, toy_root, tmp_path):
    # validation predictions given as test predictions (and the reverse)
    line = cli_error("combine_results.py", "--single-frame", val_run["sf_val"], "--three-d", val_run["3d_test"],
                     "--out", tmp_path / "c")
    assert str(val_run["sf_val"]) in line and "val subset" in line and "given as test predictions" in line
    line = cli_error("combine_results.py", "--single-frame", val_run["sf_test"], "--three-d", val_run["3d_test"],
                     "--val-single-frame", val_run["sf_test"], "--val-three-d", val_run["3d_val"], "--out", tmp_path / "c")
    assert "test subset, but was given as validation predictions" in line
    # 3D test predictions with three crops and flips: not reused from the centre-view run, and refused by fusion
    three = tmp_path / "3d_three"
    shutil.copytree(val_run["3d_test"], three)
    with pytest.raises(SystemExit, match="--crops was 'center', now 'three'; --flip was False, now True"):
        run(test_3d, toy_root, val_run["ckpt"]["3d"], three, "--crops", "three", "--flip")
    run(test_3d, toy_root, val_run["ckpt"]["3d"], three, "--crops", "three", "--flip", "--overwrite")
    with h5py.File(three / "predictions.h5") as h:
        assert h.attrs["crops"] == "three" and bool(h.attrs["flip"]) is True
    _, _, (paths, _) = hf.getUCF101(str(toy_root), 1)
    for p in paths:
        with h5py.File(scoring.video_file(str(three), p)) as h6, \
                h5py.File(scoring.video_file(str(val_run["3d_test"]), p)) as h1:
            assert len(h6["predictions"]) == 6 * len(h1["predictions"])  # 6 views x the same windows
    line = cli_error("combine_results.py", "--single-frame", val_run["sf_test"], "--three-d", three,
                     "--out", tmp_path / "c")
    assert "different crops" in line and str(val_run["sf_test"]) in line and str(three) in line


@pytest.mark.slow
def test_three_crops_rerun_is_not_reused(val_run, toy_root, tmp_path, capsys):
    out = tmp_path / "sf"
    shutil.copytree(val_run["sf_test"], out)
    with pytest.raises(SystemExit, match="holds predictions made otherwise \\(--crops was 'center', now 'three'\\)"):
        run(test_single_frame, toy_root, val_run["ckpt"]["single_frame"], out, "--crops", "three")
    run(test_single_frame, toy_root, val_run["ckpt"]["single_frame"], out, "--crops", "three", "--overwrite")
    assert "8 test videos of split 1: 0 already scored" in capsys.readouterr().out
    run(test_single_frame, toy_root, val_run["ckpt"]["single_frame"], out, "--crops", "three")
    assert "8 test videos of split 1: 8 already scored" in capsys.readouterr().out
    with h5py.File(out / "predictions.h5") as h:
        assert h.attrs["crops"] == "three"


# ----------------------------------------------------------------------------- splits summary and report

def fake_results(path, split, top1, crops="center"):
    attrs = {"model": "x", "split": split, "crops": crops, "flip": False, "subset": "test", "arch": "resnet18"}
    results = {"class_list": ["A", "B"], "attrs": {"single_frame": attrs, "3d": {**attrs, "model": "3d"}},
               "fusion": {"weight": 0.4, "chosen_on": "validation", "validation_videos": 10},
               "models": {m: {"top1": t} for m, t in zip(("single_frame", "3d", "fused"), top1)}}
    os.makedirs(path / "combined", exist_ok=True)
    (path / "combined" / "results.json").write_text(json.dumps(results))
    return path


def test_splits_summary_mean_and_std(tmp_path):
    tops = {1: (0.70, 0.80, 0.85), 2: (0.66, 0.83, 0.86), 3: (0.71, 0.79, 0.88)}
    runs = [fake_results(tmp_path / f"split{s}", s, t) for s, t in tops.items()]
    splits_summary.main(splits_summary.parse_args(["--runs", *map(str, runs), "--out", str(tmp_path / "summary")]))
    summary = json.loads((tmp_path / "summary" / "splits_summary.json").read_text())
    for i, m in enumerate(("single_frame", "3d", "fused")):
        values = [tops[s][i] for s in (1, 2, 3)]
        r = summary["models"][m]
        assert r["per_split"] == {"1": values[0], "2": values[1], "3": values[2]}
        assert r["top1_mean"] == pytest.approx(stats.tmean(values))
        assert r["top1_std"] == pytest.approx(stats.tstd(values))  # sample std, ddof 1
    assert summary["splits"] == [1, 2, 3] and summary["runs"]["2"].endswith("split2/combined/results.json")


def test_splits_summary_refuses_other_settings(tmp_path):
    a = fake_results(tmp_path / "split1", 1, (0.7, 0.8, 0.9))
    b = fake_results(tmp_path / "split2", 2, (0.7, 0.8, 0.9), crops="three")
    line = cli_error("tools/splits_summary.py", "--runs", a, b, "--out", tmp_path / "s")
    assert "different settings" in line and "crops" in line and str(a) in line and str(b) in line
    c = fake_results(tmp_path / "again1", 1, (0.7, 0.8, 0.9))
    line = cli_error("tools/splits_summary.py", "--runs", a, c, "--out", tmp_path / "s")
    assert "same split" in line and str(c) in line
    assert not (tmp_path / "s").exists()


# ----------------------------------------------------------------------------- the inputs of a fusion

@pytest.mark.slow
def test_fusion_refuses_swapped_roles(val_run, tmp_path):
    """The model each predictions file records decides its role, whatever its folder is called: the 3D
    run given as --single-frame (and the reverse), test or validation, stops in one line."""
    line = cli_error("combine_results.py", "--single-frame", val_run["3d_test"], "--3d", val_run["sf_test"],
                     "--out", tmp_path / "c")
    assert line == (f"combine_results.py: --single-frame {val_run['3d_test'] / 'predictions.h5'} holds predictions "
                    f"of the 3d model, not the single_frame one: swap the inputs or pass the right run folder")
    line = cli_error("combine_results.py", "--single-frame", val_run["sf_test"], "--3d", val_run["3d_test"],
                     "--val-single-frame", val_run["sf_val"], "--val-3d", val_run["sf_val"], "--out", tmp_path / "c")
    assert f"--val-3d {val_run['sf_val'] / 'predictions.h5'} holds predictions of the single_frame model" in line
    # a copy of the 3D run in a folder named like the single-frame one is still the 3D run
    disguised = tmp_path / "single_frame_test"
    shutil.copytree(val_run["3d_test"], disguised)
    line = cli_error("combine_results.py", "--single-frame", disguised, "--3d", val_run["3d_test"], "--out", tmp_path / "c")
    assert "holds predictions of the 3d model, not the single_frame one" in line
    assert not (tmp_path / "c").exists()


@pytest.mark.slow
def test_fusion_refuses_validation_predictions_of_another_checkpoint(val_run, toy_root, tmp_path):
    """Validation predictions scored with another checkpoint (the same run trained one epoch more) than
    the test ones: the weight chosen on them would not be the fused model's; one line, no results."""
    run_dir = tmp_path / "sf"
    shutil.copytree(val_run["tmp"] / "sf", run_dir)
    train_single_frame.main(train_single_frame.parse_args(
        ["--data-root", str(toy_root), "--val-groups", "1", *TRAIN, "--pretrained", "none", "--arch", "resnet18",
         "--out", str(run_dir), "--resume", "--epochs", "2"]))
    later = run(test_single_frame, toy_root, str(run_dir / "checkpoint.pt"), tmp_path / "sf_val", "--subset", "val")
    line = cli_error("combine_results.py", "--single-frame", val_run["sf_test"], "--3d", val_run["3d_test"],
                     "--val-single-frame", later, "--val-3d", val_run["3d_val"], "--out", tmp_path / "c")
    assert line == (f"combine_results.py: {later / 'predictions.h5'} and {val_run['sf_test'] / 'predictions.h5'} were "
                    f"scored with different single_frame checkpoints: the fusion weight must be chosen on the model "
                    f"it is used with")
    assert not (tmp_path / "c").exists()


@pytest.mark.slow
@pytest.mark.parametrize("case", ["missing", "other_classes"])
def test_toy_classes_checked_before_any_result(val_run, tmp_path, case):
    """--toy-classes naming a missing file, or the toy_classes.json of another toy: one line naming the flag,
    printed before any result, and no results.json."""
    path = tmp_path / "toy_classes.json"
    if case == "other_classes":
        path.write_text(json.dumps({"pairs": [["BoxRise", "BoxFall"]]}))
    p = subprocess.run(script_cmd("combine_results.py", "--single-frame", val_run["sf_test"], "--3d", val_run["3d_test"],
                                  "--out", tmp_path / "c", "--toy-classes", path),
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    lines = p.stderr.strip().splitlines()
    assert p.returncode != 0 and "Traceback" not in p.stderr and len(lines) == 1, p.stderr
    assert lines[0].startswith(f"combine_results.py: --toy-classes {path}"), lines
    assert p.stdout == "" and not (tmp_path / "c" / "results.json").exists()
