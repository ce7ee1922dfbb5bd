import keras_cv
import numpy as np
import pytest

from spgnet_keras import SPGNet
from spgnet_keras.models.imagenet import load_backbone_weights, spgnet_layer_name
from spgnet_keras.models.weights import copy_matching_weights, copy_weights


def keras_cv_resnet18():
    return keras_cv.models.ResNetBackbone(
        stackwise_filters=[64, 128, 256, 512], stackwise_blocks=[2, 2, 2, 2], stackwise_strides=[1, 2, 2, 2],
        block_type="basic_block", input_shape=(None, None, 3), include_rescaling=False,
    )


def test_layer_name_mapping():
    assert spgnet_layer_name("conv1_conv", 1) == "stage1_stem_conv"
    assert spgnet_layer_name("conv1_bn", 2) is None  # later stages have no stem
    assert spgnet_layer_name("v2_stack_1_block1_0_conv", 2) == "stage2_stack2_block1_shortcut_conv"
    assert spgnet_layer_name("v2_stack_3_block2_2_bn", 1) == "stage1_stack4_block2_bn2"
    assert spgnet_layer_name("stack0_block0_3_conv", 1, block_offset=1) == "stage1_stack1_block1_conv3"


def test_keras_cv_resnet_file_loads_into_every_stage(tmp_path):
    resnet = keras_cv_resnet18()
    rng = np.random.default_rng(0)
    resnet.set_weights([rng.normal(size=w.shape).astype("float32") for w in resnet.get_weights()])
    path = tmp_path / "resnet18.keras"
    resnet.save(path)
    model = SPGNet(3, backbones=("resnet18", "resnet18"), decoder_channels=8)
    report = load_backbone_weights(model, str(path))
    np.testing.assert_array_equal(model.get_layer("stage1_stem_conv").kernel, resnet.get_layer("conv1_conv").kernel)
    for stage in (1, 2):
        np.testing.assert_array_equal(
            model.get_layer(f"stage{stage}_stack3_block2_conv2").kernel,
            resnet.get_layer("v2_stack_2_block2_2_conv").kernel,
        )
        np.testing.assert_array_equal(
            model.get_layer(f"stage{stage}_stack2_block1_shortcut_bn").moving_variance,
            resnet.get_layer("v2_stack_1_block1_0_bn").moving_variance,
        )
    assert "stage2_stem_conv" not in report.copied and len(report.copied) > 40


def test_wrong_depth_names_the_layer_and_shapes(tmp_path):
    model = SPGNet(3, backbones=("resnet50",), decoder_channels=8)
    with pytest.raises(ValueError, match=r"Shape mismatch for layer 'stage1_stack1_block1_conv1'.*\(1, 1, 64, 64\).*\(3, 3, 64, 64\)"):
        load_backbone_weights(model, keras_cv_resnet18())


def test_bad_weight_sources(tmp_path):
    model = SPGNet(3, backbones=("resnet18",), decoder_channels=8)
    with pytest.raises(ValueError, match="does not exist"):
        load_backbone_weights(model, str(tmp_path / "missing.keras"))
    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="Cannot read the backbone weights"):
        load_backbone_weights(model, str(broken))


def test_imagenet_without_network_gives_a_clear_error():
    model = SPGNet(3, backbones=("resnet34",), decoder_channels=8)
    with pytest.raises(ValueError, match="No ImageNet preset"):
        load_backbone_weights(model, "imagenet")


CLASS_DEPENDENT = {
    "stage1_spg/logits_conv/kernel", "stage1_spg/logits_conv/bias", "stage1_spg/attention_conv/kernel",
    "stage2_classifier/kernel", "stage2_classifier/bias",
}


def test_from_preset_to_another_class_count_keeps_class_independent_weights(tmp_path):
    """Fine-tuning path: `from_preset(weights=saved .keras, num_classes=other)` copies every
    variable that does not depend on the class count and leaves exactly the class-dependent
    ones (classifiers, SPG's logits and attention convs) as initialised."""
    source = SPGNet(5, backbones=("resnet18", "resnet18"), decoder_channels=8)
    path = tmp_path / "five.keras"
    source.save(path)
    model = SPGNet.from_preset("spgnet_r18x2_128", num_classes=3, weights=str(path), decoder_channels=8)
    assert model.num_classes == 3
    sources = {v.path: v.numpy() for v in source.weights}
    new = {v.path for v in model.weights if v.shape != sources[v.path].shape}
    assert new == CLASS_DEPENDENT
    for variable in model.weights:
        if variable.path not in new:
            np.testing.assert_array_equal(variable.numpy(), sources[variable.path], err_msg=variable.path)
    assert model(np.zeros((1, 64, 64, 3), "float32"))["prediction"].shape == (1, 64, 64, 3)


def test_lenient_copy_reports_new_and_unused_weights():
    big = SPGNet(3, backbones=("resnet18", "resnet18"), decoder_channels=8)
    small = SPGNet(4, backbones=("resnet18",), decoder_channels=8)
    report = copy_matching_weights(big, small)
    assert any(path.startswith("stage2_") for path in report.unused)
    assert set(report.new) == {"stage1_classifier/kernel", "stage1_classifier/bias"}  # 4 classes, not 3
    assert report.summary() == f"{len(report.copied)} copied, 2 left as initialised, {len(report.unused)} unused"
    np.testing.assert_array_equal(small.get_layer("stage1_stem_conv").kernel, big.get_layer("stage1_stem_conv").kernel)


def test_strict_copy_names_the_variable_that_differs():
    model = SPGNet(3, backbones=("resnet18",), decoder_channels=8)
    with pytest.raises(ValueError, match=r"'stage1_classifier/kernel' has shape \(1, 1, 8, 5\) in the source"):
        copy_weights(SPGNet(5, backbones=("resnet18",), decoder_channels=8), model)
    with pytest.raises(ValueError, match="has no variable 'stage1_spg/.*': it is another architecture"):
        copy_weights(model, SPGNet(3, backbones=("resnet18", "resnet18"), decoder_channels=8))
    with pytest.raises(ValueError, match="has 5 variables this model lacks, e.g. 'stage1_head_"):
        copy_weights(model, SPGNet(3, backbones=("resnet18",), decoder_channels=8, head_conv=False))
    other = SPGNet(3, backbones=("resnet18",), decoder_channels=8)
    assert copy_weights(other, model) is model
    np.testing.assert_array_equal(model.get_layer("stage1_classifier").kernel, other.get_layer("stage1_classifier").kernel)


def test_every_keras_hub_preset_names_a_known_resnet():
    from spgnet_keras.models.imagenet import KERAS_HUB_PRESETS
    from spgnet_keras.models.resnet import RESNET_SPECS

    assert set(KERAS_HUB_PRESETS) <= set(RESNET_SPECS)
    assert all(name.startswith("resnet_") for name in KERAS_HUB_PRESETS.values())
