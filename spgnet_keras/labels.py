"""The one check of label values: in `[0, num_classes)` or the ignore label.

In the graph (`check_label_range`: the losses, the streaming metric, the `tf.data`
pipeline) and on NumPy arrays (`check_label_values`: the dataset check, evaluation,
the NumPy confusion matrix). Importing this module does not import TensorFlow (only
`check_label_range` needs it), so `spgnet_keras.scoring` runs without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # only check_label_range needs TensorFlow, and imports it itself
    import tensorflow as tf


def out_of_range_values(values, num_classes: int, ignore_index: int | None) -> np.ndarray:
    """The distinct values of `values` outside `[0, num_classes)`, `ignore_index` excepted (sorted)."""
    values = np.asarray(values)
    bad = (values < 0) | (values >= num_classes)
    if ignore_index is not None:
        bad &= values != ignore_index
    return np.unique(values[bad])


def check_label_values(values, num_classes: int, ignore_index: int | None, who: str,
                       what: str = "label", error: type[Exception] = ValueError) -> None:
    """Raises `error` naming `who` and the offending values when a value of the NumPy array
    `values` lies outside `[0, num_classes)` and is not `ignore_index`."""
    bad = out_of_range_values(values, num_classes, ignore_index)
    if bad.size:
        allowed = "" if ignore_index is None else f" or equal the ignore label {ignore_index}"
        shown = ", ".join(str(v) for v in bad[:10].tolist()) + (", ..." if bad.size > 10 else "")
        raise error(f"{who}: {what} values must lie in [0, {num_classes}){allowed}; found [{shown}]. "
                    "Check the dataset's label mapping and num_classes.")


def check_label_range(
    labels: tf.Tensor, num_classes, ignore_index: int | None, who
) -> tuple[tf.Tensor, tf.Tensor]:
    """Asserts that labels lie in `[0, num_classes)` or equal `ignore_index`.

    Args:
        labels: int32 label tensor of any shape.
        num_classes: Python int or scalar int32 tensor.
        ignore_index: Label value that marks pixels to skip, or None to
            require every value to be in range.
        who: Name used in the error message: a string, or a scalar string tensor
            (e.g. `tf.strings.join(["Mask ", path])` in the `tf.data` pipeline).

    Returns:
        `(in_range, bad_count)`: a boolean mask of non-ignored, in-range
        labels, and the number of offending labels (int32 scalar). The
        assertion raises `tf.errors.InvalidArgumentError` (naming the
        allowed range and the offending minimum/maximum) in eager mode and in
        `tf.function`; under XLA, where asserts are compiled away, callers
        should turn `bad_count > 0` into a NaN result.
    """
    import tensorflow as tf

    if ignore_index is None:
        not_ignored = tf.ones_like(labels, dtype=tf.bool)
        allowed = "."
    else:
        not_ignored = tf.not_equal(labels, ignore_index)
        allowed = f" or equal ignore_index={ignore_index}."
    in_bounds = tf.logical_and(labels >= 0, labels < num_classes)
    bad = tf.logical_and(not_ignored, tf.logical_not(in_bounds))
    bad_count = tf.reduce_sum(tf.cast(bad, tf.int32))
    bad_min = tf.reduce_min(tf.where(bad, labels, labels.dtype.max))
    bad_max = tf.reduce_max(tf.where(bad, labels, labels.dtype.min))
    assert_op = tf.debugging.Assert(
        tf.equal(bad_count, 0),
        [
            _message_start(who, ": label values must lie in [0, num_classes) = [0,"),
            num_classes,
            f"){allowed} Found",
            bad_count,
            "offending labels with values in [",
            bad_min,
            ",",
            bad_max,
            "]. Check the dataset's label mapping and num_classes.",
        ],
        summarize=16,
    )
    with tf.control_dependencies([assert_op] if assert_op is not None else []):
        in_range = tf.logical_and(not_ignored, in_bounds)
        bad_count = tf.identity(bad_count)
    return in_range, bad_count


def _message_start(who, text: str):
    """`who + text` for a Python string or a scalar string tensor."""
    import tensorflow as tf

    return who + text if isinstance(who, str) else tf.strings.join([who, text])
