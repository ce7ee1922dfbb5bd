"""One label-range rule: the dataset check, the pipeline, the loss, the metric and the NumPy
confusion matrix refuse the same out-of-range label and keep the ignore label."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from spgnet_keras.data import DatasetError, make_dataset, validate_dataset
from spgnet_keras.labels import check_label_values, out_of_range_values
from spgnet_keras.losses import SegmentationCrossEntropy
from spgnet_keras.metrics import SegmentationMeanIoU, confusion_matrix

NUM_CLASSES = 3


@pytest.fixture
def pair(tmp_path):
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "image.png")
    labels = np.zeros((8, 8), np.uint8)
    labels[0, 0], labels[1, 1] = 7, 255
    Image.fromarray(labels).save(tmp_path / "mask.png")
    return str(tmp_path / "image.png"), str(tmp_path / "mask.png"), labels


def test_out_of_range_values_lists_each_offender_once():
    values = np.array([[0, 7, 7], [255, -1, 2]])
    np.testing.assert_array_equal(out_of_range_values(values, 3, 255), [-1, 7])
    np.testing.assert_array_equal(out_of_range_values(values, 3, None), [-1, 7, 255])
    check_label_values(np.array([0, 2, 255]), 3, 255, "ok")  # nothing raised


def test_every_reader_refuses_the_same_label(pair):
    image_path, mask_path, labels = pair
    with pytest.raises(DatasetError, match=r"mask\.png: label values must lie in \[0, 3\) or equal the "
                                           r"ignore label 255; found \[7\]"):
        validate_dataset([(image_path, mask_path)], NUM_CLASSES)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"mask\.png: label values must lie in \[0, "):
        next(iter(make_dataset([(image_path, mask_path)], batch_size=1, num_classes=NUM_CLASSES)))
    logits = tf.zeros((1, 8, 8, NUM_CLASSES))
    for who in (SegmentationCrossEntropy(), SegmentationMeanIoU(NUM_CLASSES)):
        call = who.update_state if hasattr(who, "update_state") else who
        with pytest.raises(tf.errors.InvalidArgumentError, match=type(who).__name__ + ".*" + "label values"):
            call(labels[None].astype(np.int32), logits)
    with pytest.raises(ValueError, match=r"confusion_matrix: label values must lie in \[0, 3\); found \[7\]"):
        confusion_matrix(labels[labels != 255], np.zeros(63, np.int64), NUM_CLASSES)


def test_the_ignore_label_passes_everywhere(pair):
    image_path, mask_path, labels = pair
    labels[0, 0] = 2
    Image.fromarray(labels).save(mask_path)
    assert validate_dataset([(image_path, mask_path)], NUM_CLASSES).ignore_pixels == 1
    _, masks = next(iter(make_dataset([(image_path, mask_path)], batch_size=1, num_classes=NUM_CLASSES)))
    assert int(masks[0, 1, 1]) == 255
    loss = SegmentationCrossEntropy()(labels[None].astype(np.int32), tf.zeros((1, 8, 8, NUM_CLASSES)))
    assert np.isclose(float(loss), np.log(NUM_CLASSES), atol=1e-5)
    assert confusion_matrix(labels, np.zeros((8, 8), np.int64), NUM_CLASSES).sum() == 63
