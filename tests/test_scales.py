"""One scale rule: training's random scales and the test-time scales refuse the same values alike."""

import re

import keras
import pytest

from spgnet_keras import SPGNet
from spgnet_keras.config import ExperimentConfig, apply_overrides
from spgnet_keras.constants import MAX_SCALE
from spgnet_keras.data import make_dataset
from spgnet_keras.export.saved_model import check_options
from spgnet_keras.inference import predict_logits
from spgnet_keras.scales import check_scales

BAD = {
    "empty": ([], "must contain at least one scale"),
    "zero": ([1.0, 0.0], "must be positive numbers, got 0.0"),
    "negative": ([-1.0], "must be positive numbers, got -1.0"),
    "nan": ([float("nan")], "must be positive numbers, got nan"),
    "text": (["big"], "must be positive numbers, got 'big'"),
    "bool": ([True], "must be positive numbers, got True"),
    "too large": ([1.0, MAX_SCALE * 2], f"must be at most {MAX_SCALE}"),
}


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return SPGNet(3, backbones=("resnet18",), decoder_channels=8)


def callers(model):
    image = [[[0, 0, 0]] * 8] * 8
    return {
        "scales": lambda scales: check_scales(scales),
        "data.scales": lambda scales: apply_overrides(ExperimentConfig(), {"data": {"scales": scales}}),
        "make_dataset": lambda scales: make_dataset([("a.png", "a.png")], batch_size=2, crop_size=(8, 8),
                                                    training=True, scales=scales),
        "predict_logits": lambda scales: predict_logits(model, image, scales=scales),
        "export": lambda scales: check_options(model, "prediction", scales, False, "original", False, 64),
    }


@pytest.mark.parametrize("case", sorted(BAD))
def test_every_caller_refuses_a_bad_scale_with_the_same_message(model, case):
    scales, message = BAD[case]
    for name, call in callers(model).items():
        if name == "data.scales" and case in ("text", "bool"):
            continue  # the config's type check refuses these first ("must be of type float")
        with pytest.raises(ValueError, match=re.escape(message)) as error:
            call(scales)
        assert "scales" in str(error.value), (name, str(error.value))


def test_good_scales_are_normalised_to_floats():
    assert check_scales([1, 1.5, 2]) == (1.0, 1.5, 2.0)
    assert check_scales(0.5) == (0.5,)
    assert check_scales((MAX_SCALE,)) == (MAX_SCALE,)


# ---------------------------------------------------------------- scaled_size: one size rule


def old_tensorflow_rule(size, scale):
    """`data.augment.scaled_size` as it was before it moved to `spgnet_keras.scales`."""
    import tensorflow as tf

    sides = tf.round(tf.cast(size, tf.float32) * tf.cast(scale, tf.float32))
    return tf.maximum(tf.cast(sides, tf.int32), 1)


SIZES = sorted({1, 2, 3, 5, 7, 31, 32, 33, 180, 181, 240, 333, 360, 481, 512, 713, 1023, 1024, 1025, 2047, 2049}
               | set(range(1, 80)))
SCALES = (0.05, 0.1, 0.25, 0.3, 0.5, 0.75, 0.8, 0.9, 1.0, 1.1, 1.25, 1.3, 1.5, 1.75, 2.0, 1 / 3, 2 / 3, 0.123)


def test_scaled_size_numpy_and_tensorflow_paths_agree():
    import numpy as np
    import tensorflow as tf

    from spgnet_keras.data import augment
    from spgnet_keras.inference import scaled_size as inference_scaled_size
    from spgnet_keras.multiscale import scaled_size as multiscale_scaled_size
    from spgnet_keras.scales import scaled_size

    assert augment.scaled_size is scaled_size and multiscale_scaled_size is scaled_size
    heights = np.array([h for h in SIZES for _ in SIZES])
    widths = np.array([w for _ in SIZES for w in SIZES])
    graph_rule = tf.function(scaled_size, input_signature=[tf.TensorSpec([2], tf.int32), tf.TensorSpec([], tf.float32)])
    for scale in SCALES:
        expected = old_tensorflow_rule(tf.stack([heights, widths], axis=1), scale).numpy()
        numpy_sizes = np.array([scaled_size((int(h), int(w)), scale) for h, w in zip(heights, widths)])
        np.testing.assert_array_equal(numpy_sizes, expected, err_msg=f"scale {scale}")
        for (h, w), want in zip(zip(heights[::37], widths[::37]), expected[::37]):
            eager = scaled_size(tf.constant([h, w]), scale)
            assert eager.dtype == tf.int32 and eager.numpy().tolist() == want.tolist(), (h, w, scale)
            assert graph_rule(tf.constant([h, w], tf.int32), tf.constant(scale)).numpy().tolist() == want.tolist()
            assert inference_scaled_size(int(h), int(w), scale) == tuple(want.tolist())


def test_scaled_size_rounds_half_to_even_and_keeps_one_pixel():
    from spgnet_keras.scales import scaled_size

    assert scaled_size((5, 3), 0.5) == (2, 2)  # 2.5 -> 2, 1.5 -> 2
    assert scaled_size((7, 9), 0.5) == (4, 4)  # 3.5 -> 4, 4.5 -> 4
    assert scaled_size((1, 1), 0.1) == (1, 1)
    assert scaled_size((1024, 2048), 0.75) == (768, 1536)
    assert all(isinstance(side, int) for side in scaled_size((3, 4), 1.5))


def test_scales_imports_without_tensorflow():
    from tests.test_scoring import run_without_tensorflow

    result = run_without_tensorflow("""
        import numpy as np
        from spgnet_keras.scales import check_scales, scaled_size

        assert scaled_size((5, 3), 0.5) == (2, 2)
        assert scaled_size(np.array([1024, 2048]), np.float64(0.75)) == (768, 1536)
        assert check_scales([1, 2]) == (1.0, 2.0)
        assert sys.modules["tensorflow"] is None, "TensorFlow was imported"
        print("ok")
    """)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]
