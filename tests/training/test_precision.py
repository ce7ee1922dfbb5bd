"""Mixed precision: bfloat16 compute with float32 variables, logits and losses."""

import math

import keras
import numpy as np
import pytest

from spgnet_keras.config import LossConfig, OptimizerConfig
from spgnet_keras.data import SYNTHETIC_SPEC, make_synthetic_dataset
from spgnet_keras.models.spgnet import SPGNet
from spgnet_keras.training import recipe_compile_arguments, set_precision


def test_mixed_bfloat16_outputs_float32_and_finite_loss(float32_policy):
    set_precision("mixed_bfloat16")
    assert keras.mixed_precision.dtype_policy().name == "mixed_bfloat16"
    num_classes = SYNTHETIC_SPEC.num_classes
    model = SPGNet.from_preset("spgnet_r18x2_128", num_classes=num_classes, decoder_channels=8)
    stem = model.get_layer("stage1_stem_conv")
    assert stem.compute_dtype == "bfloat16" and stem.kernel.dtype == "float32"
    assert model.get_layer("preprocessing").compute_dtype == "float32"  # 0-255 never rounded to bfloat16
    assert all(v.dtype == "float32" for v in model.weights)

    images, labels = make_synthetic_dataset(2, 64, 96, seed=0)
    x = images  # uint8 RGB: the model normalises its own input
    outputs = model(x, training=False)
    assert sorted(outputs) == ["prediction", "stage1"]
    for name, value in outputs.items():
        assert value.dtype == "float32" and tuple(value.shape) == (2, 64, 96, num_classes), name

    model.compile(**recipe_compile_arguments(model, OptimizerConfig(learning_rate=0.01), LossConfig(ohem_top_k=0.5), 10))
    model.run_eagerly = True  # one step: eager is much cheaper than tracing the train function
    before = model.get_layer("stage2_classifier").kernel.numpy()
    logs = model.train_on_batch(x, labels, return_dict=True)
    for key in ("loss", "prediction_loss", "stage1_loss"):
        assert math.isfinite(logs[key]) and logs[key] > 0, logs
    after = model.get_layer("stage2_classifier").kernel.numpy()
    assert after.dtype == np.float32 and np.all(np.isfinite(after)) and not np.array_equal(before, after)


def test_set_precision_rejects_unknown_policy(float32_policy):
    with pytest.raises(ValueError, match="precision"):
        set_precision("float64")
    assert keras.mixed_precision.dtype_policy().name == "float32"
