"""
Video-level classification metrics and late fusion for UCF-101 (pure numpy, no I/O).

Used by test_single_frame.py, test_3d.py, combine_results.py and report/make_report.py so the
metric definitions live in one place. Conventions:
- scores: float `(N, C)` per-video scores (log-probabilities in this repo). A row containing NaN is a
  failed video: it counts as wrong in every metric and stays in every denominator.
- labels: int `(N,)` true class indices; preds: int `(N,)` predicted indices, -1 for failed videos.
- Ties: classes are ranked by a stable argsort of -scores, so among equal scores the lower class index
  ranks first (np.argmax follows the same rule).
"""
import math

import numpy as np

TOP_K = (1, 5, 10)  # the top-k accuracies reported everywhere
TOP_K_KEYS = tuple(f"top{k}" for k in TOP_K)  # their names in metrics.json and results.json


def failed_rows(scores):
    """scores `(N, C)` -> bool `(N,)`, True where the row contains any NaN (failed video).

    Any NaN (not only all-NaN) marks a row failed: a partially NaN row cannot be ranked reliably.
    """
    return np.isnan(np.asarray(scores, dtype=np.float64)).any(axis=1)


def topk_accuracy(scores, labels, ks=TOP_K):
    """scores `(N, C)`, labels `(N,)` -> {k: fraction of videos whose label is among the top k}.

    k larger than C is clamped to C (the dict key stays the requested k). Failed (NaN) rows are wrong
    and remain in the denominator N. Ties follow the stable-argsort rule (lower class index wins),
    i.e. a label's rank = #classes with a higher score + #classes with an equal score and lower index.
    N == 0 gives NaN.
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    n, c = scores.shape
    if labels.shape != (n,):
        raise ValueError(f"labels shape {labels.shape} does not match scores shape {scores.shape}")
    if n == 0:
        return {k: float("nan") for k in ks}
    failed = failed_rows(scores)
    true = scores[np.arange(n), labels][:, None]
    # rank computed directly, O(N*C), identical to the position in argsort(-scores, kind="stable")
    lower_index = np.arange(c)[None, :] < labels[:, None]
    rank = (scores > true).sum(axis=1) + ((scores == true) & lower_index).sum(axis=1)
    return {k: float(np.mean((rank < min(k, c)) & ~failed)) for k in ks}


def predicted_classes(scores):
    """scores `(N, C)` -> int64 `(N,)` argmax (lower index wins ties), -1 for failed (NaN) rows."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    failed = failed_rows(scores)
    preds = np.argmax(np.where(failed[:, None], 0.0, scores), axis=1).astype(np.int64)
    preds[failed] = -1
    return preds


def confusion_counts(labels, preds, num_classes):
    """labels `(N,)`, preds `(N,)` -> int64 `(C, C)` with [true, predicted] counts; preds == -1 ignored."""
    labels = np.asarray(labels, dtype=np.int64)
    preds = np.asarray(preds, dtype=np.int64)
    keep = preds >= 0
    if labels.min(initial=0) < 0 or labels.max(initial=0) >= num_classes or preds.max(initial=0) >= num_classes:
        raise ValueError(f"labels/preds outside [0, {num_classes})")
    flat = labels[keep] * num_classes + preds[keep]
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def row_normalize(counts, row_totals=None):
    """counts `(C, C)` -> float64 `(C, C)`, each row divided by row_totals `(C,)` (default: row sums).

    Pass the number of test videos per class as row_totals so failed videos lower the row sum below 1.
    Rows with a zero total stay 0 (never NaN).
    """
    counts = np.asarray(counts, dtype=np.float64)
    totals = counts.sum(axis=1) if row_totals is None else np.asarray(row_totals, dtype=np.float64)
    safe = np.where(totals > 0, totals, 1.0)
    return np.where(totals[:, None] > 0, counts / safe[:, None], 0.0)


def per_class_accuracy(labels, preds, num_classes):
    """labels `(N,)`, preds `(N,)` -> (acc float64 `(C,)`, counts int64 `(C,)`).

    counts = number of test videos per class (failed included); acc = correct / counts, NaN for classes
    absent from the test set.
    """
    labels = np.asarray(labels, dtype=np.int64)
    preds = np.asarray(preds, dtype=np.int64)
    counts = np.bincount(labels, minlength=num_classes)
    correct = np.bincount(labels[preds == labels], minlength=num_classes)
    acc = np.full(num_classes, np.nan)
    np.divide(correct, counts, out=acc, where=counts > 0)
    return acc, counts


def mean_class_accuracy(acc):
    """acc `(C,)` from per_class_accuracy -> mean over classes present (non-NaN); NaN if none."""
    acc = np.asarray(acc, dtype=np.float64)
    present = ~np.isnan(acc)
    return float(acc[present].mean()) if present.any() else float("nan")


def best_worst_classes(acc, counts, class_list, n=10):
    """acc `(C,)`, counts `(C,)` -> (best, worst): lists of up to n dicts
    {"class", "index", "accuracy", "n_videos"}. Classes absent from the test set are excluded.
    best is sorted by accuracy descending, worst ascending; equal accuracies by class index.
    """
    acc = np.asarray(acc, dtype=np.float64)
    present = np.flatnonzero((np.asarray(counts) > 0) & ~np.isnan(acc))
    # lexsort: last key is primary; index as secondary key makes ties deterministic
    best = present[np.lexsort((present, -acc[present]))][:n]
    worst = present[np.lexsort((present, acc[present]))][:n]

    def rows(idx):
        return [{"class": str(class_list[i]), "index": int(i), "accuracy": float(acc[i]),
                 "n_videos": int(counts[i])} for i in idx]
    return rows(best), rows(worst)


def confusion_order(cm):
    """A class order that puts classes confused with one another side by side, so that a large
    confusion matrix shows its confusions as blocks near the diagonal.

    cm `(C, C)` (counts or row-normalised) -> permutation `(C,)`. Greedy chaining on the symmetric
    off-diagonal confusion s = cm + cm.T: a chain starts at the strongest remaining pair and grows at
    whichever end has the strongest confusion with a class not yet placed; when nothing left is
    confused with its ends, the next chain starts. Unconfused classes keep their index order at the end.
    """
    s = np.nan_to_num(np.asarray(cm, dtype=np.float64))
    s = s + s.T
    np.fill_diagonal(s, 0.0)
    left, order = set(range(len(s))), []
    while left:
        idx = sorted(left)
        sub = s[np.ix_(idx, idx)]
        if sub.max() <= 0:  # nothing confused any more: the rest in index order
            order += idx
            break
        i, j = np.unravel_index(np.argmax(sub), sub.shape)
        chain = [idx[i], idx[j]]
        left -= set(chain)
        while left:
            rest = sorted(left)
            ends = s[[chain[0], chain[-1]]][:, rest]  # (2, remaining)
            end, k = np.unravel_index(np.argmax(ends), ends.shape)
            if ends[end, k] <= 0:
                break
            chain = [rest[k]] + chain if end == 0 else chain + [rest[k]]
            left.discard(rest[k])
        order += chain
    return np.asarray(order, dtype=np.int64)


def most_confused_pairs(norm_cm, counts_cm, class_list, n=10):
    """norm_cm `(C, C)` row-normalised, counts_cm `(C, C)` counts -> up to n dicts
    {"true", "predicted", "true_index", "pred_index", "fraction", "count"} for the largest off-diagonal
    entries of norm_cm (zero entries are never listed). Ties: larger count first, then lower true
    index, then lower predicted index.
    """
    norm_cm = np.asarray(norm_cm, dtype=np.float64)
    counts_cm = np.asarray(counts_cm)
    t, p = np.nonzero(~np.eye(norm_cm.shape[0], dtype=bool) & (norm_cm > 0))
    order = np.lexsort((p, t, -counts_cm[t, p], -norm_cm[t, p]))[:n]
    return [{"true": str(class_list[t[i]]), "predicted": str(class_list[p[i]]),
             "true_index": int(t[i]), "pred_index": int(p[i]),
             "fraction": float(norm_cm[t[i], p[i]]), "count": int(counts_cm[t[i], p[i]])} for i in order]


def class_gains(acc_a, acc_b, class_list, n=10):
    """acc_a, acc_b `(C,)` per-class accuracies of models a and b -> (b_over_a, a_over_b): lists of up
    to n dicts {"class", "index", "acc_a", "acc_b", "gain"} with gain = acc_b - acc_a.

    b_over_a: classes where b beats a, largest gain first; a_over_b: where a beats b, most negative gain
    first. Only strict improvements are listed; NaN (absent) classes are skipped; ties by class index.
    """
    acc_a = np.asarray(acc_a, dtype=np.float64)
    acc_b = np.asarray(acc_b, dtype=np.float64)
    gain = acc_b - acc_a
    valid = np.flatnonzero(~np.isnan(gain))
    up = valid[gain[valid] > 0]
    down = valid[gain[valid] < 0]
    up = up[np.lexsort((up, -gain[up]))][:n]
    down = down[np.lexsort((down, gain[down]))][:n]

    def rows(idx):
        return [{"class": str(class_list[i]), "index": int(i), "acc_a": float(acc_a[i]),
                 "acc_b": float(acc_b[i]), "gain": float(gain[i])} for i in idx]
    return rows(up), rows(down)


def log_softmax(x, axis=-1):
    """Numerically stable log-softmax of float x (any shape) along axis; float64 output.

    NaN propagates (failed rows stay failed); a slice that is entirely -inf gives NaN.
    """
    x = np.asarray(x, dtype=np.float64)
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)  # keeps +-inf/NaN maxima from poisoning the shift
    with np.errstate(divide="ignore", invalid="ignore"):
        return x - m - np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))


def aggregate(logits, average="log_softmax"):
    """Per-frame or per-window logits `(n, C)` (or `(C,)`) of one video -> float64 `(C,)` video
    log-probabilities.

    average="log_softmax": log_softmax of the mean of the rows' log-softmax (the assignment's naive-Bayes
    sum of log-probabilities divided by n, so long videos are not over-confident when fused; same ranking).
    average="softmax": log of the mean of the rows' softmax probabilities. n == 0 or any NaN gives a NaN
    row (failed video).
    """
    ls = log_softmax(np.atleast_2d(np.asarray(logits, dtype=np.float64)))
    n, c = ls.shape
    if n == 0 or np.isnan(ls).any():
        return np.full(c, np.nan)
    if average == "log_softmax":
        return log_softmax(ls.mean(axis=0))
    if average == "softmax":
        # log(mean(exp(ls))) via a shifted logsumexp so tiny probabilities do not underflow to log(0)
        m = ls.max(axis=0)
        return m + np.log(np.exp(ls - m).sum(axis=0)) - np.log(n)
    raise ValueError(f"average must be 'log_softmax' or 'softmax', got {average!r}")


def fuse(scores_a, scores_b, weight=0.5):
    """Late fusion of two `(N, C)` score arrays -> float64 `(N, C)` log-probabilities:
    log_softmax(weight * log_softmax(a) + (1 - weight) * log_softmax(b)), a weighted geometric mean of
    the two models' probabilities. weight is the weight of a, in [0, 1].

    A video that failed (NaN row) in either input is failed (NaN) in the output, whatever the weight:
    the fused model needs both models, so its failure set does not depend on the weight. A weight of
    exactly 0 or 1 drops the unused model's scores so -inf log-probabilities never meet a 0 factor.
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must be in [0, 1], got {weight}")
    a, b = log_softmax(scores_a), log_softmax(scores_b)
    if a.shape != b.shape:
        raise ValueError(f"score shapes differ: {a.shape} vs {b.shape}")
    fused = np.zeros_like(a)
    if weight > 0:
        fused = fused + weight * a
    if weight < 1:
        fused = fused + (1.0 - weight) * b
    fused = log_softmax(fused)
    fused[failed_rows(a) | failed_rows(b)] = np.nan
    return fused


def summarize(scores, labels, class_list):
    """scores `(N, C)`, labels `(N,)`, class_list of C names -> dict of video-level metrics:
    level, n_videos, n_failed, top1, top5, top10, mean_class_accuracy (fractions), predicted `(N,)`
    (classes, -1 failed), per_class {"accuracy" `(C,)` NaN if absent, "n_videos" `(C,)`},
    confusion_counts int `(C, C)` and confusion float `(C, C)` (rows divided by the number of test
    videos of each class, failed included).
    """
    num_classes = len(class_list)
    scores = np.asarray(scores)
    if scores.ndim != 2 or scores.shape[1] != num_classes:
        raise ValueError(f"scores shape {scores.shape} does not match {num_classes} classes")
    preds = predicted_classes(scores)
    topk = topk_accuracy(scores, labels, ks=TOP_K)
    acc, counts = per_class_accuracy(labels, preds, num_classes)
    cm = confusion_counts(labels, preds, num_classes)
    return {
        "level": "video",
        "n_videos": int(len(preds)),
        "n_failed": int((preds < 0).sum()),
        **{f"top{k}": topk[k] for k in TOP_K},
        "mean_class_accuracy": mean_class_accuracy(acc),
        "predicted": preds,
        "per_class": {"accuracy": acc, "n_videos": counts},
        "confusion_counts": cm,
        "confusion": row_normalize(cm, row_totals=counts),
    }



# ----------------------------------------------------------------------------- uncertainty

BOOTSTRAP_RESAMPLES = 10000  # resamples of the test videos behind each interval
BOOTSTRAP_SEED = 0           # fixed: the same predictions always give the same interval
CI_LEVEL = 0.95
_BOOTSTRAP_CHUNK = 500       # resamples drawn at once: bounds memory at 500 x N indices


def correct_top1(scores, labels):
    """scores `(N, C)`, labels `(N,)` -> bool `(N,)`: video-level top-1 right (a failed video is wrong)."""
    return predicted_classes(scores) == np.asarray(labels, dtype=np.int64)


def bootstrap_ci(correct, n_resamples=BOOTSTRAP_RESAMPLES, level=CI_LEVEL, seed=BOOTSTRAP_SEED):
    """Percentile bootstrap interval of an accuracy: correct bool `(N,)` (one entry per video) ->
    (low, high), fractions.

    Each resample draws N videos with replacement (numpy default_rng(seed).integers(0, N, N) per
    resample, in order) and takes their mean; the bounds are the (1 - level) / 2 and (1 + level) / 2
    quantiles of the resampled accuracies (numpy's default linear interpolation). N == 0 gives NaNs.
    """
    correct = np.asarray(correct, dtype=bool)
    n = len(correct)
    if n == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    for start in range(0, n_resamples, _BOOTSTRAP_CHUNK):
        k = min(_BOOTSTRAP_CHUNK, n_resamples - start)
        means[start:start + k] = correct[rng.integers(0, n, (k, n))].mean(axis=1)
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def mcnemar_exact(correct_a, correct_b):
    """Exact McNemar test of two models on the same videos: correct_a, correct_b bool `(N,)` ->
    (a_only, b_only, p_value): the videos only a gets right, only b gets right, and the two-sided
    binomial p-value of so uneven a split of the n = a_only + b_only discordant videos under
    p = 1/2: min(1, 2 * P(X <= min(a_only, b_only))), X ~ Binomial(n, 1/2); 1.0 when n == 0.
    """
    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"correct_a shape {a.shape} does not match correct_b shape {b.shape}")
    a_only, b_only = int((a & ~b).sum()), int((b & ~a).sum())
    n, k = a_only + b_only, min(a_only, b_only)
    # the tail in exact integers, then one division: no underflow even for thousands of videos
    tail = sum(math.comb(n, i) for i in range(k + 1))
    return a_only, b_only, float(min(1.0, 2 * tail / 2 ** n)) if n else 1.0


FUSION_WEIGHTS = tuple(round(w, 2) for w in np.linspace(0.0, 1.0, 11))  # candidates: 0, 0.1, ..., 1


def choose_fusion_weight(scores_a, scores_b, labels, weights=FUSION_WEIGHTS, prefer=0.5):
    """The fusion weight (of a, see `fuse`) with the best video-level top-1 on held-out videos:
    scores_a, scores_b `(N, C)`, labels `(N,)` -> (weight, rows), rows one {"weight", "top1"} per
    candidate. Ties go to the weight nearest `prefer` (the fixed default), then to the smaller one.
    """
    rows = [{"weight": float(w), "top1": topk_accuracy(fuse(scores_a, scores_b, float(w)), labels, (1,))[1]}
            for w in weights]
    best = max(rows, key=lambda r: (r["top1"], -abs(r["weight"] - prefer), -r["weight"]))
    return best["weight"], rows
