"""The one check of label values: in `[0, num_classes)` or the ignore label.

On tensors (`check_label_range`: the losses and the streaming metric on any Keras
backend, the `tf.data` pipeline) and on NumPy arrays (`check_label_values`: the dataset
check, evaluation, the NumPy confusion matrix). Importing this module does not import
TensorFlow (only `check_label_range` on a TensorFlow tensor needs it), so
`spgnet_keras.scoring` and the JAX backend run without it.
"""

from __future__ import annotations

import functools

import numpy as np

from spgnet_keras.backends import is_jax_tracer, is_tensorflow_tensor
from spgnet_keras.errors import InvalidInputError


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


def check_label_range(labels, num_classes, ignore_index: int | None, who):
    """Asserts that labels lie in `[0, num_classes)` or equal `ignore_index`.

    Args:
        labels: int32 label tensor of any shape: a TensorFlow tensor (the `tf.data`
            pipeline, any backend) or a tensor of Keras' backend.
        num_classes: Python int or scalar int32 tensor.
        ignore_index: Label value that marks pixels to skip, or None to
            require every value to be in range.
        who: Name used in the error message: a string, or (TensorFlow tensors only) a
            scalar string tensor (e.g. `tf.strings.join(["Mask ", path])` in the
            `tf.data` pipeline).

    Returns:
        `(in_range, bad_count)`: a boolean mask of non-ignored, in-range labels, and
        the number of offending labels (int32 scalar). On a TensorFlow tensor the
        assertion raises `tf.errors.InvalidArgumentError` (naming the allowed range
        and the offending minimum/maximum) in eager mode and in `tf.function`; under
        XLA, where asserts are compiled away, callers should turn `bad_count > 0`
        into a NaN result. On other backends an eager call raises `InvalidInputError`
        with the same message; under `jax.jit` a host callback raises it when the
        step runs (JAX reports a `JaxRuntimeError` whose text contains it).
    """
    if is_tensorflow_tensor(labels):
        return _check_tensorflow_labels(labels, num_classes, ignore_index, who)
    from keras import ops

    in_range, bad = _label_masks(ops, labels, num_classes, ignore_index)
    bad_count = ops.sum(ops.cast(bad, "int32"))
    bad_min = ops.min(ops.where(bad, labels, np.iinfo(np.int32).max))
    bad_max = ops.max(ops.where(bad, labels, np.iinfo(np.int32).min))
    raise_bad = functools.partial(_raise_for_bad_labels, who, num_classes, ignore_index)
    if is_jax_tracer(bad_count):
        import jax

        jax.debug.callback(raise_bad, bad_count, bad_min, bad_max)
    else:
        raise_bad(bad_count, bad_min, bad_max)
    return in_range, bad_count


def _label_masks(ops_module, labels, num_classes, ignore_index):
    """`(in_range, bad)` masks, with `ops_module` TensorFlow or `keras.ops` (same names)."""
    in_bounds = ops_module.logical_and(labels >= 0, labels < num_classes)
    out_of_bounds = ops_module.logical_not(in_bounds)
    if ignore_index is None:
        return in_bounds, out_of_bounds
    not_ignored = ops_module.not_equal(labels, ignore_index)
    return ops_module.logical_and(not_ignored, in_bounds), ops_module.logical_and(not_ignored, out_of_bounds)


def _allowed_text(ignore_index) -> str:
    return "." if ignore_index is None else f" or equal ignore_index={ignore_index}."


def _raise_for_bad_labels(who, num_classes, ignore_index, bad_count, bad_min, bad_max) -> None:
    """`InvalidInputError` with `check_label_range`'s message when `bad_count > 0`."""
    if int(bad_count) > 0:
        raise InvalidInputError(
            f"{who}: label values must lie in [0, num_classes) = [0, {int(num_classes)}){_allowed_text(ignore_index)}"
            f" Found {int(bad_count)} offending labels with values in [{int(bad_min)}, {int(bad_max)}]. "
            "Check the dataset's label mapping and num_classes.")


def _check_tensorflow_labels(labels, num_classes, ignore_index, who):
    """`check_label_range` on a TensorFlow tensor: a `tf.debugging.Assert`."""
    import tensorflow as tf

    in_range, bad = _label_masks(tf, labels, num_classes, ignore_index)
    bad_count = tf.reduce_sum(tf.cast(bad, tf.int32))
    bad_min = tf.reduce_min(tf.where(bad, labels, labels.dtype.max))
    bad_max = tf.reduce_max(tf.where(bad, labels, labels.dtype.min))
    assert_op = tf.debugging.Assert(
        tf.equal(bad_count, 0),
        [
            _message_start(who, ": label values must lie in [0, num_classes) = [0,"),
            num_classes,
            f"){_allowed_text(ignore_index)} Found",
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
        in_range = tf.identity(in_range)
        bad_count = tf.identity(bad_count)
    return in_range, bad_count


def _message_start(who, text: str):
    """`who + text` for a Python string or a scalar string tensor."""
    import tensorflow as tf

    return who + text if isinstance(who, str) else tf.strings.join([who, text])
