"""keras-hub's conventions on SPGNet: the dtype given to every layer (no global policy
swapped), `image_shape`, keyword-only `compile` arguments, and metric names that do not
depend on the number of stages."""

import json
import threading
import warnings

import keras
import numpy as np
import pytest

from spgnet_keras import SPGNet

TINY = dict(decoder_channels=8)
# Layers SPGNet pins to float32 whatever its policy: the input, its normalisation, the
# classifiers, the logit upsampling and crop (`models/graph.py`), SPG's logits conv.
FLOAT32_LAYERS = {"image", "preprocessing", "stage1_classifier", "stage2_classifier", "stage1_upsample",
                  "prediction_upsample", "stage1", "prediction", "logits_conv"}


def policies(model):
    """(layer name, dtype policy name) of every layer below the model."""
    return [(layer.name, layer.dtype_policy.name) for layer in model._flatten_layers(include_self=False)]


def test_every_layer_gets_the_model_dtype_and_the_global_policy_is_untouched():
    before = keras.config.dtype_policy().name
    model = SPGNet(3, backbones=("resnet18", "resnet18"), dtype="mixed_bfloat16", **TINY)
    assert keras.config.dtype_policy().name == before == "float32"
    assert model.dtype_policy.name == "mixed_bfloat16"
    found = policies(model)
    assert len(found) > 150
    pinned = [policy for name, policy in found if name in FLOAT32_LAYERS]
    others = [policy for name, policy in found if not name in FLOAT32_LAYERS]
    assert len(pinned) == 8 and set(pinned) == {"float32"}
    assert set(others) == {"mixed_bfloat16"}
    assert model.get_config()["dtype"]["config"]["name"] == "mixed_bfloat16"


def test_two_threads_build_models_of_different_dtypes_at_once():
    """Nothing process-wide is set while a model is built: concurrent builds with different
    dtypes each get theirs."""
    results, errors = {}, []
    barrier = threading.Barrier(2)

    def build(dtype):
        try:
            barrier.wait()
            model = SPGNet(3, backbones=("resnet18",), dtype=dtype, **TINY)
            results[dtype] = (model.get_layer("stage1_stack2_block1_conv1").dtype_policy.name,
                              model.get_layer("stage1_upsample1").fuse_block.conv2.dtype_policy.name,
                              model.get_layer("stage1_classifier").dtype_policy.name)
        except Exception as error:  # reported in the main thread
            errors.append(error)

    threads = [threading.Thread(target=build, args=(dtype,)) for dtype in ("float32", "bfloat16")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert results == {"float32": ("float32",) * 3, "bfloat16": ("bfloat16", "bfloat16", "float32")}
    assert keras.config.dtype_policy().name == "float32"


@pytest.mark.parametrize("backbones", [("resnet18",), ("resnet18", "resnet18")], ids=["one_stage", "two_stage"])
def test_metric_is_logged_as_prediction_miou_for_any_number_of_stages(backbones):
    model = SPGNet(3, backbones=backbones, **TINY)
    model.compile()
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, size=(2, 32, 32, 3)).astype("float32")
    masks = rng.integers(0, 3, size=(2, 32, 32)).astype("int32")
    scores = model.evaluate(images, masks, batch_size=2, verbose=0, return_dict=True)
    assert "prediction_miou" in scores and "miou" not in scores
    assert 0.0 <= scores["prediction_miou"] <= 1.0
    history = model.fit(images, masks, batch_size=2, epochs=1, verbose=0, validation_data=(images, masks))
    assert "val_prediction_miou" in history.history


def test_image_shape_is_the_argument_and_input_shape_a_deprecated_alias():
    model = SPGNet(3, backbones=("resnet18",), image_shape=(64, 96, 3), **TINY)
    assert model.image_shape == (64, 96, 3) and tuple(model.input.shape) == (None, 64, 96, 3)
    config = model.get_config()
    assert config["image_shape"] == [64, 96, 3] and "input_shape" not in config
    with pytest.warns(DeprecationWarning, match="image_shape"):
        old = SPGNet(3, backbones=("resnet18",), input_shape=(32, 64, 3), **TINY)
    assert old.image_shape == (32, 64, 3)
    with pytest.warns(DeprecationWarning, match="image_shape"):
        preset = SPGNet.from_preset("spgnet_r18x1_128", num_classes=3, decoder_channels=8, input_shape=(32, 32, 3))
    assert preset.image_shape == (32, 32, 3)


def test_a_config_saved_with_input_shape_still_loads(tmp_path):
    """Configs written before the rename (key `input_shape`) load, through from_config and `.keras`."""
    model = SPGNet(3, backbones=("resnet18",), image_shape=(32, 64, 3), **TINY)
    config = model.get_config()
    config["input_shape"] = config.pop("image_shape")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # loading an old file is not the user's deprecated call
        rebuilt = SPGNet.from_config(config)
    assert rebuilt.image_shape == (32, 64, 3)
    serialized = json.loads(json.dumps(keras.saving.serialize_keras_object(model)))
    serialized["config"]["input_shape"] = serialized["config"].pop("image_shape")
    loaded = keras.saving.deserialize_keras_object(serialized, safe_mode=True)
    assert isinstance(loaded, SPGNet) and loaded.image_shape == (32, 64, 3)


def test_compile_takes_metrics_and_what_follows_by_keyword_only():
    model = SPGNet(3, backbones=("resnet18",), **TINY)
    with pytest.raises(TypeError, match="positional"):
        model.compile("sgd", "sparse_categorical_crossentropy", ["accuracy"])
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    assert isinstance(model.optimizer, keras.optimizers.SGD) and model.compiled
