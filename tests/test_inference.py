"""Full-image inference: padding, flip, multi-scale, sliding windows, image loading, errors."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from spgnet_keras import SPGNet
from spgnet_keras.constants import IMAGENET_MEAN, IMAGENET_STD
from spgnet_keras.data import list_images, load_image
from spgnet_keras.inference import (
    PAPER_SCALES,
    image_batch,
    predict,
    predict_logits,
    predict_probabilities,
    sliding_windows,
)
from tests.helpers import assert_close_at_scale

HEIGHT, WIDTH = 50, 70  # deliberately not multiples of 32


@pytest.fixture(scope="module")
def spgnet():
    keras.utils.set_random_seed(7)
    return SPGNet(3, backbones=("resnet18",), decoder_channels=16)


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(3).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)


def pointwise_model(num_classes=4, seed=0):
    """1x1 convs only: every pixel's logits depend on that pixel alone, so the model is
    exactly equivariant to flips, translations and cropping (any pixel permutation).
    Takes RGB 0-255, like every model the package runs (rescaled to [-1, 1] first)."""
    inputs = keras.Input((None, None, 3))
    scaled = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
    hidden = keras.layers.Conv2D(8, 1, activation="tanh", kernel_initializer=keras.initializers.RandomNormal(seed=seed))(scaled)
    logits = keras.layers.Conv2D(num_classes, 1, kernel_initializer=keras.initializers.RandomNormal(seed=seed + 1))(hidden)
    return keras.Model(inputs, {"prediction": logits})


def asymmetric_model(num_classes=3):
    """A 3x3 conv with a left/right-asymmetric kernel: not flip-equivariant. Its weights
    are sized for RGB 0-255 input (logits of a few units)."""
    inputs = keras.Input((None, None, 3))
    layer = keras.layers.Conv2D(num_classes, 3, padding="same")
    logits = layer(inputs)
    kernel = np.zeros((3, 3, 3, num_classes), np.float32)
    kernel[1, 2, 0, 0] = 2.0 / 64  # class 0 looks at the right neighbour's red channel
    kernel[1, 0, 1, 1] = 2.0 / 64  # class 1 at the left neighbour's green channel
    kernel[1, 1, 2, 2] = 1.0 / 64
    layer.set_weights([kernel, np.zeros(num_classes, np.float32)])
    return keras.Model(inputs, {"prediction": logits})


def reference_pass(model, image, output="prediction"):
    """Single pass by hand on an RGB 0-255 image: pad to a multiple of 32 with the ImageNet
    mean colour, run, crop (logits; no log-softmax)."""
    height, width = image.shape[:2]
    padded_h, padded_w = -(-height // 32) * 32, -(-width // 32) * 32
    padded = np.empty((1, padded_h, padded_w, 3), np.float32)
    padded[...] = np.float32(IMAGENET_MEAN)
    padded[0, :height, :width] = image
    logits = np.asarray(model(padded, training=False)[output])[0, :height, :width]
    return logits


def normalise(image):
    """ImageNet normalisation (x - mean) / std, what a model built with
    include_preprocessing=False takes."""
    return (np.asarray(image, np.float32) - np.float32(IMAGENET_MEAN)) / np.float32(IMAGENET_STD)


def log_softmax(x):
    return np.asarray(tf.nn.log_softmax(x, axis=-1))


# ---------------------------------------------------------------- single pass / padding


def test_single_pass_pads_runs_and_crops(spgnet, image):
    result = predict_logits(spgnet, image)
    assert result.shape == (HEIGHT, WIDTH, 3) and result.dtype == np.float32
    assert_close_at_scale(result, log_softmax(reference_pass(spgnet, image.astype(np.float32))))
    # Float input is RGB 0-255 too, like uint8.
    np.testing.assert_array_equal(predict_logits(spgnet, image.astype(np.float32)), result)
    np.testing.assert_array_equal(predict_logits(spgnet, image.astype(np.float64)), result)
    probabilities = predict_probabilities(spgnet, image)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(predict(spgnet, image), np.argmax(result, -1))


def test_batch_input_matches_single_images(spgnet, image):
    second = image[::-1].copy()
    batch = predict_logits(spgnet, np.stack([image, second]), flip=True)
    assert batch.shape == (2, HEIGHT, WIDTH, 3)
    assert_close_at_scale(batch[0], predict_logits(spgnet, image, flip=True))
    assert_close_at_scale(batch[1], predict_logits(spgnet, second, flip=True))


def test_other_output_is_selectable():
    keras.utils.set_random_seed(11)
    model = SPGNet(3, backbones=("resnet18", "resnet18"), decoder_channels=16)
    picture = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    assert_close_at_scale(
        predict_logits(model, picture, output="stage1"), log_softmax(reference_pass(model, picture, "stage1")))
    with pytest.raises(ValueError, match="no output 'stage7'"):
        predict_logits(model, picture, output="stage7")


# ---------------------------------------------------------------- flip and multi-scale


def test_flip_is_identity_for_flip_equivariant_model(image):
    # Honest construction: a model of 1x1 convs maps each pixel independently, so
    # unflip(model(flip(x))) == model(x) exactly and the flip average equals one pass.
    model = pointwise_model()
    single = predict_logits(model, image)
    assert_close_at_scale(predict_logits(model, image, flip=True), single)


def test_flip_averages_mirrored_pass_for_asymmetric_model(image):
    model = asymmetric_model()
    picture = image_batch(image)[0]
    plain = tf.nn.softmax(reference_pass(model, picture)).numpy()
    mirrored = tf.nn.softmax(reference_pass(model, picture[:, ::-1])).numpy()[:, ::-1]
    expected = np.log((plain + mirrored) / 2)
    flipped = predict_logits(model, image, flip=True)
    assert_close_at_scale(flipped, expected)
    # The model really is not flip-equivariant, so the test above can fail.
    assert np.abs(flipped - predict_logits(model, image)).max() > 1e-2


def test_multiscale_is_identity_on_constant_image():
    # A constant image stays the same constant under bilinear resizing, and a pointwise
    # model gives the same logits at every pixel, so every scale (and flip) predicts the
    # same probabilities as the single 1.0 pass.
    model = pointwise_model(seed=5)
    constant = np.full((HEIGHT, WIDTH, 3), (200, 30, 90), np.uint8)
    single = predict_logits(model, constant)
    assert_close_at_scale(predict_logits(model, constant, scales=PAPER_SCALES, flip=True), single)
    assert_close_at_scale(predict_logits(model, constant, scales=(0.5, 1.3)), single)


def test_repeated_scale_equals_single_scale(spgnet, image):
    # Averages are taken over probabilities (log-probabilities below the smallest float32
    # are floored there), so compare probabilities.
    np.testing.assert_allclose(predict_probabilities(spgnet, image, scales=(1.0, 1.0)),
                               predict_probabilities(spgnet, image), atol=1e-6)
    np.testing.assert_array_equal(predict(spgnet, image, scales=(1.0, 1.0)), predict(spgnet, image))


def test_multiscale_matches_manual_reference(spgnet, image):
    # Each scale: resize (round the size), pad to 32, run, crop, softmax, mirror a flipped
    # pass back, resize the probabilities back; averaged over scales and flips.
    picture = image_batch(image)[0]  # float32 RGB 0-255
    scales = (0.75, 1.25, 1.6)
    probabilities = []
    for scale in scales:
        size = (round(HEIGHT * scale), round(WIDTH * scale))
        scaled = tf.image.resize(picture[None], size, method="bilinear").numpy()[0]
        for flip in (False, True):
            source = scaled[:, ::-1] if flip else scaled
            scaled_probabilities = tf.nn.softmax(reference_pass(spgnet, source)).numpy()
            if flip:
                scaled_probabilities = scaled_probabilities[:, ::-1]
            probabilities.append(tf.image.resize(scaled_probabilities[None], (HEIGHT, WIDTH),
                                                 method="bilinear").numpy()[0])
    expected = np.mean(probabilities, axis=0)
    result = predict_probabilities(spgnet, image, scales=scales, flip=True)
    np.testing.assert_allclose(result, expected, atol=1e-5)
    assert np.abs(result - predict_probabilities(spgnet, image)).max() > 1e-3  # scales matter


# ---------------------------------------------------------------- sliding window


def test_sliding_window_offsets():
    assert sliding_windows(96, 32, 32) == [0, 32, 64]
    assert sliding_windows(100, 64, 30) == [0, 30, 36]  # last window aligned with the end
    assert sliding_windows(20, 32, 10) == [0]


@pytest.mark.parametrize("stride", [32, 16, (32, 20)])
def test_sliding_window_equals_full_pass_for_pointwise_model(stride):
    # Image an exact multiple of the window. A 1x1-conv model has a receptive field of one
    # pixel, so windows see exactly what the full image sees: results are equal (exactly
    # for stride == window; up to float rounding of the log-space averaging otherwise).
    model = pointwise_model(seed=2)
    picture = np.random.default_rng(1).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    full = predict_logits(model, picture)
    windowed = predict_logits(model, picture, window=32, stride=stride, batch_size=3)
    if stride == 32:
        np.testing.assert_array_equal(windowed, full)
    else:
        assert_close_at_scale(windowed, full, relative=2e-6)


def test_sliding_window_spgnet(spgnet):
    # For a real SPGNet windows differ from the full pass near window borders (zero
    # padding of convolutions, global pooling over the window): only a window covering
    # the whole image reproduces the full pass exactly.
    picture = np.random.default_rng(2).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    full = predict_logits(spgnet, picture, flip=True)
    assert_close_at_scale(predict_logits(spgnet, picture, window=(64, 96), flip=True), full)
    windowed = predict_logits(spgnet, picture, window=(64, 64), stride=(64, 32), flip=True, batch_size=1)
    batched = predict_logits(spgnet, picture, window=(64, 64), stride=(64, 32), flip=True, batch_size=8)
    assert_close_at_scale(windowed, batched)
    assert windowed.shape == full.shape
    np.testing.assert_allclose(np.exp(windowed).sum(-1), 1.0, atol=1e-5)
    # Columns 0..31 are seen only by the first window: equal to that window's own pass.
    first = predict_logits(spgnet, picture[:, :64], flip=True)
    assert_close_at_scale(windowed[:, :32], first[:, :32])


def test_window_larger_than_image_is_a_plain_pass(spgnet, image):
    assert_close_at_scale(predict_logits(spgnet, image, window=128), predict_logits(spgnet, image))


# ---------------------------------------------------------------- bad arguments


@pytest.mark.parametrize("scales", [(0.0,), (-1.0,), (), (1.0, float("nan")), ("1",)])
def test_bad_scales_raise(spgnet, image, scales):
    with pytest.raises(ValueError, match="scale"):
        predict_logits(spgnet, image, scales=scales)


@pytest.mark.parametrize(
    "window, stride, message",
    [(50, None, "multiples of 32"), (0, None, "positive"), ((32, 32, 32), None, "pair"),
     (32, 64, "must not exceed"), (None, 16, "needs a `window`"), (32, 0, "positive")],
)
def test_bad_window_raises(spgnet, image, window, stride, message):
    with pytest.raises(ValueError, match=message):
        predict_logits(spgnet, image, window=window, stride=stride)


def test_bad_image_shapes_raise(spgnet):
    with pytest.raises(ValueError, match="RGB image"):
        predict_logits(spgnet, np.zeros((32, 32, 4), np.uint8))
    with pytest.raises(ValueError, match="RGB image"):
        predict_logits(spgnet, np.zeros((32, 32), np.uint8))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_image_raises(spgnet, image, bad):
    picture = image.astype(np.float32)
    picture[3, 5, 1] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        predict(spgnet, picture)
    with pytest.raises(ValueError, match="NaN or infinite"):
        image_batch(picture)


# ---------------------------------------------------------------- input convention


def test_uint8_and_float_input_agree_with_model_predict():
    # One convention: RGB 0-255, uint8 or float, is what both `inference.predict` and the
    # model itself take. For a size that is not a multiple of 32 the model pads inside
    # (after normalising, with 0, i.e. the mean colour), and inference leaves that to it:
    # the class maps are identical.
    keras.utils.set_random_seed(13)
    model = SPGNet(3, backbones=("resnet18",), decoder_channels=8)
    picture = np.random.default_rng(5).integers(0, 256, (45, 70, 3), dtype=np.uint8)
    classes = predict(model, picture)
    assert classes.shape == (45, 70) and classes.dtype == np.int32
    np.testing.assert_array_equal(predict(model, picture.astype(np.float32)), classes)
    direct = model.predict(picture[None], verbose=0)["prediction"]
    assert direct.shape == (1, 45, 70, 3)
    np.testing.assert_array_equal(np.argmax(direct[0], -1), classes)
    assert_close_at_scale(predict_logits(model, picture), log_softmax(direct[0]))
    assert len(np.unique(classes)) > 1  # not a constant map that any padding would match


def test_model_without_preprocessing_is_refused_and_converted():
    from spgnet_keras.models import with_preprocessing

    keras.utils.set_random_seed(17)
    raw = SPGNet(3, backbones=("resnet18",), decoder_channels=8, include_preprocessing=False)
    picture = np.random.default_rng(6).integers(0, 256, (45, 70, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="with_preprocessing"):
        predict_logits(raw, picture)
    with pytest.raises(ValueError, match="with_preprocessing"):
        predict(raw, picture)
    converted = with_preprocessing(raw)
    assert converted.include_preprocessing
    expected = raw.predict(normalise(picture)[None], verbose=0)["prediction"][0]
    got = converted.predict(picture[None], verbose=0)["prediction"][0]
    # The two paths round the normalised input differently (NumPy vs the model's Rescaling) and a
    # random network amplifies that by an amount that depends on the CPU's kernels (oneDNN, AMX or
    # not): measured 1.5e-4 on logits near 20 on an AMD EPYC. The tolerance scales with the logits.
    tolerance = 1e-4 * float(np.abs(expected).max())
    np.testing.assert_allclose(got, expected, rtol=0, atol=tolerance)
    top2 = np.sort(expected, axis=-1)[..., -2:]
    clear = top2[..., 1] - top2[..., 0] > 2 * tolerance  # pixels whose winner no round-off can change
    assert clear.mean() > 0.9
    np.testing.assert_array_equal(np.argmax(got, -1)[clear], np.argmax(expected, -1)[clear])
    np.testing.assert_array_equal(predict(converted, picture)[clear], np.argmax(expected, -1)[clear])


# ---------------------------------------------------------------- image loading


def test_load_image_conversions(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    alpha = rng.integers(0, 256, (20, 30, 1), dtype=np.uint8)
    gray = rng.integers(0, 256, (20, 30), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(np.concatenate([rgb, alpha], -1), "RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(gray, "L").save(tmp_path / "gray.png")
    Image.fromarray(gray.astype(np.uint16) * 257).save(tmp_path / "gray16.png")
    columns, rows = np.meshgrid(np.linspace(0, 255, 30), np.linspace(0, 255, 20))
    smooth = np.stack([columns, rows, np.full((20, 30), 128.0)], axis=-1)
    smooth = smooth.astype(np.uint8)
    Image.fromarray(smooth).save(tmp_path / "smooth.jpg", quality=95)
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=16).save(tmp_path / "palette.png")

    loaded = load_image(tmp_path / "rgb.png")
    assert loaded.dtype == np.uint8 and loaded.shape == (20, 30, 3)
    np.testing.assert_array_equal(loaded, rgb)
    np.testing.assert_array_equal(load_image(tmp_path / "rgba.png"), rgb)  # alpha dropped
    np.testing.assert_array_equal(load_image(tmp_path / "gray.png"), np.repeat(gray[..., None], 3, -1))
    np.testing.assert_array_equal(load_image(tmp_path / "gray16.png"), np.repeat(gray[..., None], 3, -1))
    jpeg = load_image(tmp_path / "smooth.jpg")
    assert jpeg.shape == (20, 30, 3) and np.abs(jpeg.astype(int) - smooth).mean() < 3
    palette = load_image(tmp_path / "palette.png")  # palette expanded to its colours
    np.testing.assert_array_equal(palette, np.asarray(Image.open(tmp_path / "palette.png").convert("RGB")))


def test_converted_images_run_through_the_model(tmp_path, spgnet):
    gray = np.random.default_rng(0).integers(0, 256, (40, 36), dtype=np.uint8)
    Image.fromarray(gray, "L").save(tmp_path / "gray.png")
    rgba = np.random.default_rng(1).integers(0, 256, (40, 36, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    for name in ("gray.png", "rgba.png"):
        assert predict(spgnet, load_image(tmp_path / name)).shape == (40, 36)


def test_load_image_errors(tmp_path):
    (tmp_path / "notes.png").write_text("this is not an image")
    with pytest.raises(ValueError, match="Not a readable image"):
        load_image(tmp_path / "notes.png")
    with pytest.raises(FileNotFoundError, match="Image not found: .*missing.png"):
        load_image(tmp_path / "missing.png")


def test_list_images(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="No image files"):
        list_images([tmp_path / "empty"])
    with pytest.raises(FileNotFoundError, match="Input not found: .*nope.png"):
        list_images([tmp_path / "nope.png"])
    with pytest.raises(ValueError, match="No input images given"):
        list_images([])
    folder = tmp_path / "pictures"
    folder.mkdir()
    for name in ("b.png", "a.JPG", "c.txt"):
        (folder / name).write_bytes(b"")
    assert [p.name for p in list_images([folder])] == ["a.JPG", "b.png"]


# ---------------------------------------------------------------- one padding rule


def test_the_outer_pad_is_what_spgnet_does_itself(spgnet, image):
    # SPGNet pads its normalised input with zeros (PadToMultiple), i.e. with the mean colour:
    # padding outside first (pad_to_stride) and cropping gives the same logits, so inference
    # and the served graph leave the padding to the model.
    from spgnet_keras.multiscale import pad_to_stride, pads_itself

    assert pads_itself(spgnet) and not pads_itself(pointwise_model()) and not pads_itself(asymmetric_model())
    picture = image.astype(np.float32)[None]
    padded = pad_to_stride(picture)
    assert tuple(padded.shape[1:3]) == (64, 96)
    outer = np.asarray(spgnet(padded, training=False)["prediction"])[:, :HEIGHT, :WIDTH]
    inner = np.asarray(spgnet(picture, training=False)["prediction"])
    assert inner.shape == (1, HEIGHT, WIDTH, 3)
    assert_close_at_scale(inner, outer)
    np.testing.assert_array_equal(np.argmax(inner, -1), np.argmax(outer, -1))
    # A model that does not pad itself is given the padded image (mean colour at the border).
    model = asymmetric_model()
    assert_close_at_scale(predict_logits(model, image), log_softmax(reference_pass(model, picture[0])))


def test_inference_served_graph_and_eval_pipeline_agree_on_an_odd_sized_image(tmp_path):
    from spgnet_keras.data import make_eval_dataset
    from spgnet_keras.export import Segmenter

    keras.utils.set_random_seed(13)
    model = SPGNet(3, backbones=("resnet18",), decoder_channels=8)
    picture = np.random.default_rng(5).integers(0, 256, (45, 70, 3), dtype=np.uint8)
    Image.fromarray(picture).save(tmp_path / "image.png")
    Image.fromarray(np.zeros((45, 70), np.uint8)).save(tmp_path / "mask.png")
    classes = predict(model, picture)
    assert len(np.unique(classes)) > 1  # not a constant map that any padding would match
    served = tf.function(lambda images: Segmenter(model).serve_tensor(images, 10**7), autograph=False)(
        tf.constant(picture[None]))
    np.testing.assert_array_equal(served["classes"].numpy()[0], classes)
    for pad_to_multiple in (None, True):  # the eval pipeline, with its own pad or without
        images, _ = next(iter(make_eval_dataset([(str(tmp_path / "image.png"), str(tmp_path / "mask.png"))],
                                                pad_to_multiple=pad_to_multiple)))
        logits = model(images, training=False)["prediction"].numpy()[0, :45, :70]
        np.testing.assert_array_equal(np.argmax(logits, -1), classes)


# ---------------------------------------------------------------- TestTimeOptions


def test_test_time_options_equal_the_separate_keywords(spgnet, image):
    from spgnet_keras.inference import TestTimeOptions

    options = TestTimeOptions(scales=(0.75, 1.0), flip=True, batch_size=2)
    np.testing.assert_array_equal(predict_logits(spgnet, image, test_time=options),
                                  predict_logits(spgnet, image, scales=(0.75, 1.0), flip=True, batch_size=2))
    np.testing.assert_array_equal(predict(spgnet, image, test_time=options),
                                  predict(spgnet, image, scales=(0.75, 1.0), flip=True, batch_size=2))
    with pytest.raises(ValueError, match="either as test_time=TestTimeOptions"):
        predict_logits(spgnet, image, flip=True, test_time=options)
    with pytest.raises(ValueError, match="must be a TestTimeOptions"):
        predict(spgnet, image, test_time={"flip": True})
    assert TestTimeOptions(window=64).stride == (42, 42)
    for bad, message in [(dict(scales=()), "at least one scale"), (dict(window=50), "multiples of 32"),
                         (dict(batch_size=0), "positive integer"), (dict(stride=32), "needs a `window`")]:
        with pytest.raises(ValueError, match=message):
            TestTimeOptions(**bad)


def test_evaluate_and_export_take_test_time_options(image, tmp_path):
    from spgnet_keras.evaluation import evaluate
    from spgnet_keras.export import export_saved_model
    from spgnet_keras.inference import TestTimeOptions

    model = pointwise_model(num_classes=3)
    label = np.random.default_rng(2).integers(0, 3, (HEIGHT, WIDTH))
    options = TestTimeOptions(scales=(1.0, 1.5), flip=True, window=32, batch_size=3)
    by_options = evaluate(model, [(image, label)], test_time=options)
    by_keywords = evaluate(model, [(image, label)], scales=(1.0, 1.5), flip=True, window=32, batch_size=3)
    np.testing.assert_array_equal(by_options.confusion, by_keywords.confusion)
    assert by_options.settings["scales"] == [1.0, 1.5] and by_options.settings["window"] == [32, 32]
    with pytest.raises(ValueError, match="not both"):
        evaluate(model, [(image, label)], flip=True, test_time=options)
    with pytest.raises(ValueError, match="runs whole images"):
        export_saved_model(model, tmp_path / "m" / "1", test_time=options)
    with pytest.raises(ValueError, match="not both"):
        export_saved_model(model, tmp_path / "m" / "1", flip=True, test_time=TestTimeOptions(flip=True))
