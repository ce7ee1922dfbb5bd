"""Tests for spgnet_keras.metrics."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from spgnet_keras.losses import SegmentationCrossEntropy
from spgnet_keras.metrics import (
    SegmentationMeanIoU,
    confusion_matrix,
    iou_from_confusion,
    mean_iou_from_confusion,
)
from tests.helpers import run_serialization_test

IGNORE = 255
C = 5


def reference_confusion(labels, preds, num_classes):
    """Straightforward loop reference: rows = label, columns = prediction."""
    cm = np.zeros((num_classes, num_classes), np.int64)
    for t, p in zip(np.ravel(labels), np.ravel(preds)):
        if t != IGNORE:
            cm[t, p] += 1
    return cm


def reference_iou(cm):
    out = []
    for c in range(cm.shape[0]):
        tp = cm[c, c]
        fp = cm[:, c].sum() - tp
        fn = cm[c, :].sum() - tp
        out.append(np.nan if tp + fp + fn == 0 else tp / (tp + fp + fn))
    return np.array(out)


def random_batch(rng, batch=2, size=6, classes=C, absent=(4,)):
    """Labels/logits where classes in ``absent`` never occur in either."""
    present = [c for c in range(classes) if c not in absent]
    labels = rng.choice(present, size=(batch, size, size)).astype("int32")
    labels[rng.random(labels.shape) < 0.2] = IGNORE
    logits = rng.normal(size=(batch, size, size, classes)).astype("float32")
    for c in absent:
        logits[..., c] = -1e3
    return labels, logits


# --------------------------------------------------------------- numpy API
def test_numpy_confusion_matches_loop_reference():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, C, size=(3, 7, 9))
    labels[rng.random(labels.shape) < 0.3] = IGNORE
    preds = rng.integers(0, C, size=labels.shape)
    preds[labels == IGNORE] = 200  # anything is allowed under ignored pixels
    cm = confusion_matrix(labels, preds, C)
    assert cm.dtype == np.int64 and cm.shape == (C, C)
    np.testing.assert_array_equal(cm, reference_confusion(labels, preds, C))
    assert cm.sum() == (labels != IGNORE).sum()


def test_iou_from_confusion_and_absent_classes():
    cm = np.array([[3, 1, 0], [2, 4, 0], [0, 0, 0]])
    iou = iou_from_confusion(cm)
    np.testing.assert_allclose(iou[:2], [3 / 6, 4 / 7])
    assert np.isnan(iou[2])
    np.testing.assert_allclose(iou, reference_iou(cm))
    assert mean_iou_from_confusion(cm) == pytest.approx((3 / 6 + 4 / 7) / 2)
    assert np.isnan(mean_iou_from_confusion(np.zeros((3, 3))))
    # A class present only in predictions counts (IoU 0).
    assert iou_from_confusion([[1, 1], [0, 0]])[1] == 0.0


@pytest.mark.parametrize(
    "labels, preds, match",
    [([0, 5], [0, 0], "label values"), ([0, -1], [0, 0], "label values"),
     ([0, 1], [0, 7], "prediction values")],
)
def test_numpy_confusion_rejects_out_of_range(labels, preds, match):
    with pytest.raises(ValueError, match=match):
        confusion_matrix(np.array(labels), np.array(preds), 5)


# ------------------------------------------------------------ Keras metric
def test_streaming_metric_matches_numpy_reference():
    rng = np.random.default_rng(1)
    metric = SegmentationMeanIoU(C)
    assert float(metric.result()) == 0.0  # nothing counted yet
    all_labels, all_preds = [], []
    for _ in range(3):
        labels, logits = random_batch(rng)
        metric.update_state(labels, logits)
        all_labels.append(labels)
        all_preds.append(logits.argmax(-1))
    labels, preds = np.concatenate(all_labels), np.concatenate(all_preds)
    cm = reference_confusion(labels, preds, C)
    iou = reference_iou(cm)
    assert np.isnan(iou[4])  # class 4 absent from labels and predictions
    np.testing.assert_array_equal(metric.confusion_matrix(), cm)
    np.testing.assert_allclose(metric.per_class_iou(), iou)
    assert float(metric.result()) == pytest.approx(np.nanmean(iou), rel=1e-6)
    assert float(metric.result()) != pytest.approx(np.nan_to_num(iou).mean(), rel=1e-3)
    assert metric.pixel_accuracy() == pytest.approx(np.trace(cm) / cm.sum())

    metric.reset_state()
    assert metric.confusion_matrix().sum() == 0
    assert np.isnan(metric.pixel_accuracy())


def test_integer_predictions_and_channel_labels():
    rng = np.random.default_rng(2)
    labels, logits = random_batch(rng, absent=())
    preds = logits.argmax(-1).astype("int32")
    from_logits = SegmentationMeanIoU(C)
    from_logits.update_state(labels, logits)
    from_ids = SegmentationMeanIoU(C)
    from_ids.update_state(labels[..., None], preds[..., None])
    from_ids_flat = SegmentationMeanIoU(C)
    from_ids_flat.update_state(labels.astype("float32"), preds)
    expected = reference_confusion(labels, preds, C)
    for metric in (from_logits, from_ids, from_ids_flat):
        np.testing.assert_array_equal(metric.confusion_matrix(), expected)


def test_sample_weight_per_image():
    rng = np.random.default_rng(3)
    labels, logits = random_batch(rng, batch=3, absent=())
    preds = logits.argmax(-1)
    metric = SegmentationMeanIoU(C)
    metric.update_state(labels, logits, sample_weight=np.array([1.0, 0.0, 2.0]))
    expected = reference_confusion(labels[0], preds[0], C) + 2 * reference_confusion(
        labels[2], preds[2], C
    )
    np.testing.assert_array_equal(metric.confusion_matrix(), expected)


@pytest.mark.parametrize("bad_label", [5, -3, 100])
def test_out_of_range_labels_raise(bad_label):
    rng = np.random.default_rng(4)
    labels, logits = random_batch(rng)
    labels[0, 0, 0] = bad_label
    metric = SegmentationMeanIoU(C)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"\[0, num_classes\)"):
        metric.update_state(labels, logits)
    with pytest.raises(tf.errors.InvalidArgumentError, match=str(bad_label)):
        tf.function(metric.update_state)(labels, logits)


def test_out_of_range_predictions_raise():
    labels = np.zeros((1, 2, 2), "int32")
    preds = np.array([[[0, 1], [9, 0]]], "int32")
    with pytest.raises(tf.errors.InvalidArgumentError, match="y_pred"):
        SegmentationMeanIoU(C).update_state(labels, preds)
    # ... but predictions under ignored labels are not checked.
    labels[0, 1, 0] = IGNORE
    metric = SegmentationMeanIoU(C)
    metric.update_state(labels, preds)
    assert metric.confusion_matrix().sum() == 3


def test_out_of_range_labels_give_nan_under_xla():
    labels = np.array([[[0, 7]]], "int32")
    preds = np.array([[[0, 0]]], "int32")
    metric = SegmentationMeanIoU(C)
    tf.function(metric.update_state, jit_compile=True)(labels, preds)
    assert np.isnan(float(metric.result()))


def test_config_round_trip():
    metric = SegmentationMeanIoU(7, ignore_index=0, name="val_miou")
    restored = run_serialization_test(metric)  # config and JSON round trips (tests/helpers.py)
    assert (restored.num_classes, restored.ignore_index, restored.name) == (
        7, 0, "val_miou")


def test_in_compiled_model_with_dict_outputs():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(4, 6, 6, 3)).astype("float32")
    labels = rng.integers(0, 3, size=(4, 6, 6)).astype("int32")
    labels[:, 0] = IGNORE
    inp = keras.Input((6, 6, 3))
    model = keras.Model(
        inp,
        {
            "prediction": keras.layers.Conv2D(3, 1)(inp),
            "stage1": keras.layers.Conv2D(3, 1)(inp),
        },
    )
    model.compile(
        loss={"prediction": SegmentationCrossEntropy(),
              "stage1": SegmentationCrossEntropy()},
        metrics={"prediction": [SegmentationMeanIoU(3)]},
    )
    targets = {"prediction": labels, "stage1": labels}
    logs = model.evaluate(x, targets, batch_size=2, verbose=0, return_dict=True)
    preds = model.predict(x, verbose=0)["prediction"].argmax(-1)
    expected = mean_iou_from_confusion(confusion_matrix(labels, preds, 3))
    assert logs["prediction_miou"] == pytest.approx(expected, rel=1e-6)
