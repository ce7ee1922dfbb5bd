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
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

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


# ------------------------------------------------------------- Keras metric
@keras.saving.register_keras_serializable(package=_PACKAGE)
class SegmentationMeanIoU(keras.metrics.Metric):
    """Streaming mean IoU for semantic segmentation.

    Accumulates a `(C, C)` confusion matrix (float64 counts, exact up to
    2**53 pixels; rows = ground truth, columns = prediction) over calls to
    `update_state`. Its variable aggregates by SUM across replicas, so it
    works under `tf.distribute` strategies.

    `y_true`: integer labels `(B, H, W)` or `(B, H, W, 1)`; pixels equal
    to `ignore_index` are skipped, other labels outside `[0, C)` raise
    `tf.errors.InvalidArgumentError` (NaN result under XLA, where asserts
    are compiled away).

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
            dtype="float64",
            name="total_confusion_matrix",
        )

    def _class_ids(self, y_pred, label_rank: int | None) -> tf.Tensor:
        """Converts logits or class ids into int32 class ids `(B, H, W)`."""
        y_pred = tf.convert_to_tensor(y_pred)
        is_float = y_pred.dtype.is_floating
        if is_float and y_pred.shape.rank and y_pred.shape[-1] == self.num_classes:
            if label_rank is None or y_pred.shape.rank == label_rank + 1:
                return tf.argmax(y_pred, axis=-1, output_type=tf.int32)
        ids = tf.cast(y_pred, tf.int32)
        if label_rank is not None and ids.shape.rank == label_rank + 1:
            ids = tf.squeeze(ids, axis=-1)
        return ids

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Adds a batch to the confusion matrix.

        Args:
            y_true: Labels `(B, H, W)` or `(B, H, W, 1)`.
            y_pred: Logits `(B, H, W, C)` or class ids `(B, H, W)`.
            sample_weight: Optional per-image or per-pixel weights.
        """
        labels = tf.cast(tf.convert_to_tensor(y_true), tf.int32)
        if labels.shape.rank == 4 and labels.shape[-1] == 1:
            labels = tf.squeeze(labels, axis=-1)
        preds = self._class_ids(y_pred, labels.shape.rank)
        counts, bad_count = self._batch_confusion(labels, preds, sample_weight)
        poison = tf.where(bad_count > 0, tf.constant(np.nan, tf.float64), 0.0)
        self.total_cm.assign_add(counts + poison)

    def _batch_confusion(self, labels, preds, sample_weight):
        """Returns the float64 `(C, C)` counts of one batch and a bad count."""
        c = self.num_classes
        kept, bad_labels = check_label_range(
            labels, c, self.ignore_index, f"{type(self).__name__} (y_true)"
        )
        preds_ok, bad_preds = check_label_range(
            tf.where(kept, preds, tf.zeros_like(preds)),
            c,
            None,
            f"{type(self).__name__} (y_pred)",
        )
        kept = tf.logical_and(kept, preds_ok)
        weights = tf.cast(kept, tf.float64)
        if sample_weight is not None:
            sw = tf.cast(tf.convert_to_tensor(sample_weight), tf.float64)
            if sw.shape.rank == labels.shape.rank + 1:
                sw = tf.squeeze(sw, axis=-1)
            elif sw.shape.rank and sw.shape.rank < labels.shape.rank:
                sw = tf.reshape(sw, [-1] + [1] * (labels.shape.rank - 1))
            weights = weights * sw
        ids = tf.where(kept, labels * c + preds, tf.zeros_like(labels))
        counts = tf.math.unsorted_segment_sum(
            tf.reshape(weights, [-1]), tf.reshape(ids, [-1]), c * c
        )
        return tf.reshape(counts, (c, c)), bad_labels + bad_preds

    def result(self):
        """Mean IoU over classes with non-zero union (0 if none)."""
        cm = tf.convert_to_tensor(self.total_cm)
        tp = tf.linalg.diag_part(cm)
        union = tf.reduce_sum(cm, axis=0) + tf.reduce_sum(cm, axis=1) - tp
        present = union > 0
        iou = tf.math.divide_no_nan(tp, union)
        n_present = tf.reduce_sum(tf.cast(present, tf.float64))
        miou = tf.math.divide_no_nan(
            tf.reduce_sum(tf.where(present, iou, tf.zeros_like(iou))), n_present
        )
        # divide_no_nan hides a poisoned (NaN) matrix; surface it.
        miou = tf.where(tf.reduce_all(tf.math.is_finite(cm)), miou, np.nan)
        return tf.cast(miou, self.dtype)

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
