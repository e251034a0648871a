"""Hand-computed checks of metrics.py (video-level metrics and late fusion)."""

import numpy as np
import pytest

import metrics

NAN = np.nan
# 4 videos, 3 classes: a plain miss, a tie lost to the lower index, a tie won, a failed video
SCORES = np.array([[0.1, 0.5, 0.4],
                   [0.3, 0.3, 0.1],
                   [0.3, 0.3, 0.1],
                   [NAN, NAN, NAN]])
LABELS = np.array([2, 1, 0, 0])


def test_topk_ties_clamp_and_failed_rows():
    acc = metrics.topk_accuracy(SCORES, LABELS, ks=(1, 2, 3, 10))
    # top-1: only video 2 right; top-2: videos 0,1,2; k >= C: every non-failed video; failed stays in N=4
    assert acc == {1: 0.25, 2: 0.75, 3: 0.75, 10: 0.75}


def test_topk_matches_stable_argsort_reference():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, (200, 7)).astype(float)  # many ties
    labels = rng.integers(0, 7, 200)
    order = np.argsort(-scores, axis=1, kind="stable")
    for k in (1, 3, 5, 7, 9):
        expected = np.mean([labels[i] in order[i, :k] for i in range(200)])
        assert metrics.topk_accuracy(scores, labels, ks=(k,))[k] == pytest.approx(expected)


def test_partial_nan_row_is_failed_and_empty_input():
    scores = np.array([[NAN, 5.0, 0.0]])
    assert metrics.topk_accuracy(scores, [1], ks=(1,))[1] == 0.0
    assert metrics.predicted_classes(scores).tolist() == [-1]
    assert np.isnan(metrics.topk_accuracy(np.zeros((0, 3)), np.zeros(0, int), ks=(1,))[1])


def test_predictions_argmax_lower_index_wins_and_failed():
    assert metrics.predicted_classes(SCORES).tolist() == [1, 0, 0, -1]


def test_confusion_counts_ignores_failed():
    cm = metrics.confusion_counts(LABELS, metrics.predicted_classes(SCORES), 3)
    assert cm.tolist() == [[1, 0, 0], [1, 0, 0], [0, 1, 0]]
    assert cm.dtype.kind == "i"
    with pytest.raises(ValueError):
        metrics.confusion_counts([0, 3], [0, 0], 3)


def test_row_normalize_default_totals_and_empty_rows():
    counts = np.array([[2, 2, 0], [0, 0, 0], [1, 0, 3]])
    out = metrics.row_normalize(counts)
    np.testing.assert_allclose(out, [[0.5, 0.5, 0], [0, 0, 0], [0.25, 0, 0.75]])
    assert not np.isnan(out).any()


def test_row_normalize_class_totals_include_failed():
    counts = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0]])
    out = metrics.row_normalize(counts, row_totals=[2, 1, 0])  # class 0 had a failed video; class 2 absent
    np.testing.assert_allclose(out, [[0.5, 0, 0], [1, 0, 0], [0, 0, 0]])


def test_per_class_accuracy_absent_class_and_mean():
    acc, counts = metrics.per_class_accuracy([0, 0, 1, 3], [0, -1, 2, 3], 4)
    assert counts.tolist() == [2, 1, 0, 1]
    np.testing.assert_allclose(acc, [0.5, 0.0, NAN, 1.0])
    assert metrics.mean_class_accuracy(acc) == pytest.approx(0.5)  # (0.5 + 0 + 1) / 3, class 2 ignored
    assert np.isnan(metrics.mean_class_accuracy([NAN, NAN]))


def test_best_worst_excludes_absent_and_breaks_ties_by_index():
    acc = np.array([0.5, 0.0, NAN, 1.0, 0.5])
    best, worst = metrics.best_worst_classes(acc, [2, 1, 0, 1, 2], list("abcde"), n=3)
    assert [x["class"] for x in best] == ["d", "a", "e"]
    assert [x["class"] for x in worst] == ["b", "a", "e"]
    assert best[0] == {"class": "d", "index": 3, "accuracy": 1.0, "n_videos": 1}
    best, worst = metrics.best_worst_classes(acc, [2, 1, 0, 1, 2], list("abcde"), n=10)
    assert len(best) == len(worst) == 4


def test_most_confused_ordering():
    counts = np.array([[5, 2, 2], [0, 3, 1], [4, 0, 0]])
    norm = metrics.row_normalize(counts)  # rows / 9, 4, 4
    pairs = metrics.most_confused_pairs(norm, counts, ["x", "y", "z"], n=10)
    # (z->x) 1.0; (y->z) .25; (x->y) and (x->z) tie at 2/9 with equal counts -> lower predicted index first;
    # zero entries never listed, diagonal never listed
    assert [(p["true"], p["predicted"]) for p in pairs] == [("z", "x"), ("y", "z"), ("x", "y"), ("x", "z")]
    assert pairs[0]["count"] == 4 and pairs[0]["fraction"] == pytest.approx(1.0)
    assert pairs[2]["fraction"] == pytest.approx(2 / 9)
    assert len(metrics.most_confused_pairs(norm, counts, ["x", "y", "z"], n=2)) == 2


def test_most_confused_tie_on_fraction_prefers_larger_count():
    norm = np.array([[0, 0.5], [0.5, 0]])
    counts = np.array([[0, 1], [3, 0]])
    pairs = metrics.most_confused_pairs(norm, counts, ["p", "q"])
    assert [(p["true_index"], p["pred_index"]) for p in pairs] == [(1, 0), (0, 1)]


def test_class_gains():
    a = [0.5, 0.8, NAN, 0.2, 0.6]
    b = [0.9, 0.8, 1.0, 0.0, 1.0]
    up, down = metrics.class_gains(a, b, list("abcde"))
    assert [x["class"] for x in up] == ["a", "e"]  # equal +0.4 gains: lower index first
    assert up[0]["gain"] == pytest.approx(0.4) and up[0]["acc_a"] == 0.5 and up[0]["acc_b"] == 0.9
    assert [x["class"] for x in down] == ["d"]  # zero gain (b) and absent (c) not listed
    assert down[0]["gain"] == pytest.approx(-0.2)


def test_log_softmax_stable():
    out = metrics.log_softmax(np.array([[1000.0, 1000.0], [0.0, -np.inf], [NAN, 1.0]]))
    np.testing.assert_allclose(out[0], [-np.log(2), -np.log(2)])
    assert out[1].tolist() == [0.0, -np.inf]
    assert np.isnan(out[2]).all()
    x = np.random.default_rng(1).normal(size=(3, 5))
    np.testing.assert_allclose(metrics.log_softmax(x), x - np.log(np.exp(x).sum(-1, keepdims=True)))
    np.testing.assert_allclose(np.exp(metrics.log_softmax(x, axis=0)).sum(0), 1.0)


def test_aggregate():
    # two frames with probabilities (.2,.8) and (.5,.5)
    lg = np.log([[0.2, 0.8], [0.5, 0.5]]) + 3.0  # logits: shift is irrelevant
    # log_softmax mode: geometric mean sqrt(.1) : sqrt(.4) = 1 : 2
    np.testing.assert_allclose(np.exp(metrics.aggregate(lg)), [1 / 3, 2 / 3])
    # softmax mode: arithmetic mean (.35, .65)
    np.testing.assert_allclose(np.exp(metrics.aggregate(lg, "softmax")), [0.35, 0.65])
    # one row (3D full video) and a 1-D input are the row's log-softmax in both modes
    for mode in ("log_softmax", "softmax"):
        np.testing.assert_allclose(metrics.aggregate(lg[:1], mode), np.log([0.2, 0.8]))
        np.testing.assert_allclose(metrics.aggregate(lg[0], mode), np.log([0.2, 0.8]))
    # large logits stay finite
    assert np.isfinite(metrics.aggregate(np.array([[1e4, 0.0], [0.0, 1e4]]), "softmax")).all()
    assert np.isnan(metrics.aggregate(np.zeros((0, 3)))).all()
    assert np.isnan(metrics.aggregate(np.array([[NAN, 1.0]]))).all()
    with pytest.raises(ValueError):
        metrics.aggregate(lg, "mean")


def test_fuse_math():
    a = np.log([[0.2, 0.8]])
    b = np.log([[0.5, 0.5]])
    # weighted geometric mean: sqrt(.2*.5) : sqrt(.8*.5) = 1 : 2
    np.testing.assert_allclose(np.exp(metrics.fuse(a, b, 0.5)), [[1 / 3, 2 / 3]])
    np.testing.assert_allclose(metrics.fuse(a, b, 1.0), a)
    np.testing.assert_allclose(metrics.fuse(a, b, 0.0), b)
    # raw logits are accepted: each input is log-softmaxed first, so shifts do not matter
    np.testing.assert_allclose(metrics.fuse(a + 7.0, b - 3.0, 0.3), metrics.fuse(a, b, 0.3))
    # -inf log-probability of an unused model must not become NaN via 0 * -inf
    assert not np.isnan(metrics.fuse(np.array([[0.0, -np.inf]]), b, 0.0)).any()
    with pytest.raises(ValueError):
        metrics.fuse(a, b, 1.5)


def test_fuse_failed_in_either_is_failed():
    a = np.array([[0.0, 1.0], [NAN, NAN], [1.0, 0.0]])
    b = np.array([[0.0, 1.0], [0.0, 1.0], [NAN, NAN]])
    for w in (0.0, 0.5, 1.0):
        out = metrics.fuse(a, b, w)
        assert metrics.failed_rows(out).tolist() == [False, True, True]


def test_summarize():
    s = metrics.summarize(SCORES, LABELS, ["a", "b", "c"])
    assert (s["n_videos"], s["n_failed"], s["level"]) == (4, 1, "video")
    assert (s["top1"], s["top5"], s["top10"]) == (0.25, 0.75, 0.75)
    # class a: 2 videos (one failed), one right -> 0.5; b: 0/1; c: 0/1
    np.testing.assert_allclose(s["per_class"]["accuracy"], [0.5, 0.0, 0.0])
    assert s["mean_class_accuracy"] == pytest.approx(1 / 6)
    np.testing.assert_allclose(s["confusion"], [[0.5, 0, 0], [1, 0, 0], [0, 1, 0]])
    assert s["confusion_counts"].tolist() == [[1, 0, 0], [1, 0, 0], [0, 1, 0]]
    with pytest.raises(ValueError):
        metrics.summarize(SCORES, LABELS, ["a", "b"])
