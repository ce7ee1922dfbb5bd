"""spgnet_keras.scoring: the one NumPy scoring rule, equal to the streaming Keras metric, importable without TensorFlow."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from spgnet_keras import evaluation, metrics, scoring
from spgnet_keras.errors import InvalidInputError

REPO = Path(__file__).resolve().parents[1]
IGNORE = 255

# Run before anything else in a fresh interpreter: `import tensorflow` then raises ModuleNotFoundError.
BLOCK_TENSORFLOW = "import sys; sys.modules['tensorflow'] = None\n"


def run_without_tensorflow(code: str) -> subprocess.CompletedProcess:
    """Runs `code` in a fresh Python whose `import tensorflow` fails (Keras on its NumPy backend)."""
    env = {**os.environ, "KERAS_BACKEND": "numpy", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", BLOCK_TENSORFLOW + textwrap.dedent(code)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def random_maps(rng, num_classes, shape=(3, 7, 9), ignore_fraction=0.2, absent=()):
    """Integer labels (with ignore pixels) and predictions in [0, C), classes in `absent` never occurring."""
    present = [c for c in range(num_classes) if c not in absent]
    labels = rng.choice(present, size=shape)
    preds = rng.choice(present, size=shape)
    labels[rng.random(shape) < ignore_fraction] = IGNORE
    return labels, preds


def streaming_metric(labels, preds, num_classes):
    """The TensorFlow `SegmentationMeanIoU` fed the same maps as class ids."""
    metric = metrics.SegmentationMeanIoU(num_classes)
    metric.update_state(labels.astype(np.int32), preds.astype(np.int32))
    return metric


@pytest.mark.parametrize("seed", range(6))
def test_numpy_scores_equal_the_streaming_metric(seed):
    rng = np.random.default_rng(seed)
    num_classes = int(rng.integers(2, 9))
    absent = (num_classes - 1,) if seed % 2 else ()
    labels, preds = random_maps(rng, num_classes, absent=absent)
    cm = scoring.confusion_matrix(labels, preds, num_classes)
    metric = streaming_metric(labels, preds, num_classes)

    assert cm.dtype == np.int64 and cm.shape == (num_classes, num_classes)
    np.testing.assert_array_equal(cm, metric.confusion_matrix())
    assert cm.sum() == np.count_nonzero(labels != IGNORE)
    np.testing.assert_array_equal(scoring.iou_from_confusion(cm), metric.per_class_iou())  # NaN where absent
    if absent:
        assert np.isnan(scoring.iou_from_confusion(cm)[-1])
    assert scoring.mean_iou_from_confusion(cm) == pytest.approx(float(metric.result()), rel=1e-6)
    assert scoring.pixel_accuracy(cm) == metric.pixel_accuracy()


def test_ignore_index_other_than_255():
    labels = np.array([0, 1, 2, 2, 1])
    preds = np.array([0, 1, 1, 0, 0])
    np.testing.assert_array_equal(scoring.confusion_matrix(labels, preds, 2, ignore_index=2), [[1, 0], [1, 1]])


def test_empty_and_absent_classes_are_nan():
    empty = np.zeros((3, 3), np.int64)
    assert np.isnan(scoring.iou_from_confusion(empty)).all()
    assert np.isnan(scoring.mean_iou_from_confusion(empty))
    assert np.isnan(scoring.pixel_accuracy(empty))
    cm = np.array([[2, 0, 0], [0, 0, 0], [1, 0, 1]])
    np.testing.assert_allclose(scoring.iou_from_confusion(cm), [2 / 3, np.nan, 1 / 2])
    assert scoring.mean_iou_from_confusion(cm) == pytest.approx((2 / 3 + 1 / 2) / 2)


@pytest.mark.parametrize(
    "labels, preds, message",
    [
        ([0, 3], [0, 1], r"confusion_matrix: label values must lie in \[0, 3\).*found \[3\]"),
        ([0, -1], [0, 1], r"label values .* found \[-1\]"),
        ([0, 1], [0, 7], r"confusion_matrix: prediction values must lie in \[0, 3\).*found \[7\]"),
        ([0, 1], [0, 1, 2], "labels and preds differ in size: 2 vs 3"),
    ],
)
def test_bad_input_is_refused(labels, preds, message):
    with pytest.raises(InvalidInputError, match=message) as error:
        scoring.confusion_matrix(labels, preds, 3)
    assert isinstance(error.value, ValueError)


def test_a_bad_prediction_under_an_ignored_label_is_not_counted():
    np.testing.assert_array_equal(scoring.confusion_matrix([IGNORE, 1], [9, 1], 2), [[0, 0], [0, 1]])


def test_old_import_paths_give_the_same_functions():
    for name in ("confusion_matrix", "iou_from_confusion", "mean_iou_from_confusion"):
        assert getattr(metrics, name) is getattr(scoring, name)
    assert evaluation.confusion_matrix is scoring.confusion_matrix


def test_scoring_imports_without_tensorflow():
    result = run_without_tensorflow("""
        import numpy as np
        import spgnet_keras.scoring as scoring

        cm = scoring.confusion_matrix(np.array([[0, 1], [255, 1]]), np.array([[0, 1], [0, 0]]), 2)
        assert cm.tolist() == [[1, 0], [1, 1]], cm
        assert scoring.mean_iou_from_confusion(cm) == 0.5
        try:
            scoring.confusion_matrix([5], [0], 2)
        except ValueError as error:
            assert "label values must lie in [0, 2)" in str(error), error
        else:
            raise AssertionError("an out-of-range label was accepted")
        assert sys.modules["tensorflow"] is None, "TensorFlow was imported"
        print("ok")
    """)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]
