"""Colour maps, overlays, guided attention (Sec 4.5), confusion-matrix and training-curve plots."""

import json
import types

import keras
import numpy as np
import pytest
import tensorflow as tf
from matplotlib.figure import Figure
from PIL import Image

from spgnet_keras import SPGNet
from spgnet_keras.constants import IMAGENET_MEAN
from spgnet_keras.visualization import (
    attention_figure,
    attention_matrix,
    colorize,
    default_palette,
    guided_attention_maps,
    overlay,
    plot_confusion_matrix,
    plot_training_curves,
    read_csv_log,
    resolve_palette,
    save_figure,
    top_attention_channels,
)

NUM_CLASSES, CHANNELS = 4, 16
HEIGHT, WIDTH = 50, 70


# ---------------------------------------------------------------- palettes and colours


def test_colorize_and_overlay():
    palette = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    class_map = np.array([[0, 1], [2, 255]])
    colours = colorize(class_map, palette)
    assert colours.dtype == np.uint8 and colours.shape == (2, 2, 3)
    np.testing.assert_array_equal(colours.reshape(-1, 3), [(255, 0, 0), (0, 255, 0), (0, 0, 255), (0, 0, 0)])
    image = np.full((2, 2, 3), 100, np.uint8)
    np.testing.assert_array_equal(overlay(image, class_map, palette, alpha=0.0), image)
    full = overlay(image, class_map, palette, alpha=1.0)
    np.testing.assert_array_equal(full[:1], colours[:1])
    np.testing.assert_array_equal(full[1, 1], (100, 100, 100))  # ignore label keeps the image
    np.testing.assert_array_equal(overlay(image, class_map, palette, alpha=0.5)[0, 0], (178, 50, 50))
    with pytest.raises(ValueError, match="sizes differ"):
        overlay(image[:1], class_map, palette)
    with pytest.raises(ValueError, match="alpha"):
        overlay(image, class_map, palette, alpha=1.5)


def test_resolve_palette(tmp_path):
    assert resolve_palette("cityscapes").shape == (19, 3)
    assert tuple(resolve_palette("cityscapes")[0]) == (128, 64, 128)  # road
    assert resolve_palette("camvid").shape == (11, 3)
    assert len({tuple(c) for c in default_palette(30)}) == 30
    (tmp_path / "meta.json").write_text(json.dumps({"classes": ["a", "b"], "palette": [[1, 2, 3], [4, 5, 6]]}))
    np.testing.assert_array_equal(resolve_palette(tmp_path / "meta.json"), [[1, 2, 3], [4, 5, 6]])
    (tmp_path / "colours.txt").write_text("# r g b\n10 20 30\n40,50,60\n")
    np.testing.assert_array_equal(resolve_palette(str(tmp_path / "colours.txt")), [[10, 20, 30], [40, 50, 60]])
    with pytest.raises(ValueError, match="2 colours"):
        resolve_palette(tmp_path / "meta.json", num_classes=3)
    with pytest.raises(ValueError, match="existing file"):
        resolve_palette("no-such-palette")
    (tmp_path / "bad.txt").write_text("1 2 300\n")
    with pytest.raises(ValueError, match="0..255"):
        resolve_palette(tmp_path / "bad.txt")


# ---------------------------------------------------------------- guided attention


@pytest.fixture(scope="module")
def spgnet():
    keras.utils.set_random_seed(21)
    model = SPGNet(NUM_CLASSES, backbones=("resnet18", "resnet18"), decoder_channels=CHANNELS)
    # Hand-set C x D attention weights: class 2 prefers channels 7 > 3 > 11 > the rest.
    layer = model.guidance_layer(1)
    kernel = np.random.default_rng(0).uniform(-1.0, 0.5, (1, 1, NUM_CLASSES, CHANNELS)).astype(np.float32)
    kernel[0, 0, 2, [7, 3, 11]] = [3.0, 2.0, 1.0]
    layer.attention_conv.kernel.assign(kernel)
    return model


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(4).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)


def manual_attention(model, image, channels):
    """Independent reference: the RGB 0-255 image padded with the ImageNet mean colour (0
    after the model's normalisation), x_l and m from the layer's weights in numpy, then the
    l2 norm over `channels`, bilinear x4 upsampling of the padded map, crop, min-max."""
    layer = model.guidance_layer(1)
    padded = np.empty((1, 64, 96, 3), np.float32)
    padded[...] = np.float32(IMAGENET_MEAN)
    padded[0, :HEIGHT, :WIDTH] = image
    x_d = np.asarray(keras.Model(model.input, layer.input)(padded, training=False))[0]
    logits_kernel, logits_bias = (np.asarray(w) for w in layer.logits_conv.weights)
    attention_kernel, attention_bias = (np.asarray(w) for w in layer.attention_conv.weights)
    x_l = x_d @ logits_kernel[0, 0] + logits_bias
    m = 0.5 * (1.0 + np.tanh((x_l @ attention_kernel[0, 0] + attention_bias) / 2.0))  # sigmoid
    norm = np.sqrt((m[..., channels] ** 2).sum(-1))
    up = tf.image.resize(norm[None, ..., None], (64, 96), method="bilinear").numpy()[0, :HEIGHT, :WIDTH, 0]
    return (up - up.min()) / (up.max() - up.min())


def test_attention_matrix_and_top_channels(spgnet):
    weights = attention_matrix(spgnet)
    assert weights.shape == (NUM_CLASSES, CHANNELS)
    np.testing.assert_array_equal(top_attention_channels(weights, 2, 3), [7, 3, 11])
    assert len(top_attention_channels(weights, 0)) == 15
    with pytest.raises(ValueError, match="top_k"):
        top_attention_channels(weights, 0, 17)


def test_guided_attention_shape_range_and_channels(spgnet, image):
    maps = guided_attention_maps(spgnet, image, [2, 0, 1], top_k=3)
    assert maps.shape == (3, HEIGHT, WIDTH) and maps.dtype == np.float32
    assert maps.min() >= 0.0 and maps.max() <= 1.0
    for heat in maps:
        assert heat.min() == 0.0 and heat.max() == pytest.approx(1.0)
    expected = manual_attention(spgnet, image, [7, 3, 11])
    np.testing.assert_allclose(maps[0], expected, atol=1e-4)
    # The choice of channels matters: other channels give a different map.
    other = manual_attention(spgnet, image, [0, 1, 2])
    assert np.abs(maps[0] - other).max() > 0.05
    # Default: the paper's 15 channels; names resolved with class_names; absolute scale.
    default = guided_attention_maps(spgnet, image, ["c2"], class_names=["c0", "c1", "c2", "c3"])
    assert default.shape == (1, HEIGHT, WIDTH) and 0.0 <= default.min() and default.max() <= 1.0
    top15 = list(top_attention_channels(attention_matrix(spgnet), 2, 15))
    np.testing.assert_allclose(default[0], manual_attention(spgnet, image, top15), atol=1e-4)
    absolute = guided_attention_maps(spgnet, image, [2], normalization="absolute")
    assert 0.0 < absolute.min() and absolute.max() < 1.0
    # Float images are RGB 0-255 too, like uint8.
    np.testing.assert_array_equal(guided_attention_maps(spgnet, image.astype(np.float32), [2, 0, 1], top_k=3), maps)


def test_guided_attention_errors(spgnet, image):
    with pytest.raises(ValueError, match="Unknown class name"):
        guided_attention_maps(spgnet, image, ["car"], class_names=["c0", "c1", "c2", "c3"])
    with pytest.raises(ValueError, match="out of range"):
        guided_attention_maps(spgnet, image, [4])
    squeeze_excite = types.SimpleNamespace(guidance="se", guidance_layer=lambda stage: None)  # stands in for SPGNet(guidance="se")
    with pytest.raises(ValueError, match="guidance='spg'"):
        guided_attention_maps(squeeze_excite, image, [0])
    with pytest.raises(ValueError, match="Expected an SPGNet"):
        guided_attention_maps(keras.Sequential([keras.layers.Dense(2)]), image, [0])
    # A model taking normalised input is refused (the package feeds RGB 0-255).
    raw = SPGNet(NUM_CLASSES, backbones=("resnet18", "resnet18"), decoder_channels=8, include_preprocessing=False)
    with pytest.raises(ValueError, match="with_preprocessing"):
        guided_attention_maps(raw, image, [0])


def test_attention_figure(spgnet, image, tmp_path):
    maps = guided_attention_maps(spgnet, image, [0, 1, 2])
    prediction = np.random.default_rng(0).integers(0, NUM_CLASSES, (HEIGHT, WIDTH))
    figure = attention_figure(image, maps, ["a", "b", "c"], predictions=prediction, palette="camvid")
    assert isinstance(figure, Figure)
    assert len([axis for axis in figure.axes if axis.images]) == 5  # image, prediction, 3 maps
    two_rows = attention_figure([image, image], [maps, maps], ["a", "b", "c"])
    assert len([axis for axis in two_rows.axes if axis.images]) == 8
    path = save_figure(figure, tmp_path / "fig" / "attention.png")
    assert Image.open(path).size[0] > Image.open(path).size[1]
    with pytest.raises(ValueError, match="one title per map"):
        attention_figure(image, maps, ["a"])


# ---------------------------------------------------------------- plots


def test_confusion_matrix_plot(tmp_path):
    confusion = np.array([[5, 1, 0], [2, 8, 0], [0, 0, 0]])
    figure = plot_confusion_matrix(confusion, ["x", "y", "z"])
    data = figure.axes[0].images[0].get_array()
    np.testing.assert_allclose(data, [[5 / 6, 1 / 6, 0], [0.2, 0.8, 0], [0, 0, 0]])
    assert [t.get_text() for t in figure.axes[0].get_xticklabels()] == ["x", "y", "z"]
    assert save_figure(figure, tmp_path / "cm.png").stat().st_size > 0
    with pytest.raises(ValueError, match="square"):
        plot_confusion_matrix(np.zeros((2, 3)))


def test_training_curves_from_csv_logger(tmp_path):
    path = tmp_path / "log.csv"
    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    x, y = np.random.default_rng(0).normal(size=(16, 2)), np.zeros((16, 1))
    model.fit(x, y, validation_data=(x, y), epochs=3, verbose=0, callbacks=[keras.callbacks.CSVLogger(str(path))])
    log = read_csv_log(path)
    assert list(log["epoch"]) == [0, 1, 2]
    figure = plot_training_curves(path)
    titles = [axis.get_title() for axis in figure.axes if axis.lines]
    assert "loss" in titles and "mae" in titles
    loss_axis = next(axis for axis in figure.axes if axis.get_title() == "loss")
    assert [line.get_label() for line in loss_axis.lines] == ["loss", "val_loss"]
    np.testing.assert_allclose(loss_axis.lines[0].get_ydata(), log["loss"])
    assert save_figure(plot_training_curves(path, metrics=["loss"]), tmp_path / "curves.png").is_file()
    with pytest.raises(ValueError, match="not in the log"):
        plot_training_curves(path, metrics=["miou"])
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match="CSVLogger"):
        read_csv_log(tmp_path / "empty.csv")
