import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from spgnet_keras import PRESETS, SPGNet
from spgnet_keras.constants import IMAGENET_MEAN, IMAGENET_STD
from spgnet_keras.layers import CropLike, PadToMultiple, ResizeLike
from spgnet_keras.models import ablation_arguments
from tests.helpers import assert_close_at_scale, run_model_serialization_test

SMALL = dict(decoder_channels=16, image_shape=(64, 128, 3))


def images(batch=1, height=64, width=128, seed=0):
    """RGB in [0, 255] (float32), the model's input convention."""
    return np.random.default_rng(seed).uniform(0, 255, size=(batch, height, width, 3)).astype("float32")


@pytest.mark.parametrize(
    "backbones, names",
    [
        (("resnet18",), ["prediction"]),
        (("resnet18", "resnet18"), ["prediction", "stage1"]),
        (("resnet18", "resnet18", "resnet18"), ["prediction", "stage1", "stage2"]),
        (("resnet18", "resnet50"), ["prediction", "stage1"]),
        (("resnet50", "resnet18"), ["prediction", "stage1"]),
    ],
)
def test_output_names_and_shapes(backbones, names):
    """Outputs: the named logits at the input size, float32; each image of a batch is computed
    on its own (the batch gives what each image alone gives), and different images or stages
    give different logits."""
    model = SPGNet(3, backbones=backbones, **SMALL)
    batch = images(2)
    outputs = model(batch, training=False)
    assert sorted(outputs) == sorted(names)
    alone = model(batch[1:], training=False)
    for name, value in outputs.items():
        value = np.asarray(value)
        assert value.shape == (2, 64, 128, 3) and value.dtype == "float32"
        assert np.isfinite(value).all()
        assert_close_at_scale(np.asarray(alone[name])[0], value[1])
        assert not np.allclose(value[0], value[1]), name  # the logits depend on the image
    if "stage1" in outputs:
        assert not np.allclose(outputs["stage1"], outputs["prediction"])
    assert len(model.stage_backbones) == len(backbones)


def test_later_stages_have_no_stem_and_take_spg_output_at_stride_4():
    model = SPGNet(3, backbones=("resnet18", "resnet18"), **SMALL)
    names = [layer.name for layer in model.layers]
    assert "stage1_stem_conv" in names and "stage2_stem_conv" not in names
    spg = model.get_layer("stage1_spg")
    first_block = model.get_layer("stage2_stack1_block1_conv1")
    assert spg.output[0].shape[1:] == (16, 32, 64)
    assert first_block.input.shape[1:] == (16, 32, 64)
    assert [f"stage2_csfa{i}" in names for i in range(1, 5)] == [True] * 4


def test_variable_input_size_and_traced_none_signature():
    """One trace with unknown height/width (as an export) runs every size and gives what the
    eager model gives."""
    model = SPGNet(4, backbones=("resnet18", "resnet18"), decoder_channels=8)
    fn = tf.function(lambda x: model(x, training=False),
                     input_signature=[tf.TensorSpec((None, None, None, 3), tf.float32)])
    for height, width in ((64, 96), (96, 64), (45, 70), (33, 97)):
        x = images(1, height, width)
        out, eager = fn(x), model(x, training=False)
        for name in ("prediction", "stage1"):
            assert out[name].shape == (1, height, width, 4)
            assert_close_at_scale(out[name], eager[name])


def test_any_input_size_gives_outputs_of_that_size():
    """Sides need not be multiples of 32: 45x70 in, 45x70 out (padded inside the model)."""
    model = SPGNet(3, backbones=("resnet18", "resnet18"), decoder_channels=8, image_shape=(45, 70, 3))
    assert {name: tuple(out.shape) for name, out in model.output.items()} == {
        "prediction": (None, 45, 70, 3), "stage1": (None, 45, 70, 3)}
    assert tuple(model.get_layer("pad_to_stride").output.shape) == (None, 64, 96, 3)
    outputs = model(images(2, 45, 70), training=False)
    assert {name: tuple(out.shape) for name, out in outputs.items()} == {
        "prediction": (2, 45, 70, 3), "stage1": (2, 45, 70, 3)}
    for value in outputs.values():
        assert np.isfinite(keras.ops.convert_to_numpy(value)).all()


def test_padding_is_the_mean_colour_and_outputs_are_cropped():
    """The model pads its normalised input with zeros at the bottom/right, i.e. a 0-255
    image with the ImageNet mean colour: a 45x70 image gives the top-left 45x70 of what
    the image padded with the mean colour to 64x96 gives."""
    model = SPGNet(3, backbones=("resnet18", "resnet18"), decoder_channels=8)
    x = images(1, 45, 70)
    padded = np.broadcast_to(np.float32(IMAGENET_MEAN), (1, 64, 96, 3)).copy()
    padded[:, :45, :70] = x
    small, large = model(x, training=False), model(padded, training=False)
    for name in small:
        np.testing.assert_allclose(small[name], np.asarray(large[name])[:, :45, :70], rtol=1e-5, atol=1e-5)


def test_model_normalises_pads_and_crops_with_weightless_layers():
    """Input RGB 0-255 -> "preprocessing" ((x - mean) / std, ImageNet) -> "pad_to_stride";
    each output: bilinear f"{name}_upsample" to the padded size, then cropped as `name`.
    These layers add no weights: include_preprocessing=False has the same weights."""
    model = SPGNet(3, backbones=("resnet18", "resnet18"), decoder_channels=8)
    names = [layer.name for layer in model.layers]
    assert names[:3] == ["image", "preprocessing", "pad_to_stride"]
    assert isinstance(model.get_layer("preprocessing"), keras.layers.Rescaling)
    assert isinstance(model.get_layer("pad_to_stride"), PadToMultiple)
    assert model.get_layer("pad_to_stride").multiple == 32
    for name in ("prediction", "stage1"):
        assert isinstance(model.get_layer(name), CropLike)
        assert isinstance(model.get_layer(f"{name}_upsample"), ResizeLike)
    x = images(1, 45, 70)
    np.testing.assert_allclose(model.get_layer("preprocessing")(x),
                               (x - np.float32(IMAGENET_MEAN)) / np.float32(IMAGENET_STD), rtol=1e-5, atol=1e-5)
    for name in ("preprocessing", "pad_to_stride", "prediction", "stage1"):
        assert not model.get_layer(name).trainable_weights, name

    normalised_input = SPGNet(3, backbones=("resnet18", "resnet18"), decoder_channels=8,
                              include_preprocessing=False)
    assert [layer.name for layer in normalised_input.layers][:2] == ["image", "pad_to_stride"]
    assert [tuple(w.shape) for w in normalised_input.trainable_weights] == [
        tuple(w.shape) for w in model.trainable_weights]
    assert model.count_params() == normalised_input.count_params()


def test_gradients_reach_both_encoders():
    model = SPGNet(3, backbones=("resnet18", "resnet18"), **SMALL)
    x = images(2)
    labels = np.random.default_rng(1).integers(0, 3, size=(2, 64, 128))
    with tf.GradientTape() as tape:
        out = model(x, training=True)
        loss = sum(
            tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, v, from_logits=True))
            for v in out.values()
        )
    names = ["stage1_stack1_block1_conv1", "stage2_stack4_block2_conv2", "stage2_csfa1", "stage1_spg"]
    variables = [model.get_layer(n).trainable_weights[0] for n in names]
    grads = tape.gradient(loss, variables)
    for name, grad in zip(names, grads):
        assert grad is not None and float(tf.reduce_sum(tf.abs(grad))) > 0, name


def test_prediction_only_gradient_reaches_first_encoder_through_spg():
    model = SPGNet(3, backbones=("resnet18", "resnet18"), **SMALL)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(model(images(), training=True)["prediction"] ** 2)
    grad = tape.gradient(loss, model.get_layer("stage1_stem_conv").kernel)
    assert float(tf.reduce_sum(tf.abs(grad))) > 0


@pytest.mark.parametrize("variant", ["no_spg", "spg_sum", "spg_softmax", "spg_sigmoid_no_identity",
                                     "spg_sigmoid_no_supervision", "se", "ge", "one_stage"])
def test_ablation_variants_build(variant):
    """Each Table 3/4 variant builds what its arguments say (the unsupervised transitions are
    compared in test_recipe_fidelity.py); SPG variants change the prediction of the baseline
    with the same weights."""
    keras.utils.set_random_seed(0)
    args = {**ablation_arguments(variant), **SMALL}
    model = SPGNet(3, **args)
    outputs = model(images(), training=False)
    supervised = variant not in ("spg_sigmoid_no_supervision", "one_stage")
    assert ("stage1" in outputs) == supervised
    if args.get("guidance", "spg") == "spg" and variant != "one_stage":
        spg = model.guidance_layer(1)
        assert (spg.excitation, spg.identity, spg.supervision) == (
            args.get("spg_excitation", "sigmoid"), args.get("spg_identity", True), supervised)
    if variant in ("spg_sum", "spg_softmax", "spg_sigmoid_no_identity"):  # another computation, same weights
        baseline = SPGNet(3, **{**ablation_arguments("spg_sigmoid"), **SMALL})
        baseline.set_weights(model.get_weights())
        assert not np.allclose(baseline(images(), training=False)["prediction"], outputs["prediction"])


def test_model_serialization(tmp_path):
    model = SPGNet(3, backbones=("resnet18", "resnet18"), decoder_channels=8, image_shape=(None, None, 3),
                   guidance="spg", spg_excitation="softmax")
    loaded = run_model_serialization_test(model, images(1, 45, 70), tmp_path)  # padded and cropped inside
    assert loaded.get_config() == model.get_config()


def test_se_ge_model_serialization(tmp_path):
    for guidance in ("se", "ge"):
        model = SPGNet(3, backbones=("resnet18", "resnet18"), decoder_channels=8, guidance=guidance,
                       name=f"spgnet_{guidance}")
        run_model_serialization_test(model, images(1, 64, 64), tmp_path)


def test_every_preset_has_metadata_citing_its_tables():
    """One table (keras-hub's `backbone_presets` shape): each entry's metadata agrees with its config."""
    assert SPGNet.presets is PRESETS
    for name, preset in PRESETS.items():
        metadata, config = preset["metadata"], preset["config"]
        stages = len(config["backbones"])
        assert metadata["num_stages"] == stages
        assert metadata["description"].startswith(f"{stages} stage"), name
        cited = re.search(r"\(Tables? ([^)]*)\)", metadata["description"]).group(1)
        assert metadata["tables"] and all(str(table) in cited for table in metadata["tables"]), name
        assert f"width {config['decoder_channels']}" in metadata["description"], name


def test_from_preset_builds_the_preset_with_overrides():
    model = SPGNet.from_preset("spgnet_r18x2_128", num_classes=5, decoder_channels=8)
    assert model.stage_backbones == ("resnet18", "resnet18") and model.decoder_channels == 8


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(num_classes=3, backbones=("resnet19",)), "Unknown backbone 'resnet19'"),
        (dict(num_classes=0), "num_classes"),
        (dict(num_classes=-2), "num_classes"),
        (dict(num_classes=3, backbones=()), "at least one"),
        (dict(num_classes=3, backbones="resnet18", num_stages=0), "num_stages"),
        (dict(num_classes=3, image_shape=(0, 128, 3)), "height must be a positive integer"),
        (dict(num_classes=3, image_shape=(-32, 128, 3)), "height must be a positive integer"),
        (dict(num_classes=3, image_shape=(64.0, 128, 3)), "height must be a positive integer"),
        (dict(num_classes=3, image_shape=(True, 128, 3)), "height must be a positive integer"),
        (dict(num_classes=3, image_shape=(64, 0, 3)), "width must be a positive integer"),
        (dict(num_classes=3, image_shape=(64, "70", 3)), "width must be a positive integer"),
        (dict(num_classes=3, image_shape=(64, 64)), "image_shape"),
        (dict(num_classes=3, decoder_channels=0), "decoder_channels"),
        (dict(num_classes=3, guidance="attention"), "guidance"),
        (dict(num_classes=3, spg_excitation="relu"), "spg_excitation"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SPGNet(**kwargs)


def test_unknown_preset():
    with pytest.raises(ValueError, match="Unknown preset"):
        SPGNet.from_preset("spgnet_r9000", num_classes=3)


def test_sync_batchnorm_follows_strategy():
    model = SPGNet(3, backbones=("resnet18",), decoder_channels=8)
    assert not model.get_layer("stage1_stem_bn").synchronized
    model = SPGNet(3, backbones=("resnet18",), decoder_channels=8, sync_batchnorm=True)
    assert model.get_layer("stage1_stem_bn").synchronized
    assert model.get_layer("stage1_upsample1").encoder_block.bn1.synchronized
