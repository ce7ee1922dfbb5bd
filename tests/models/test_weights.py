import keras_cv
import numpy as np
import pytest

from spgnet_keras import SPGNet
from spgnet_keras.models.finetune import finetune_from, transfer_matching_weights
from spgnet_keras.models.imagenet import load_backbone_weights, spgnet_layer_name


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
    with pytest.raises(ValueError, match="Cannot read backbone weights"):
        load_backbone_weights(model, str(broken))


def test_imagenet_without_network_gives_a_clear_error():
    model = SPGNet(3, backbones=("resnet34",), decoder_channels=8)
    with pytest.raises(ValueError, match="No ImageNet preset"):
        load_backbone_weights(model, "imagenet")


def test_finetune_to_another_class_count_keeps_class_independent_weights(tmp_path):
    source = SPGNet(5, backbones=("resnet18", "resnet18"), decoder_channels=8)
    path = tmp_path / "five.keras"
    source.save(path)
    model, report = finetune_from(str(path), num_classes=3)
    assert model.num_classes == 3
    new = set(report.new)
    assert new == {
        "stage1_spg/logits_conv/kernel", "stage1_spg/logits_conv/bias", "stage1_spg/attention_conv/kernel",
        "stage2_classifier/kernel", "stage2_classifier/bias",
    }
    np.testing.assert_array_equal(model.get_layer("stage1_spg").transform_conv.kernel,
                                  source.get_layer("stage1_spg").transform_conv.kernel)
    np.testing.assert_array_equal(model.get_layer("stage2_upsample1").fuse_block.conv2.kernel,
                                  source.get_layer("stage2_upsample1").fuse_block.conv2.kernel)
    assert model(np.zeros((1, 64, 64, 3), "float32"))["prediction"].shape == (1, 64, 64, 3)


def test_transfer_reports_unused_weights():
    big = SPGNet(3, backbones=("resnet18", "resnet18"), decoder_channels=8)
    small = SPGNet(3, backbones=("resnet18",), decoder_channels=8)
    report = transfer_matching_weights(big, small)
    assert any(path.startswith("stage2_") for path in report.unused)
    assert not report.new or all("classifier" in p for p in report.new)


def test_every_keras_hub_preset_names_a_known_resnet():
    from spgnet_keras.models.imagenet import KERAS_HUB_PRESETS
    from spgnet_keras.models.resnet import RESNET_SPECS

    assert set(KERAS_HUB_PRESETS) <= set(RESNET_SPECS)
    assert all(name.startswith("resnet_") for name in KERAS_HUB_PRESETS.values())
