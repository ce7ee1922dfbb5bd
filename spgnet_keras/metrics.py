"""Segmentation metrics: streaming confusion matrix and mean IoU.

Conventions (shared by the Keras metric and the numpy helpers):

- the confusion matrix `cm` has shape `(C, C)`; rows are ground-truth
  classes, columns predicted classes: `cm[t, p]` counts pixels labelled
  `t` and predicted `p`;
- pixels whose label equals `ignore_index` (255) are not counted; any other
  label outside `[0, C)` (or a prediction outside it) is an error;
- `IoU_c = cm[c, c] / (sum_p cm[c, p] + sum_t cm[t, c] - cm[c, c])`; a class
  whose union is 0 (absent from both labels and predictions) has IoU NaN and
  is excluded from the mean, as cityscapesscripts does.

`SegmentationMeanIoU` is written in `keras.ops`: the same counts on every backend
(tests/test_backend_agreement.py).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from spgnet_keras.classes import check_num_classes
from spgnet_keras.constants import IGNORE_LABEL
from spgnet_keras.labels import check_label_range

# The NumPy scoring helpers live in spgnet_keras.scoring (TensorFlow-free); re-exported here.
from spgnet_keras.scoring import confusion_matrix, iou_from_confusion, mean_iou_from_confusion

__all__ = [
    "SegmentationMeanIoU",
    "confusion_matrix",
    "iou_from_confusion",
    "mean_iou_from_confusion",
]

_PACKAGE = "spgnet_keras"


def count_dtype() -> str:
    """The confusion matrix's dtype: float64 where the backend holds it, else float32.

    JAX keeps float64 only with `jax_enable_x64` (otherwise it truncates to float32
    with a warning); TensorFlow always does.
    """
    if keras.backend.backend() == "jax":
        import jax

        if not jax.config.jax_enable_x64:
            return "float32"
    return "float64"


# ------------------------------------------------------------- Keras metric
@keras.saving.register_keras_serializable(package=_PACKAGE)
class SegmentationMeanIoU(keras.metrics.Metric):
    """Streaming mean IoU for semantic segmentation.

    Accumulates a `(C, C)` confusion matrix (rows = ground truth, columns =
    prediction) over calls to `update_state`, in float64 where the backend has it
    (TensorFlow; JAX with `jax_enable_x64`), exact up to 2**53 pixels a cell, else in
    float32 (exact up to 2**24 pixels a cell, then rounded to about 1e-7 relative
    per batch). Its variable aggregates by SUM across replicas, so it works under
    `tf.distribute` strategies.

    `y_true`: integer labels `(B, H, W)` or `(B, H, W, 1)`; pixels equal
    to `ignore_index` are skipped, other labels outside `[0, C)` raise
    (`labels.check_label_range`: `tf.errors.InvalidArgumentError` on TensorFlow,
    NaN result under XLA, where asserts are compiled away).

    `y_pred`: either logits/probabilities `(B, H, W, C)` (a floating
    tensor whose last axis has `num_classes` entries; argmax is taken), or
    class ids `(B, H, W)`/`(B, H, W, 1)` (pass an integer dtype to be
    unambiguous).

    `sample_weight` (optional, per image `(B,)` or per pixel
    `(B, H, W)`) multiplies each pixel's count.

    `result` is the mean IoU over classes whose union is non-zero
    (present in the labels or the predictions seen so far); classes absent
    from both are excluded, like cityscapesscripts' NaN entries. It is 0 before
    any pixel is counted.

    Example:

    ```python
    model.compile(..., metrics={"prediction": [SegmentationMeanIoU(19)]})
    ```

    Args:
        num_classes: int. Number of classes `C`.
        ignore_index: int. Label value to skip (default 255).
        name: str. Metric name (default `"miou"`).
        dtype: str. dtype of `result` (default float32).
    """

    def __init__(
        self,
        num_classes: int,
        ignore_index: int = IGNORE_LABEL,
        name: str = "miou",
        dtype=None,
    ):
        super().__init__(name=name, dtype=dtype or "float32")
        self.num_classes = check_num_classes(num_classes)
        self.ignore_index = int(ignore_index)
        self._direction = "up"
        self.total_cm = self.add_variable(
            shape=(self.num_classes, self.num_classes),
            initializer="zeros",
            dtype=count_dtype(),
            name="total_confusion_matrix",
        )

    def _class_ids(self, y_pred, label_rank: int):
        """Converts logits or class ids into int32 class ids `(B, H, W)`."""
        y_pred = ops.convert_to_tensor(y_pred)
        is_float = keras.backend.is_float_dtype(y_pred.dtype)
        rank = ops.ndim(y_pred)
        if is_float and rank and y_pred.shape[-1] == self.num_classes and rank == label_rank + 1:
            return ops.cast(ops.argmax(y_pred, axis=-1), "int32")
        ids = ops.cast(y_pred, "int32")
        if ops.ndim(ids) == label_rank + 1:
            ids = ops.squeeze(ids, axis=-1)
        return ids

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Adds a batch to the confusion matrix.

        Args:
            y_true: Labels `(B, H, W)` or `(B, H, W, 1)`.
            y_pred: Logits `(B, H, W, C)` or class ids `(B, H, W)`.
            sample_weight: Optional per-image or per-pixel weights.
        """
        labels = ops.cast(y_true, "int32")
        if ops.ndim(labels) == 4 and labels.shape[-1] == 1:
            labels = ops.squeeze(labels, axis=-1)
        preds = self._class_ids(y_pred, ops.ndim(labels))
        counts, bad_count = self._batch_confusion(labels, preds, sample_weight)
        poison = ops.where(bad_count > 0, ops.cast(np.nan, counts.dtype), ops.cast(0.0, counts.dtype))
        self.total_cm.assign_add(counts + poison)

    def _batch_confusion(self, labels, preds, sample_weight):
        """Returns the `(C, C)` counts of one batch (the variable's dtype) and a bad count."""
        c = self.num_classes
        kept, bad_labels = check_label_range(
            labels, c, self.ignore_index, f"{type(self).__name__} (y_true)"
        )
        preds_ok, bad_preds = check_label_range(
            ops.where(kept, preds, ops.zeros_like(preds)),
            c,
            None,
            f"{type(self).__name__} (y_pred)",
        )
        kept = ops.logical_and(kept, preds_ok)
        dtype = self.total_cm.dtype
        weights = ops.cast(kept, dtype)
        if sample_weight is not None:
            sw = ops.cast(sample_weight, dtype)
            if ops.ndim(sw) == ops.ndim(labels) + 1:
                sw = ops.squeeze(sw, axis=-1)
            elif 0 < ops.ndim(sw) < ops.ndim(labels):
                sw = ops.reshape(sw, (-1,) + (1,) * (ops.ndim(labels) - 1))
            weights = weights * sw
        ids = ops.where(kept, labels * c + preds, ops.zeros_like(labels))
        counts = ops.segment_sum(ops.reshape(weights, (-1,)), ops.reshape(ids, (-1,)), num_segments=c * c)
        return ops.reshape(counts, (c, c)), bad_labels + bad_preds

    def result(self):
        """Mean IoU over classes with non-zero union (0 if none)."""
        cm = ops.convert_to_tensor(self.total_cm)
        tp = ops.diagonal(cm)
        union = ops.sum(cm, axis=0) + ops.sum(cm, axis=1) - tp
        present = union > 0
        iou = ops.divide_no_nan(tp, union)
        n_present = ops.sum(ops.cast(present, cm.dtype))
        miou = ops.divide_no_nan(ops.sum(ops.where(present, iou, ops.zeros_like(iou))), n_present)
        # divide_no_nan hides a poisoned (NaN) matrix; surface it.
        miou = ops.where(ops.all(ops.isfinite(cm)), miou, ops.cast(np.nan, cm.dtype))
        return ops.cast(miou, self.dtype)

# -------------------------------------------------- numpy conveniences
    def confusion_matrix(self) -> np.ndarray:
        """Accumulated confusion matrix as `np.int64` (weighted counts rounded)."""
        cm = keras.ops.convert_to_numpy(self.total_cm)
        return np.rint(cm).astype(np.int64)

    def per_class_iou(self) -> np.ndarray:
        """Per-class IoU, `np.float64` `(C,)`, NaN for absent classes."""
        return iou_from_confusion(keras.ops.convert_to_numpy(self.total_cm))

    def pixel_accuracy(self) -> float:
        """Fraction of counted pixels predicted correctly (NaN if none)."""
        cm = keras.ops.convert_to_numpy(self.total_cm)
        total = cm.sum()
        return float(np.trace(cm) / total) if total > 0 else float("nan")

    def get_config(self):
        """Returns the constructor arguments."""
        return {
            "name": self.name,
            "dtype": self.dtype,
            "num_classes": self.num_classes,
            "ignore_index": self.ignore_index,
        }
