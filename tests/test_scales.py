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
