"""Full-video testing end to end on a tiny toy UCF-101: test_single_frame.py, test_3d.py (windows and
full), a video that fails to decode, resume, wrong checkpoint kinds, combine_results.py and predict.py
on the files those scripts really write, and the load+fuse path on a UCF-101-sized predictions.h5.

Usage: pytest -q tests/test_full_video.py   (checkpoints: conftest.trained_ckpts, resnet18 / resnet10 trained 1 epoch at 32x32)
"""
import json
import os
import shutil
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from scipy import special
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix

import combine_results
import engine
import helperFunctions as hf
import metrics
import scoring
import test_3d
import test_single_frame
import utils
import video_io
from tools import predict

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"

KEYS = ("top1", "top5", "top10", "mean_class_accuracy")


@pytest.fixture(scope="module")
def ckpts(trained_ckpts):
    """The session's 1-epoch checkpoints (conftest.trained_ckpts): {"single_frame": resnet18, "3d": resnet10 with
    one layer4 block}."""
    return trained_ckpts


def run_test(script, root, ckpt, out, *extra):
    script.main(script.parse_args(["--data-root", str(root), "--checkpoint", ckpt, "--out", str(out),
                                   "--workers", "0", *extra]))
    return Path(out)


@pytest.fixture(scope="module")
def runs(toy_root, ckpts, tmp_path_factory):
    """Output folders of the three test runs with the scripts' default settings. Read-only for tests."""
    tmp = tmp_path_factory.mktemp("runs")
    return {"sf": run_test(test_single_frame, toy_root, ckpts["single_frame"], tmp / "sf"),
            "windows": run_test(test_3d, toy_root, ckpts["3d"], tmp / "windows", "--mode", "windows"),
            "full": run_test(test_3d, toy_root, ckpts["3d"], tmp / "full", "--mode", "full")}


def split_test_list(root):
    class_list, _, (paths, labels) = hf.getUCF101(str(root), 1)
    return [str(c) for c in class_list], [str(p) for p in paths], labels


def saved_logits(out, path):
    """(per-video logits (n, C), attrs) of a video's UCF-101-predictions/<Class>/<video>.hdf5."""
    with h5py.File(scoring.video_file(str(out), path), "r") as h:
        return h["predictions"][()], dict(h.attrs)


def video_scores(logits, average):
    """The video's log-probabilities from its per-frame / per-window logits, by hand (scipy): the mean
    of the rows' log-softmax, renormalised ("log_softmax"), or the log of their mean softmax."""
    ls = special.log_softmax(logits.astype(np.float64), axis=1)
    if average == "log_softmax":
        return special.log_softmax(ls.mean(0))
    assert average == "softmax", average
    return np.log(np.exp(ls).mean(0))


def check_outputs(out, root, model, rows_of):
    """Per-video files, predictions.h5, metrics.json and confusion_matrix.npy of a clean test run
    follow design.md and agree with each other; rows_of(path) is the expected number of logit rows."""
    class_list, paths, labels = split_test_list(root)
    with h5py.File(out / "predictions.h5", "r") as h:
        videos, saved_labels, scores = h["videos"].asstr()[()], h["labels"][()], h["scores"][()]
        failed, attrs, saved_classes = h["failed"][()], dict(h.attrs), list(h["class_list"].asstr()[()])
    assert list(videos) == [video_io.video_name(p) for p in paths]  # the split's test-list order
    assert saved_labels.tolist() == labels.tolist() and saved_classes == class_list
    assert scores.shape == (len(paths), len(class_list)) and scores.dtype == np.float32 and not failed.any()
    assert attrs["model"] == model and attrs["level"] == "video"
    for i, p in enumerate(paths):
        logits, file_attrs = saved_logits(out, p)
        assert logits.shape == (rows_of(p), len(class_list)), p
        assert file_attrs["average"] == attrs["average"]
        np.testing.assert_allclose(scores[i], video_scores(logits, attrs["average"]), rtol=1e-5, atol=1e-5)
    # the metrics recomputed independently (scikit-learn) from the saved per-video scores
    preds, c = scores.argmax(1), len(class_list)
    m = json.loads((out / "metrics.json").read_text())
    assert m["level"] == "video" and m["n_videos"] == len(paths) and m["n_failed"] == 0 and m["failed"] == []
    assert m["top1"] == pytest.approx(accuracy_score(labels, preds))
    assert m["mean_class_accuracy"] == pytest.approx(balanced_accuracy_score(labels, preds))
    # 4 classes and no failed video: k >= C ranks every label in the top k, so top-5 and top-10 are 1
    assert c < 5 and m["top5"] == m["top10"] == 1.0
    cm = np.load(out / "confusion_matrix.npy")
    np.testing.assert_allclose(cm, confusion_matrix(labels, preds, labels=range(c), normalize="true"))
    np.testing.assert_allclose(cm.sum(1), 1.0)  # every class has test videos, none failed
    # the diagonal is each class's share of its videos predicted right: its mean is the class accuracy
    assert np.diag(cm).mean() == pytest.approx(m["mean_class_accuracy"])
    assert np.diag(cm) @ np.bincount(labels, minlength=c) == pytest.approx(m["top1"] * len(paths))
    return scores


@pytest.mark.slow
def test_single_frame_outputs(toy_root, runs):
    check_outputs(runs["sf"], toy_root, "single_frame", video_io.count_frames)  # one row per frame


@pytest.mark.slow
def test_3d_windows_outputs(toy_root, runs):
    stride = test_3d.parse_args(["--data-root", "unused"]).stride
    rows = lambda p: len(scoring.window_starts(max(video_io.count_frames(p), 16), 16, stride))
    check_outputs(runs["windows"], toy_root, "3d", rows)
    short = [p for p in split_test_list(toy_root)[1] if video_io.count_frames(p) < 16]
    assert short and all(saved_logits(runs["windows"], p)[0].shape[0] == 1 for p in short)
    assert all(saved_logits(runs["windows"], p)[1]["stride"] == stride for p in short)


@pytest.mark.slow
def test_3d_full_outputs(toy_root, runs):
    check_outputs(runs["full"], toy_root, "3d", lambda p: 1)
    # a short video is looped to 16 frames in both modes, so full mode sees exactly its one window
    short = [p for p in split_test_list(toy_root)[1] if video_io.count_frames(p) < 16]
    for p in short:
        np.testing.assert_allclose(saved_logits(runs["full"], p)[0], saved_logits(runs["windows"], p)[0],
                                   rtol=1e-4, atol=1e-4)


def test_window_starts():
    assert scoring.window_starts(40, 16, 8) == [0, 8, 16, 24]
    assert scoring.window_starts(41, 16, 8) == [0, 8, 16, 24, 25]  # the last frames are always covered
    assert scoring.window_starts(16, 16, 4) == [0]
    assert scoring.window_starts(27, 16, 1) == list(range(12))


@pytest.mark.slow
def test_other_stride_is_not_reused(toy_root, ckpts, runs, tmp_path, capsys):
    out = tmp_path / "windows"
    shutil.copytree(runs["windows"], out)
    default = test_3d.parse_args(["--data-root", "unused"]).stride
    other = 4 if default != 4 else 8
    with pytest.raises(SystemExit, match=f"--stride was {default}, now {other}"):
        run_test(test_3d, toy_root, ckpts["3d"], out, "--mode", "windows", "--stride", str(other))
    run_test(test_3d, toy_root, ckpts["3d"], out, "--mode", "windows", "--stride", str(other), "--overwrite")
    _, paths, _ = split_test_list(toy_root)
    assert f"{len(paths)} test videos of split 1: 0 already scored" in capsys.readouterr().out
    for p in paths:
        n = max(video_io.count_frames(p), 16)
        new, attrs = saved_logits(out, p)
        old = saved_logits(runs["windows"], p)[0]
        new_starts, old_starts = scoring.window_starts(n, 16, other), scoring.window_starts(n, 16, default)
        assert attrs["stride"] == other and len(new) == len(new_starts)
        for j, s in enumerate(old_starts):  # a window starting at the same frame gives the same logits
            if s in new_starts:
                np.testing.assert_allclose(new[new_starts.index(s)], old[j], rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_resume_skips_finished_videos(toy_root, ckpts, runs, tmp_path, capsys):
    out = tmp_path / "sf"
    shutil.copytree(runs["sf"], out)  # copy2 keeps the mtimes
    _, paths, _ = split_test_list(toy_root)
    mtimes = {p: os.path.getmtime(scoring.video_file(str(out), p)) for p in paths}
    run_test(test_single_frame, toy_root, ckpts["single_frame"], out)
    assert f"{len(paths)} already scored in {out}, 0 to go" in capsys.readouterr().out
    assert mtimes == {p: os.path.getmtime(scoring.video_file(str(out), p)) for p in paths}
    with h5py.File(runs["sf"] / "predictions.h5") as a, h5py.File(out / "predictions.h5") as b:
        for k in ("videos", "labels", "scores", "failed", "class_list"):
            np.testing.assert_array_equal(a[k][()], b[k][()])


@pytest.mark.slow
def test_failed_video_is_listed_and_counted_wrong(toy_root, ckpts, runs, tmp_path, capsys):
    root = tmp_path / "toy"
    shutil.copytree(toy_root, root)
    class_list, paths, labels = split_test_list(root)
    bad = 2
    Path(paths[bad]).write_bytes(b"this is not an AVI file" * 100)
    out = run_test(test_single_frame, root, ckpts["single_frame"], tmp_path / "out")
    name = video_io.video_name(paths[bad])
    text = capsys.readouterr().out
    assert "FAILED (counted wrong)" in text and name in text
    m = json.loads((out / "metrics.json").read_text())
    assert m["failed"] == [name] and m["n_failed"] == 1 and m["n_videos"] == len(paths)
    assert not os.path.exists(scoring.video_file(str(out), paths[bad]))

    broken = scoring.load_run(str(out))
    clean = scoring.load_run(str(runs["sf"]))
    assert broken.failed.tolist() == [i == bad for i in range(len(paths))] and np.isnan(broken.scores[bad]).all()
    np.testing.assert_allclose(broken.scores[~broken.failed], clean.scores[~broken.failed], rtol=1e-5, atol=1e-5)
    correct = clean.scores.argmax(1) == clean.labels
    correct[bad] = False
    assert m["top1"] == pytest.approx(correct.sum() / len(paths))  # denominator: the whole test list
    assert m["top10"] == pytest.approx((len(paths) - 1) / len(paths))
    cm = np.load(out / "confusion_matrix.npy")
    c = labels[bad]
    assert cm[c].sum() == pytest.approx(1 - 1 / (labels == c).sum())


@pytest.mark.slow
def test_wrong_checkpoint_kind_fails_clearly(toy_root, ckpts, tmp_path):
    with pytest.raises(SystemExit, match=r"holds a 3d model .*use it with train_3d.py / test_3d.py"):
        run_test(test_single_frame, toy_root, ckpts["3d"], tmp_path / "a")
    with pytest.raises(SystemExit, match=r"holds a single_frame model .*test_single_frame.py"):
        run_test(test_3d, toy_root, ckpts["single_frame"], tmp_path / "b")
    with pytest.raises(SystemExit, match="checkpoint not found"):
        run_test(test_3d, toy_root, str(tmp_path / "missing.pt"), tmp_path / "c")
    assert not any((tmp_path / d).exists() for d in "abc")


@pytest.mark.slow
def test_combine_results_on_real_outputs(runs, tmp_path):
    res = combine_results.main(combine_results.parse_args(
        ["--single-frame", str(runs["sf"]), "--three-d", str(runs["windows"]), "--out", str(tmp_path / "c")]))
    for name, run in (("single_frame", "sf"), ("3d", "windows")):
        m = json.loads((runs[run] / "metrics.json").read_text())
        assert all(res["models"][name][k] == pytest.approx(m[k]) for k in KEYS), name
        np.testing.assert_allclose(np.load(tmp_path / "c" / f"confusion_{name}.npy"),
                                   np.load(runs[run] / "confusion_matrix.npy"))
    # independently: the two predictions.h5 read with h5py, lined up by video name, fused by hand
    sf, td = read_predictions(runs["sf"]), read_predictions(runs["windows"])
    j = [list(td["videos"]).index(v) for v in sf["videos"]]
    labels = sf["labels"]
    assert td["labels"][j].tolist() == labels.tolist()
    fused = 0.5 * special.log_softmax(sf["scores"], 1) + 0.5 * special.log_softmax(td["scores"][j], 1)
    expected = {"single_frame": sf["scores"], "3d": td["scores"][j], "fused": fused}
    for name, scores in expected.items():
        r, preds = res["models"][name], scores.argmax(1)
        assert r["top1"] == pytest.approx(accuracy_score(labels, preds)), name
        assert r["mean_class_accuracy"] == pytest.approx(balanced_accuracy_score(labels, preds)), name
        assert r["top5"] == r["top10"] == 1.0  # 4 classes, none failed: k >= C
        assert [r["per_class_accuracy"][c] for c in range(4)] == pytest.approx(
            [np.mean(preds[labels == c] == c) for c in range(4)]), name
        np.testing.assert_allclose(np.load(tmp_path / "c" / f"confusion_{name}.npy"),
                                   confusion_matrix(labels, preds, labels=range(4), normalize="true"))
    assert json.loads((tmp_path / "c" / "results.json").read_text())["n_videos"] == len(sf["videos"])


def read_predictions(out):
    """predictions.h5 of a test run read with h5py: {"videos", "labels", "scores"}."""
    with h5py.File(Path(out) / "predictions.h5", "r") as h:
        return {"videos": h["videos"].asstr()[()], "labels": h["labels"][()], "scores": h["scores"][()]}


def check_top(top, n_classes):
    probs = [p for _, p in top]
    assert len(top) == min(5, n_classes) and probs == sorted(probs, reverse=True)
    assert all(0 <= p <= 1 for p in probs) and sum(probs) <= 1 + 1e-6


@pytest.mark.slow
def test_predict_matches_saved_predictions(toy_root, ckpts, runs, tmp_path, capsys):
    class_list, paths, _ = split_test_list(toy_root)
    video = paths[2]
    frames = video_io.read_frames(video)
    raw, jpeg = tmp_path / "anywhere" / "clip.hdf5", tmp_path / "anywhere" / "clip_compact.hdf5"
    video_io.write_video(str(raw), frames, 25.0, to="hdf5")
    video_io.write_video(str(jpeg), frames, 25.0, to="jpeg")
    missing, corrupt = str(tmp_path / "no_such_video.avi"), tmp_path / "corrupt.avi"
    corrupt.write_bytes(b"not a video" * 100)
    res = predict.main(predict.parse_args([video, str(raw), missing, str(corrupt), str(jpeg),
                                           "--single-frame", ckpts["single_frame"], "--three-d", ckpts["3d"]]))
    out, err = capsys.readouterr()
    assert f"file not found: {missing}" in err and f"cannot read {corrupt}" in err and len(res) == 3
    assert "fused (weight 0.5 on single-frame, from the default" in out and f"{video} ({len(frames)} frames)" in out
    sf, td = (scoring.load_run(str(runs[k])) for k in ("sf", "windows"))
    i = list(sf.videos).index(video_io.video_name(video))
    j = list(td.videos).index(video_io.video_name(video))
    expected = {"single_frame": sf.scores[i], "3d": td.scores[j],
                "fused": special.log_softmax(0.5 * sf.scores[i] + 0.5 * td.scores[j])}  # both log-softmax
    for path in (video, str(raw), str(jpeg)):
        assert set(res[path]) == set(expected)
        for top in res[path].values():
            check_top(top, len(class_list))
    for path in (video, str(raw)):  # the same frames as the test run: the same probabilities
        for name, scores in expected.items():
            got = dict(res[path][name])  # 4 classes: top-5 lists them all
            np.testing.assert_allclose([got[c] for c in class_list], np.exp(scores), rtol=1e-4, atol=1e-6)
    with pytest.raises(SystemExit, match="no video could be predicted"):
        predict.main(predict.parse_args([missing, "--three-d", ckpts["3d"]]))


@pytest.mark.slow
def test_predict_run_folder_and_wrong_kind(toy_root, ckpts, tmp_path, capsys):
    """No model named: a usage error saying how to name one. --run takes the checkpoints that are there;
    none there, or a checkpoint of the other kind, stops naming the flag."""
    video = split_test_list(toy_root)[1][0]
    with pytest.raises(SystemExit) as e:
        predict.parse_args([video])
    assert e.value.code == 2 and "--run FOLDER" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="holds neither single_frame/checkpoint.pt nor 3d/checkpoint.pt"):
        predict.main(predict.parse_args([video, "--run", str(tmp_path)]))
    os.makedirs(tmp_path / "3d")
    os.symlink(ckpts["3d"], tmp_path / "3d" / "checkpoint.pt")
    assert set(predict.main(predict.parse_args([video, "--run", str(tmp_path)]))[video]) == {"3d"}  # only the one that exists
    with pytest.raises(SystemExit, match="--single-frame: .*holds a 3d model"):
        predict.main(predict.parse_args([video, "--single-frame", ckpts["3d"]]))


@pytest.mark.slow
def test_predict_run_uses_the_weight_its_results_chose(toy_root, ckpts, runs, tmp_path, capsys):
    """--run FOLDER of make demo's layout: fused with the weight combined/results.json chose when it was
    made from these very checkpoints (0.3 here), else 0.5; the fused probabilities recomputed here from
    the test runs' saved scores (scipy)."""
    run_dir = tmp_path / "run"
    for kind in ("single_frame", "3d"):
        os.makedirs(run_dir / kind)
        shutil.copy(ckpts[kind], run_dir / kind / "checkpoint.pt")
    combine_results.main(combine_results.parse_args(
        ["--single-frame", str(runs["sf"]), "--3d", str(runs["windows"]), "--weight", "0.3", "--out", str(run_dir / "combined")]))
    class_list, paths, _ = split_test_list(toy_root)
    video = paths[3]
    sf, td = (scoring.load_run(str(runs[k])) for k in ("sf", "windows"))
    i, j = list(sf.videos).index(video_io.video_name(video)), list(td.videos).index(video_io.video_name(video))
    capsys.readouterr()
    for weight in (0.3, 0.5):
        if weight == 0.5:  # the 3D checkpoint replaced by one of other weights, so results.json is not its:
            # fc's bias raised by 1 for every class, which shifts all logits alike (the same probabilities)
            ckpt = torch.load(ckpts["3d"], weights_only=True)
            ckpt["model"]["fc.bias"] += 1
            engine.save_checkpoint(run_dir / "3d" / "checkpoint.pt",
                                   {**ckpt, "weights_sha256": utils.tensors_sha256(ckpt["model"])})
        res = predict.main(predict.parse_args([video, "--run", str(run_dir)]))
        out = capsys.readouterr().out
        where = (f"from {run_dir / 'combined' / 'results.json'} (fixed)" if weight == 0.3 else
                 f"from the default: {run_dir / 'combined' / 'results.json'} was made with other checkpoints")
        assert f"fused (weight {weight:g} on single-frame, {where})" in out, out
        fused = special.log_softmax(weight * sf.scores[i] + (1 - weight) * td.scores[j])
        got = dict(res[video]["fused"])
        np.testing.assert_allclose([got[c] for c in class_list], np.exp(fused), rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_predict_real_clip(ckpts, capsys):
    clip = SHARED / "videos" / "v_Archery_g01_c01.avi"
    if not clip.is_file():
        pytest.skip(f"real clip {clip} not found")
    res = predict.main(predict.parse_args([str(clip), "--single-frame", ckpts["single_frame"], "--three-d", ckpts["3d"]]))
    assert f"{clip} ({video_io.count_frames(str(clip))} frames)" in capsys.readouterr().out
    assert set(res[str(clip)]) == {"single_frame", "3d", "fused"}
    for top in res[str(clip)].values():
        check_top(top, 4)


def test_load_and_fuse_ucf101_sized_predictions(tmp_path):
    """3,783 videos x 101 classes written by scoring.save_run, reloaded in another order and fused."""
    n, c = 3783, 101
    rng = np.random.default_rng(0)
    class_list = [f"Class{k:03d}" for k in range(c)]
    labels = rng.integers(0, c, n)
    paths = [f"/r/UCF-101/{class_list[l]}/v_{class_list[l]}_g{i // 7:03d}_c{i % 7:02d}.avi" for i, l in enumerate(labels)]
    scores = {m: metrics.log_softmax(rng.normal(0, 3, (n, c))).astype(np.float32) for m in ("a", "b")}
    scores["b"][5] = np.nan
    order = rng.permutation(n)
    for m, idx in (("a", np.arange(n)), ("b", order)):
        s = scores[m][idx]
        scoring.save_run(str(tmp_path / m), [paths[i] for i in idx], labels[idx], s, class_list,
                             metrics.summarize(s, labels[idx], class_list), {}, {"model": m, "split": 1})
    t0 = time.perf_counter()
    a = scoring.load_run(str(tmp_path / "a"))
    b = scoring.align(a, scoring.load_run(str(tmp_path / "b")))
    fused = metrics.fuse(a.scores, b.scores, 0.5)
    print(f"load + align + fuse of {n} videos x {c} classes: {time.perf_counter() - t0:.3f}s")
    assert list(a.videos) == list(b.videos) == [video_io.video_name(p) for p in paths]
    np.testing.assert_array_equal(b.scores[~b.failed], scores["b"][~b.failed])
    assert b.failed.tolist() == [i == 5 for i in range(n)] and np.isnan(fused[5]).all()
    expected = special.log_softmax(0.5 * scores["a"].astype(np.float64) + 0.5 * scores["b"], axis=1)
    keep = np.arange(n) != 5
    np.testing.assert_allclose(fused[keep], expected[keep], atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("script", [test_single_frame, test_3d])
def test_short_videos_batched_together_score_as_each_alone(toy_root, ckpts, tmp_path, monkeypatch, script):
    """The toy's test videos (12-28 frames) are far below a forward pass's 200 frames / 32 windows, so
    the test scripts batch several videos together; each video's saved logits must still be its own,
    the network run on that video alone (its frames decoded, resized and normalised here, windows cut
    by hand)."""
    calls = []
    real = scoring.logits_of
    monkeypatch.setattr(scoring, "logits_of", lambda net, x, *a: calls.append(len(x)) or real(net, x, *a))
    assert not hasattr(scoring, "score_videos")  # the loop lives in each test script now
    kind = "single_frame" if script is test_single_frame else "3d"
    out = run_test(script, toy_root, ckpts[kind], tmp_path / "run")
    _, paths, _ = split_test_list(toy_root)
    rows = []  # each video's frames or windows
    ckpt = engine.load_checkpoint(ckpts[kind], kind)
    net = scoring.model_from_checkpoint(ckpt).model  # the bare ResNet: normalised by hand below
    mean, std = (hf.IMAGENET_MEAN, hf.IMAGENET_STD) if kind == "single_frame" else (hf.KINETICS_MEAN, hf.KINETICS_STD)
    for p in paths:
        frames = torch.from_numpy(hf.apply_augment(video_io.read_frames(p), hf.Augment(), ckpt["size"]))
        if kind == "3d":
            looped = frames[[i % len(frames) for i in range(max(len(frames), 16))]]
            n = len(looped)
            starts = sorted({*range(0, n - 16 + 1, 8), n - 16})
            frames = torch.stack([looped[s:s + 16] for s in starts])
        with torch.inference_mode():
            alone = net(hf.normalize(frames, mean, std)).numpy()
        np.testing.assert_allclose(saved_logits(out, p)[0], alone, rtol=1e-4, atol=1e-4)
        rows.append(len(alone))
    # batched: fewer forward passes than videos, and one of them larger than any video alone
    assert len(calls) < len(paths) and max(calls) > max(rows)
