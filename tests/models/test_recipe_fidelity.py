"""The paper's recipe, faithfully (issue 18): weight decay and stage weights of the recipe
configs, which ablation rows have a stage-1 loss, and the test-time pooling option."""

from pathlib import Path

import keras
import numpy as np
import pytest

from spgnet_keras import SPGNet
from spgnet_keras.config import EXPERIMENTS, LossConfig, OptimizerConfig, experiment_config, load_config
from spgnet_keras.constants import DEFAULT_STAGE_WEIGHT
from spgnet_keras.layers import GatherExciteTransition, SqueezeExciteTransition, StageTransition
from spgnet_keras.layers.pooling import ContextPooling, crop_pool_size, crop_sized_average
from spgnet_keras.models import ablation_arguments
from spgnet_keras.optimizers import KernelDecaySGD
from spgnet_keras.training import recipe_compile_arguments
from tests.helpers import assert_close_at_scale, run_layer_serialization_test

CONFIGS = Path(__file__).resolve().parents[2] / "spgnet_keras" / "configs"
TINY = dict(decoder_channels=8, image_shape=(64, 96, 3))


def image(seed=0, height=64, width=96):
    return np.random.default_rng(seed).uniform(0, 255, (1, height, width, 3)).astype("float32")


def dict_output_model():
    inputs = keras.Input((8, 8, 3))
    return keras.Model(inputs, {"prediction": keras.layers.Conv2D(3, 1)(inputs),
                                "stage1": keras.layers.Conv2D(3, 1)(inputs)})


# ------------------------------------------------------------------ recipe configs
@pytest.mark.parametrize("source", [*sorted(EXPERIMENTS), "cityscapes_paper.yaml", "camvid_cpu.yaml"])
def test_recipes_use_coupled_decay_on_every_variable_and_a_plain_stage_sum(source):
    config = load_config(CONFIGS / source) if source.endswith(".yaml") else experiment_config(source)
    assert (config.optimizer.weight_decay_mode, config.optimizer.decay_variables) == ("coupled", "all")
    assert (config.optimizer.weight_decay, config.optimizer.momentum) == (1e-4, 0.9)  # Sec 4.2
    assert config.loss.stage_weight == DEFAULT_STAGE_WEIGHT == 1.0  # Sec 3.4: no weights given
    arguments = recipe_compile_arguments(dict_output_model(), config.optimizer, config.loss, max_steps=10)
    optimizer = arguments["optimizer"]
    assert isinstance(optimizer, KernelDecaySGD)
    assert (optimizer.weight_decay_mode, optimizer.decay_min_rank) == ("coupled", 0)
    assert arguments["loss_weights"] == {"prediction": 1.0, "stage1": 1.0}


def test_decoupled_decay_and_stage_weight_04_remain_options(tmp_path):
    path = tmp_path / "options.yaml"
    path.write_text("experiment: camvid_cpu\noptimizer: {weight_decay_mode: decoupled, decay_variables: kernels}\n"
                    "loss: {stage_weight: 0.4}\n")
    config = load_config(path)
    arguments = recipe_compile_arguments(dict_output_model(), config.optimizer, config.loss, max_steps=10)
    assert (arguments["optimizer"].weight_decay_mode, arguments["optimizer"].decay_min_rank) == ("decoupled", 2)
    assert arguments["loss_weights"] == {"prediction": 1.0, "stage1": 0.4}
    assert OptimizerConfig().weight_decay_mode == "coupled" and LossConfig().stage_weight == 1.0


@pytest.mark.parametrize("key, value", [("weight_decay_mode", "l2"), ("decay_variables", "biases")])
def test_bad_decay_settings_are_named(tmp_path, key, value):
    path = tmp_path / "bad.yaml"
    path.write_text(f"optimizer: {{{key}: {value}}}\n")
    with pytest.raises(ValueError, match=f"optimizer.{key} must be one of"):
        load_config(path)


# ------------------------------------------------------------------ ablation rows
# Stage-1 loss per Table 3/4 row: every two-stage row is deep-supervised at stage 1 except
# "SPG (sigmoid), no supervision" (Sup. x). In no_spg/se/ge a 1x1 classifier on x_d is
# supervised but feeds nothing; in the SPG rows the supervised logits x_l drive the attention.
STAGE1_LOSS = {"one_stage": False, "no_spg": True, "spg_sum": True, "spg_softmax": True, "spg_sigmoid": True,
               "spg_sigmoid_no_identity": True, "spg_sigmoid_no_supervision": False, "se": True, "ge": True}


def test_stage1_loss_rows_are_stated_for_every_variant():
    from spgnet_keras.models import ABLATIONS

    assert set(STAGE1_LOSS) == set(ABLATIONS)
    for variant, supervised in STAGE1_LOSS.items():
        arguments = ablation_arguments(variant)
        two_stages = len(arguments["backbones"]) == 2
        assert supervised == (two_stages and arguments.get("stage_supervision", True)), variant


def test_unsupervised_transitions_differ_but_supervise_stage1_alike():
    """no_spg, SE and GE: each has the supervised stage-1 classifier; their transitions are
    different layers with different weights, and change the prediction of otherwise equal
    models; "no supervision" SPG has no stage-1 output."""
    models = {}
    for variant in ("no_spg", "se", "ge", "spg_sigmoid_no_supervision"):
        keras.utils.set_random_seed(0)
        models[variant] = SPGNet(5, **{**ablation_arguments(variant), **TINY})
    expected = {"no_spg": StageTransition, "se": SqueezeExciteTransition, "ge": GatherExciteTransition}
    reference = models["no_spg"]
    predictions, transition_weights = {}, {}
    for variant, cls in expected.items():
        model = models[variant]
        assert sorted(model.output) == ["prediction", "stage1"], variant
        assert model.get_layer("stage1_classifier").kernel.shape == (1, 1, 8, 5)
        transition = model.guidance_layer(1)
        assert type(transition) is cls, variant
        transition_weights[variant] = {w.path.split("/", 1)[1] for w in transition.weights}
        for layer in model.layers:  # all but the transition: the baseline's weights
            if layer.name != transition.name and layer.weights:
                layer.set_weights(reference.get_layer(layer.name).get_weights())
        predictions[variant] = np.asarray(model(image(), training=False)["prediction"])
    assert sorted(models["spg_sigmoid_no_supervision"].output) == ["prediction"]
    assert {"squeeze_conv/kernel", "excite_conv/kernel", "transform_conv/kernel"} <= transition_weights["se"]
    assert {"gather_conv1/kernel", "transform_conv/kernel"} <= transition_weights["ge"]
    assert not {"transform_conv/kernel", "squeeze_conv/kernel"} & transition_weights["no_spg"]
    for a, b in (("no_spg", "se"), ("no_spg", "ge"), ("se", "ge")):
        assert np.abs(predictions[a] - predictions[b]).max() > 1e-3, (a, b)


# ------------------------------------------------------------------ test-time pooling
def numpy_crop_pooling(x, pool):
    """In-Place ABN: avg_pool2d(kernel=min(pool, size), stride=1), then replicate padding."""
    _, height, width, _ = x.shape
    ph, pw = min(pool[0], height), min(pool[1], width)
    valid = np.stack([np.stack([x[:, i:i + ph, j:j + pw].mean(axis=(1, 2)) for j in range(width - pw + 1)], 1)
                      for i in range(height - ph + 1)], 1)
    top, left = (ph - 1) // 2, (pw - 1) // 2
    return np.pad(valid, [(0, 0), (top, height - valid.shape[1] - top), (left, width - valid.shape[2] - left),
                          (0, 0)], mode="edge")


@pytest.mark.parametrize("pool", [(3, 4), (2, 2), (5, 7), (9, 3)])
def test_crop_sized_average_matches_in_place_abn(pool):
    x = np.random.default_rng(0).normal(size=(2, 5, 7, 3)).astype("float32")
    np.testing.assert_allclose(crop_sized_average(x, pool), numpy_crop_pooling(x, pool), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("pool", [(3, 4), (5, 7), (9, 3)])
def test_crop_sized_average_of_a_map_of_unknown_size_matches_too(pool):
    """A map whose size is unknown while tracing (a SavedModel taking any size) takes the
    cumulative-sum path: the same means as the pooling path and In-Place ABN's."""
    import tensorflow as tf

    x = np.random.default_rng(1).normal(size=(2, 5, 7, 3)).astype("float32")
    traced = tf.function(lambda t: crop_sized_average(t, pool),
                         input_signature=[tf.TensorSpec((None, None, None, 3), tf.float32)])
    np.testing.assert_allclose(traced(x).numpy(), numpy_crop_pooling(x, pool), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(traced(x).numpy(), crop_sized_average(x, pool), rtol=1e-5, atol=1e-5)


def test_context_pooling_is_global_in_training_and_round_trips(tmp_path):
    x = np.random.default_rng(0).normal(size=(2, 5, 7, 3)).astype("float32")
    layer = ContextPooling("crop", (3, 4))
    np.testing.assert_allclose(layer(x, training=True), x.mean(axis=(1, 2), keepdims=True), rtol=1e-5)
    run_layer_serialization_test(layer, x, tmp_path)
    assert crop_pool_size((160, 224), 32) == (5, 7) and crop_pool_size((180, 240), 4) == (48, 64)
    with pytest.raises(ValueError, match="pool_size"):
        ContextPooling("crop")
    with pytest.raises(ValueError, match="mode"):
        ContextPooling("max")


def test_squeeze_excite_crop_pooling_at_inference_only(tmp_path):
    x = np.random.default_rng(0).normal(size=(1, 8, 12, 16)).astype("float32")
    global_layer = SqueezeExciteTransition(output_channels=4)
    crop_layer = SqueezeExciteTransition(output_channels=4, test_pooling="crop", pool_size=(4, 4))
    global_layer(x)
    crop_layer(x)
    crop_layer.set_weights(global_layer.get_weights())
    np.testing.assert_allclose(crop_layer(x, training=True), global_layer(x, training=True), rtol=1e-5)
    assert np.abs(np.asarray(crop_layer(x)) - np.asarray(global_layer(x))).max() > 1e-4
    run_layer_serialization_test(crop_layer, x, tmp_path)


def test_spgnet_test_pooling_option():
    """Crop pooling with a crop at least the image is global pooling; a smaller crop changes
    inference only; the option and crop are in the config."""
    keras.utils.set_random_seed(0)
    base = SPGNet(5, backbones=("resnet18",), **TINY)
    assert base.get_config()["test_pooling"] == "global" and base.get_config()["test_pooling_crop"] is None
    x = image()
    reference = np.asarray(base(x, training=False)["prediction"])
    models = {}
    for crop in ((64, 96), (32, 32)):
        models[crop] = SPGNet.from_config({**base.get_config(), "test_pooling": "crop",
                                           "test_pooling_crop": list(crop)})
        models[crop].set_weights(base.get_weights())
        assert models[crop].get_config()["test_pooling_crop"] == list(crop)
        assert isinstance(models[crop].get_layer("stage1_gap"), ContextPooling)
    whole, small = (np.asarray(models[c](x, training=False)["prediction"]) for c in ((64, 96), (32, 32)))
    assert_close_at_scale(whole, reference)
    assert np.abs(small - reference).max() > 1e-3
    # Training (which also updates BatchNorm statistics, hence last) pools globally.
    np.testing.assert_allclose(models[(32, 32)](x, training=True)["prediction"], base(x, training=True)["prediction"],
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("arguments, message", [
    (dict(test_pooling="window"), "test_pooling"),
    (dict(test_pooling="crop"), "test_pooling_crop"),
    (dict(test_pooling="crop", test_pooling_crop=[0, 32]), "test_pooling_crop"),
])
def test_bad_test_pooling_arguments(arguments, message):
    with pytest.raises(ValueError, match=message):
        SPGNet(5, backbones=("resnet18",), **TINY, **arguments)


def test_recipe_models_pool_crop_sized_at_test_time_unless_told_otherwise():
    """`spgnet train` knows the crop: its models use In-Place ABN's test-time pooling
    (docs/benchmarks.md, "Test-time pooling"); an explicit choice in the config wins."""
    from spgnet_keras.config import ModelConfig
    from spgnet_keras.training import build_model

    model = build_model(ModelConfig(arguments=dict(TINY)), 5, crop_size=[64, 96])
    assert model.test_pooling == "crop" and tuple(model.test_pooling_crop) == (64, 96)
    assert isinstance(model.get_layer("stage1_gap"), ContextPooling)
    kept = build_model(ModelConfig(arguments={**TINY, "test_pooling": "global"}), 5, crop_size=[64, 96])
    assert kept.test_pooling == "global" and kept.test_pooling_crop is None
    assert build_model(ModelConfig(arguments=dict(TINY)), 5).test_pooling == "global"  # no crop known
