"""Online hard example mining (OHEM) for `spgnet_keras.losses.SegmentationCrossEntropy`.

Per image selection of the hard pixels of `(B, N)` cross-entropy scores (Table 8 of the
SPGNet paper): by a probability threshold with a minimum count (`threshold_mask`), or the
hardest fraction (`top_fraction_mask`). Pixels tied with the last one kept are kept too.
Written in `keras.ops`: the same selection on every backend.
"""

import math

from keras import ops

from spgnet_keras.errors import InvalidInputError

__all__ = ["ohem_mask", "threshold_mask", "top_fraction_mask", "validate_ohem"]


def ohem_mask(ce, candidates, threshold=None, min_kept=0, top_k=None):
    """Boolean `(B, H, W)` mask of the hard pixels kept by OHEM.

    Args:
        ce: tensor. Per-pixel cross-entropy `(B, H, W)` (the hardness score).
        candidates: tensor. Boolean mask of the pixels eligible for selection.
        threshold: float. Probability threshold of threshold OHEM (with `min_kept`).
        min_kept: int. Minimum number of hardest pixels kept per image with `threshold`.
        top_k: float. Fraction of the hardest valid pixels kept per image (instead of
            `threshold`).

    Returns:
        A boolean mask, a subset of `candidates`.
    """
    shape = ops.shape(ce)
    flat_ce = ops.reshape(ce, (shape[0], -1))
    flat_cand = ops.reshape(candidates, (shape[0], -1))
    scores = ops.where(flat_cand, flat_ce, ops.cast(-math.inf, flat_ce.dtype))
    if top_k is not None:
        keep = top_fraction_mask(scores, flat_cand, top_k)
    else:
        keep = threshold_mask(scores, flat_cand, threshold, min_kept)
    return ops.reshape(keep, shape)


def _minimum(a, b):
    """`min(a, b)` of ints or scalar int tensors (a Python int when both are)."""
    if isinstance(a, int) and isinstance(b, int):
        return min(a, b)
    return ops.minimum(a, b)


def _kth_largest(scores, k_static, k_per_row):
    """Per-row k-th largest score, for a per-row `k` not above `k_static`.

    Args:
        scores: `(B, N)` float scores (`-inf` for non-candidates).
        k_static: Int upper bound on `k_per_row`, >= 1 (a scalar tensor only on
            TensorFlow, when the image size is unknown while tracing).
        k_per_row: `(B,)` int32 values in `[1, k_static]`.

    Returns:
        `(B, 1)` float32 thresholds.
    """
    top, _ = ops.top_k(scores, k=k_static, sorted=True)
    return ops.take_along_axis(top, ops.cast(k_per_row - 1, "int32")[:, None], axis=1)


def threshold_mask(scores, candidates, threshold: float, min_kept: int):
    """Threshold OHEM on `(B, N)` scores; see SegmentationCrossEntropy."""
    ce_threshold = -math.log(threshold)
    keep = ops.logical_and(candidates, scores > ce_threshold)
    if min_kept > 0:
        k = _minimum(int(min_kept), ops.shape(scores)[1])
        kth = _kth_largest(scores, k, ops.zeros_like(scores[:, 0], "int32") + k)
        # kth is -inf when the image has fewer than k candidates: keep them all.
        keep = ops.logical_or(keep, ops.logical_and(candidates, scores >= kth))
    return keep


def top_fraction_mask(scores, candidates, fraction: float):
    """Top-k-fraction OHEM on `(B, N)` scores; see SegmentationCrossEntropy."""
    n = ops.shape(scores)[1]
    n_valid = ops.sum(ops.cast(candidates, "int32"), axis=1)
    k_rows = ops.cast(ops.ceil(fraction * ops.cast(n_valid, "float32")), "int32")
    k_rows = ops.minimum(k_rows, n_valid)
    if isinstance(n, int):
        k_max = min(max(math.ceil(fraction * n), 1), n)
    else:  # TensorFlow, image size unknown while tracing
        k_max = ops.clip(ops.cast(ops.ceil(fraction * ops.cast(n, "float32")), "int32"), 1, n)
    kth = _kth_largest(scores, k_max, ops.clip(k_rows, 1, k_max))
    has_any = (k_rows > 0)[:, None]
    return ops.logical_and(ops.logical_and(candidates, scores >= kth), has_any)


def validate_ohem(threshold, min_kept, top_k) -> None:
    """`InvalidInputError` for inconsistent or out-of-range OHEM arguments."""
    if threshold is not None and top_k is not None:
        raise InvalidInputError("Use either ohem_threshold or ohem_top_k, not both.")
    if threshold is not None and not 0.0 < float(threshold) <= 1.0:
        raise InvalidInputError(f"ohem_threshold must be in (0, 1], got {threshold}.")
    if top_k is not None and not 0.0 < float(top_k) <= 1.0:
        raise InvalidInputError(f"ohem_top_k must be a fraction in (0, 1], got {top_k}.")
    if int(min_kept) < 0:
        raise InvalidInputError(f"ohem_min_kept must be >= 0, got {min_kept}.")
    if int(min_kept) > 0 and threshold is None:
        raise InvalidInputError("ohem_min_kept requires ohem_threshold.")
