"""End-to-end check of combine_results.py on tiny fake predictions.h5 files (the report on its output:
test_report.py)."""
import json
import os

import h5py
import numpy as np
import pytest
from scipy import special
from sklearn.metrics import confusion_matrix, recall_score, top_k_accuracy_score

import combine_results
import metrics
import scoring

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CLASSES = ["Archery", "Biking", "Diving", "Fencing", "Rowing", "YoYo"]  # YoYo has no test video
MODELS = ("single_frame", "3d", "fused")


def write_predictions(path, model, videos, labels, scores, class_list=CLASSES):
    failed = np.isnan(scores).any(axis=1)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("videos", data=np.asarray(videos, dtype=object), dtype=h5py.string_dtype())
        f.create_dataset("labels", data=np.asarray(labels, dtype=np.int64))
        f.create_dataset("scores", data=scores.astype(np.float32))
        f.create_dataset("failed", data=failed)
        f.create_dataset("class_list", data=np.asarray(class_list, dtype=object), dtype=h5py.string_dtype())
        # what the test scripts record: the model, the checkpoint's digest and the test settings
        f.attrs.update({"model": model, "checkpoint_sha256": f"{model}-weights", "split": 1, "subset": "test",
                        "val_groups": 0, "crops": "center", "flip": False, "level": "video"})


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    """30 videos of 5 present classes; the 3D file is in a shuffled order and has one failed video."""
    tmp = tmp_path_factory.mktemp("combine")
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(5), [4, 8, 6, 7, 5])
    videos = np.array([f"v_{CLASSES[l]}_g{i:02d}_c01" for i, l in enumerate(labels)])
    out = {}
    for model, boost in (("single_frame", 1.5), ("3d", 2.0)):
        logits = rng.normal(0, 1, (30, 6))
        logits[np.arange(30), labels] += boost
        logits[np.arange(30), (labels + 1) % 5] += rng.uniform(0, 2, 30)  # something to be confused with
        out[model] = metrics.log_softmax(logits).astype(np.float32)
    out["3d"][7] = np.nan
    order = rng.permutation(30)
    assert (order != np.arange(30)).any()
    sf_dir, td_path = tmp / "sf", tmp / "td" / "predictions.h5"
    write_predictions(str(sf_dir / "predictions.h5"), "single_frame", videos, labels, out["single_frame"])
    write_predictions(str(td_path), "3d", videos[order], labels[order], out["3d"][order])
    args = combine_results.parse_args(["--single-frame", str(sf_dir), "--three-d", str(td_path),
                                       "--weight", "0.4", "--sweep", "--out", str(tmp / "combined")])
    combine_results.main(args)
    return {"tmp": tmp, "videos": videos, "labels": labels, "order": order, "args": args,
            "scores": {"single_frame": out["single_frame"], "3d": out["3d"],
                       "fused": fused_by_hand(out["single_frame"], out["3d"], 0.4)}}


def fused_by_hand(sf, td, w):
    """The weighted geometric mean of the two models' probabilities, in log space (scipy); NaN rows stay NaN."""
    return special.log_softmax(w * special.log_softmax(sf, 1) + (1 - w) * special.log_softmax(td, 1), 1)


def top_k_by_hand(scores, labels, k):
    """Top-k accuracy over all videos, a failed (NaN) video counted wrong: scikit-learn's on the rest."""
    ok = ~np.isnan(scores).any(1)
    if k >= scores.shape[1]:  # every label is in the top k of a scored video
        return ok.mean()
    return top_k_accuracy_score(labels[ok], scores[ok], k=k, labels=range(scores.shape[1])) * ok.mean()


def preds_by_hand(scores):
    """argmax, -1 for a failed (NaN) video."""
    return np.where(np.isnan(scores).any(1), -1, np.nan_to_num(scores, nan=0).argmax(1))


def test_load_predictions(fake):
    p = scoring.load_run(str(fake["tmp"] / "td" / "predictions.h5"))
    assert list(p.videos) == list(fake["videos"][fake["order"]])
    assert list(p.class_list) == CLASSES and p.attrs["model"] == "3d" and p.attrs["level"] == "video"
    assert p.scores.shape == (30, 6) and p.failed.sum() == 1 and p.labels.dtype == np.int64


def test_results_json_matches_direct_metrics(fake):
    with open(fake["tmp"] / "combined" / "results.json") as f:
        results = json.load(f)
    assert results["level"] == "video" and results["n_videos"] == 30 and results["class_list"] == CLASSES
    present = np.arange(5)  # YoYo (class 5) has no test video
    for name in MODELS:
        r, scores = results["models"][name], fake["scores"][name]
        # k < C (6 classes): top-5 depends on where each label ranks; k = 10 >= C counts every
        # scored video, so top-10 is the share of videos that did not fail
        assert r["top1"] == pytest.approx(top_k_by_hand(scores, fake["labels"], 1)), name
        assert r["top5"] == pytest.approx(top_k_by_hand(scores, fake["labels"], 5)), name
        assert r["top10"] == pytest.approx(np.mean(~np.isnan(scores).any(1))), name
        assert r["top1"] < r["top5"], name  # the fakes' labels are often 2nd: k is honoured
        preds = preds_by_hand(scores)
        recall = recall_score(fake["labels"], preds, labels=present, average=None, zero_division=0)
        assert r["per_class_accuracy"][:5] == pytest.approx(recall.tolist()), name
        assert r["mean_class_accuracy"] == pytest.approx(recall.mean()), name
        assert r["per_class_accuracy"][5] is None and r["per_class_n_videos"] == [4, 8, 6, 7, 5, 0]
        assert r["n_videos"] == 30 and len(r["best"]) == len(r["worst"]) == 5  # absent class excluded
        assert [b["class"] for b in r["best"]] == [CLASSES[i] for i in sorted(present, key=lambda i: (-recall[i], i))]
    assert results["models"]["3d"]["failed"] == [str(fake["videos"][7])]
    assert results["models"]["fused"]["n_failed"] == 1
    assert len(results["sweep"]["rows"]) == 11 and "optimistic" in results["sweep"]["note"]
    for row in results["sweep"]["rows"]:  # every weight's fusion, recomputed from the saved scores
        fused = fused_by_hand(fake["scores"]["single_frame"], fake["scores"]["3d"], row["weight"])
        assert row["top1"] == pytest.approx(top_k_by_hand(fused, fake["labels"], 1)), row
        assert row["top5"] == pytest.approx(top_k_by_hand(fused, fake["labels"], 5)), row
    # per-class gains of 3D over single-frame, by hand: strict gains only, largest first, ties by index
    acc = {m: np.array(results["models"][m]["per_class_accuracy"][:5]) for m in ("single_frame", "3d")}
    gain = acc["3d"] - acc["single_frame"]
    up = sorted((i for i in present if gain[i] > 0), key=lambda i: (-gain[i], i))
    down = sorted((i for i in present if gain[i] < 0), key=lambda i: (gain[i], i))
    for key, idx in (("3d_over_single_frame", up), ("single_frame_over_3d", down)):
        got = results["gains"][key]
        assert [g["class"] for g in got] == [CLASSES[i] for i in idx], key
        assert [g["gain"] for g in got] == pytest.approx([gain[i] for i in idx]), key
        assert [g["acc_a"] for g in got] == pytest.approx([acc["single_frame"][i] for i in idx]), key
        assert [g["acc_b"] for g in got] == pytest.approx([acc["3d"][i] for i in idx]), key
    assert up or down  # the comparison had something to compare


def test_confusion_matrices_agree_with_predictions(fake):
    labels = fake["labels"]
    for name in MODELS:
        cm = np.load(fake["tmp"] / "combined" / f"confusion_{name}.npy")
        scores = fake["scores"][name]
        ok = ~np.isnan(scores).any(1)  # a failed video is in its class's row total, in no cell
        counts = confusion_matrix(labels[ok], scores[ok].argmax(1), labels=range(6))
        totals = np.bincount(labels, minlength=6)
        np.testing.assert_allclose(cm, counts / np.maximum(totals, 1)[:, None])
        assert np.diag(cm)[:5] == pytest.approx(recall_score(labels, preds_by_hand(scores), labels=range(5),
                                                             average=None, zero_division=0))
    # the failed 3D video belongs to class 1 (8 videos): its row sums to 7/8, the absent class row to 0
    cm = np.load(fake["tmp"] / "combined" / "confusion_3d.npy")
    np.testing.assert_allclose(cm.sum(axis=1), [1, 7 / 8, 1, 1, 1, 0])


def test_mismatched_inputs_give_clear_errors(fake, tmp_path):
    sf = str(fake["tmp"] / "sf" / "predictions.h5")
    scores, videos, labels = fake["scores"]["3d"], fake["videos"], fake["labels"]
    cases = {"missing.h5": (videos[1:], labels[1:], scores[1:], CLASSES, "video sets differ"),
             "classes.h5": (videos, labels, scores, CLASSES[::-1], "class lists differ"),
             "labels.h5": (videos, (labels + 1) % 5, scores, CLASSES, "labels differ")}
    for fname, (v, l, s, c, message) in cases.items():
        bad = str(tmp_path / fname)
        write_predictions(bad, "3d", v, l, s, class_list=c)
        args = combine_results.parse_args(["--single-frame", sf, "--three-d", bad, "--out", str(tmp_path / "o")])
        with pytest.raises(ValueError, match=message) as err:
            combine_results.main(args)
        assert sf in str(err.value) and bad in str(err.value)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        scoring.load_run(str(tmp_path / "nowhere"))
