"""Classes and colours travel with the model: `.keras`, re-heading, presets from a path, the
SavedModel's metadata; and `from_preset` names the argument a saved model differs in."""

import json
import re

import keras
import numpy as np
import pytest

from spgnet_keras import SPGNet

NAMES = ("sky", "road", "car")
PALETTE = ((70, 130, 180), (128, 64, 128), (0, 0, 142))


def small(num_classes=3, **kwargs):
    return SPGNet(num_classes, backbones=("resnet18",), decoder_channels=8, **kwargs)


def test_class_names_and_palette_round_trip_through_keras_files(tmp_path):
    model = small(class_names=NAMES, palette=PALETTE)
    assert model.get_config()["class_names"] == list(NAMES)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert loaded.class_names == NAMES and loaded.palette == PALETTE
    assert small().class_names is None and small().get_config()["palette"] is None


@pytest.mark.parametrize("kwargs, message", [
    (dict(class_names=("a", "b")), "class_names: 2 names for 3 classes"),
    (dict(class_names=("a", "a", "b")), "the name 'a' is given to more than one class"),
    (dict(palette=((0, 0, 0),) * 2), "palette: 2 colours for 3 classes"),
    (dict(palette=((0, 0, 256),) * 3), "colour values must be integers in 0..255"),
])
def test_bad_class_names_or_palette_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        small(**kwargs)


def test_from_preset_takes_a_saved_model_or_preset_folder_and_re_heads_it(tmp_path):
    model = small(class_names=NAMES, palette=PALETTE)
    model.save(tmp_path / "m.keras")
    same = SPGNet.from_preset(tmp_path / "m.keras")
    assert same.num_classes == 3 and same.class_names == NAMES and same.decoder_channels == 8
    np.testing.assert_array_equal(same.get_layer("stage1_classifier").kernel, model.get_layer("stage1_classifier").kernel)
    reheaded = SPGNet.from_preset(str(tmp_path / "m.keras"), num_classes=2, class_names=("bg", "fg"))
    assert reheaded.class_names == ("bg", "fg") and reheaded.palette is None  # new head, new names
    np.testing.assert_array_equal(reheaded.get_layer("stage1_stem_conv").kernel, model.get_layer("stage1_stem_conv").kernel)
    assert SPGNet.from_preset(tmp_path / "m.keras", num_classes=5).class_names is None

    model.save_to_preset(tmp_path / "preset")
    assert sorted(p.name for p in (tmp_path / "preset").iterdir()) == ["config.json", "metadata.json",
                                                                        "model.weights.h5"]
    with pytest.raises(ValueError, match="already holds a preset"):
        model.save_to_preset(tmp_path / "preset")
    folder = SPGNet.from_preset(tmp_path / "preset")
    assert folder.class_names == NAMES
    np.testing.assert_array_equal(folder.get_weights()[0], model.get_weights()[0])
    with pytest.raises(ValueError, match="loads the weights saved there"):
        SPGNet.from_preset(tmp_path / "m.keras", weights="imagenet")


def test_a_mismatched_saved_model_is_reported_by_its_arguments(tmp_path):
    small().save(tmp_path / "m.keras")
    message = ("is another architecture than the model asked for: backbones=['resnet18'] in the saved model, "
               "['resnet18', 'resnet18'] here; decoder_channels=8 in the saved model, 128 here. Pass the saved "
               "model's arguments, or use the saved model itself as the preset")
    with pytest.raises(ValueError, match=re.escape(message)):
        SPGNet.from_preset("spgnet_r18x2_128", num_classes=3, weights=str(tmp_path / "m.keras"))


def test_the_saved_model_exposes_the_class_names(tmp_path):
    from spgnet_keras.export import export_saved_model

    model = small(class_names=NAMES, palette=PALETTE)
    folder = export_saved_model(model, tmp_path / "spgnet" / "1")
    metadata = json.loads((folder / "assets.extra" / "spgnet_export.json").read_text())
    assert metadata["class_names"] == list(NAMES) and metadata["palette"] == [list(c) for c in PALETTE]
    assert metadata["class_names_given"] is True and metadata["num_classes"] == 3


def test_guided_attention_takes_class_names_from_the_model():
    from spgnet_keras.visualization import guided_attention_maps

    model = SPGNet(3, backbones=("resnet18", "resnet18"), decoder_channels=16, class_names=NAMES)
    image = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    maps = guided_attention_maps(model, image, ["car", "sky"])
    assert maps.shape == (2, 40, 56) and np.isfinite(maps).all()
    with pytest.raises(ValueError, match="Unknown class name 'bus'"):
        guided_attention_maps(model, image, ["bus"])
