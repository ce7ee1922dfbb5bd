"""SPGNet on the plain Keras path: compile() defaults, fit(images, masks), predict on uint8,
presets with weights, unknown arguments and the README's "Use" block."""

import re
from pathlib import Path

import keras
import numpy as np
import pytest

from spgnet_keras import SPGNet
from spgnet_keras.constants import DEFAULT_STAGE_WEIGHT, IMAGENET_MEAN, IMAGENET_STD
from spgnet_keras.data import SYNTHETIC_SPEC, make_synthetic_dataset

REPO_ROOT = Path(__file__).resolve().parents[2]
NUM_CLASSES = SYNTHETIC_SPEC.num_classes


def small_model(**overrides):
    arguments = dict(backbones=("resnet18", "resnet18"), decoder_channels=16)
    return SPGNet(NUM_CLASSES, **{**arguments, **overrides})


@pytest.fixture(scope="module")
def scenes():
    images, masks = make_synthetic_dataset(8, 64, 96, seed=0)
    masks[:, :3] = 255  # ignored rows
    return images, masks


@pytest.fixture(scope="module")
def fitted(scenes):
    """The ablation preset (width 16), `compile()` with no arguments, fitted on uint8 pairs.

    Shared by the tests below: every `fit` traces a training step (tens of seconds on CI).
    """
    images, masks = scenes
    model = SPGNet.from_preset("spgnet_r18x2_128", num_classes=NUM_CLASSES, decoder_channels=16)
    model.compile()
    history = model.fit(images, masks, batch_size=4, epochs=6, verbose=0)
    return model, history


def test_compile_defaults_fit_uint8_pairs_lowers_loss_and_reports_miou(scenes, fitted):
    images, masks = scenes
    model, history = fitted
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    losses = history.history["loss"]
    assert losses[-1] < 0.8 * losses[0], losses
    assert set(history.history) >= {"prediction_loss", "stage1_loss", "prediction_miou"}
    scores = model.evaluate(images, masks[..., None], batch_size=4, verbose=0, return_dict=True)
    assert 0.0 < scores["prediction_miou"] <= 1.0
    # The total is the plain sum of the stage losses (DEFAULT_STAGE_WEIGHT = 1, paper Sec 3.4).
    assert DEFAULT_STAGE_WEIGHT == 1.0
    assert scores["loss"] == pytest.approx(scores["prediction_loss"] + scores["stage1_loss"], rel=1e-4)


def test_users_keras_loss_trains_every_output(scenes):
    images, masks = scenes
    model = small_model(decoder_channels=8)
    model.compile(
        optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=255),
        metrics=None,
    )
    classifier = model.get_layer("stage1_spg").get_weights()[0].copy()
    history = model.fit(images, masks, batch_size=4, epochs=2, verbose=0)
    assert set(history.history) == {"loss", "prediction_loss", "stage1_loss"}
    assert np.isfinite(history.history["loss"]).all()
    # The stage-1 output is supervised too, so SPG's logits conv changed.
    assert not np.allclose(model.get_layer("stage1_spg").get_weights()[0], classifier)
    # The same loss from masks with a channel axis and from a dict of targets (what fit
    # would compute; checked eagerly to spare a trace per target structure).
    batch = images[:2]
    outputs = model(batch, training=False)
    expected = float(model.compute_loss(x=batch, y=masks[:2], y_pred=outputs, training=False))
    with_channel = float(model.compute_loss(x=batch, y=masks[:2, ..., None], y_pred=outputs, training=False))
    as_dict = {name: masks[:2] for name in model.output}
    per_output = float(model.compute_loss(x=batch, y=as_dict, y_pred=outputs, training=False))
    assert np.isfinite(expected) and expected > 0
    assert with_channel == pytest.approx(expected, rel=1e-6)
    assert per_output == pytest.approx(expected, rel=1e-6)


def test_explicit_arguments_replace_defaults_and_ohem_needs_default_loss():
    model = small_model()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=[])
    assert isinstance(model.optimizer, keras.optimizers.SGD)
    with pytest.raises(ValueError, match="ohem_threshold"):
        model.compile(loss="sparse_categorical_crossentropy", ohem_threshold=0.7)
    model.compile(ohem_threshold=0.7, ohem_min_kept=10)
    losses = model._compile_config.config["loss"]
    assert all(loss.ohem_threshold == 0.7 and loss.ohem_min_kept == 10 for loss in losses.values())


def test_predict_takes_raw_rgb_any_size(scenes, fitted):
    model, _ = fitted
    image = scenes[0][:2, :45, :70]  # sides not multiples of 32
    from_uint8 = model.predict(image, verbose=0)
    from_float = model(image.astype("float32"), training=False)
    assert from_uint8["prediction"].shape == (2, 45, 70, NUM_CLASSES)
    # predict (a traced graph) and the eager call round differently: equal to float32 noise
    # relative to the logits' scale.
    scale = np.abs(from_uint8["prediction"]).max()
    np.testing.assert_allclose(from_uint8["prediction"], from_float["prediction"], rtol=1e-5, atol=1e-5 * scale)


def test_normalised_input_model_converts_to_raw_input(scenes):
    from spgnet_keras.models import with_preprocessing

    raw = scenes[0][:1].astype("float32")
    normalised = (raw - np.float32(IMAGENET_MEAN)) / np.float32(IMAGENET_STD)
    model = small_model(include_preprocessing=False)
    converted = with_preprocessing(model)
    assert converted.include_preprocessing and converted.get_layer("preprocessing") is not None
    from_raw = converted.predict(raw, verbose=0)["prediction"]
    # The conversion is exact: same weights, the normalisation is the new first layer.
    by_layer = np.asarray(converted.get_layer("preprocessing")(raw))
    np.testing.assert_array_equal(from_raw, model.predict(by_layer, verbose=0)["prediction"])
    # And that layer is (x - mean) / std: equal up to float32 rounding, which the untrained
    # network (logits of order 1e4) magnifies to ~1e-6 of its output scale.
    np.testing.assert_allclose(by_layer, normalised, rtol=1e-6, atol=1e-6)
    from_numpy = model.predict(normalised, verbose=0)["prediction"]
    np.testing.assert_allclose(from_raw, from_numpy, rtol=1e-4, atol=1e-5 * np.abs(from_numpy).max())


def test_old_keras_file_without_preprocessing_key_loads_as_raw_input_model(scenes):
    model = small_model()
    config = model.get_config()
    del config["include_preprocessing"]  # what spgnet_keras 0.1 saved
    with pytest.warns(UserWarning, match="spgnet_keras 0.1"):
        old = SPGNet.from_config(config)
    assert old.include_preprocessing


@pytest.mark.parametrize("call", ["constructor", "from_preset"])
def test_misspelled_argument_is_a_type_error_naming_it(call):
    with pytest.raises(TypeError, match="decoder_chanels"):
        if call == "constructor":
            SPGNet(3, decoder_chanels=999)
        else:
            SPGNet.from_preset("spgnet_r18x1_128", num_classes=3, decoder_chanels=999)


def test_presets_list_descriptions_and_from_preset_needs_classes_or_weights():
    assert "spgnet_r50x2_256" in SPGNet.presets
    for preset in SPGNet.presets.values():  # keras-hub's shape: metadata and config
        assert isinstance(preset["metadata"]["description"], str) and preset["metadata"]["description"]
        assert set(preset["config"]) == {"backbones", "decoder_channels"}
    with pytest.raises(ValueError, match="num_classes"):
        SPGNet.from_preset("spgnet_r18x1_128")
    with pytest.raises(ValueError, match="Unknown preset"):
        SPGNet.from_preset("spgnet_r19", num_classes=3)
    with pytest.raises(ValueError, match="not a file"):
        SPGNet.from_preset("spgnet_r18x1_128", num_classes=3, weights="no/such/file.keras")


def test_from_preset_loads_saved_weights_and_reheads_for_new_classes(tmp_path, scenes, fitted):
    trained, _ = fitted
    images = scenes[0][:2]
    expected = trained(images, training=False)["prediction"]
    trained.save(tmp_path / "trained.keras")
    trained.save_weights(tmp_path / "trained.weights.h5")
    for path in (tmp_path / "trained.keras", tmp_path / "trained.weights.h5"):
        same = SPGNet.from_preset("spgnet_r18x2_128", weights=path, decoder_channels=16)
        assert same.num_classes == NUM_CLASSES
        np.testing.assert_allclose(same(images, training=False)["prediction"], expected, rtol=1e-5, atol=1e-4)
        reheaded = SPGNet.from_preset("spgnet_r18x2_128", num_classes=3, weights=path, decoder_channels=16)
        assert reheaded.output["prediction"].shape[-1] == 3
        for name in ("stage1_stack2_block1_conv1", "stage2_upsample1"):  # class-independent: loaded
            for new, old in zip(reheaded.get_layer(name).weights, trained.get_layer(name).weights):
                np.testing.assert_array_equal(new, old)
        with pytest.raises(ValueError, match="architecture"):
            SPGNet.from_preset("spgnet_r18x2_128", num_classes=3, weights=path, decoder_channels=8)


# === The README's "Use" block runs (with tiny sizes patched in) ===

README_PATCHES = [
    ('decoder_channels=128)', 'decoder_channels=8)'),
    ('batch_size=8,\n                     crop_size=(160, 224)', 'batch_size=2,\n                     crop_size=(64, 64)'),
    ('epochs=20, steps_per_epoch=46', 'epochs=1, steps_per_epoch=2'),
    ('num_classes=5, weights="spgnet_camvid.keras")', 'num_classes=5, weights="spgnet_camvid.keras", decoder_channels=8)'),
    ('val = make_dataset("camvid", "val", root="../shared/data/camvid", batch_size=1)',
     'val = make_dataset("camvid", "val", root="../shared/data/camvid", batch_size=1).take(2)'),
]


def readme_use_blocks():
    text = (REPO_ROOT / "README.md").read_text()
    section = text[text.index("## Use"):]
    section = section[: section.index("\n## ", 4)]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_readme_use_block_runs(tmp_path, camvid_root, monkeypatch):
    blocks = readme_use_blocks()
    assert blocks, "README has no python block in its Use section"
    code = "\n".join(blocks)
    for old, new in README_PATCHES:
        assert old in code, f"README changed: patch target {old!r} not found; update README_PATCHES"
        code = code.replace(old, new)
    code = code.replace("../shared/data/camvid", str(camvid_root))
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["classes"].shape == (180, 240)
    assert (tmp_path / "exports" / "spgnet" / "1" / "saved_model.pb").is_file()
    assert namespace["finetune"].output["prediction"].shape[-1] == 5

# The JAX backend (compile defaults and fit without TensorFlow): tests/models/test_backends.py.
