"""One decoder, one truth (spgnet_keras.data.decoding).

Property-style: images of every Pillow mode, in every format Pillow writes them to, at sizes
from 1x1 up, read the same pixels in the dataset check, the tf.data pipeline (make_dataset),
inference (load_image) and evaluation, give the same class maps from `inference.predict` and
the served SavedModel, or are refused by all of them with an error naming the file and the
reason. The files, the pipeline run, the export and the model runs are shared by the module.
"""

import contextlib
import io
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from spgnet_keras import SPGNet
from spgnet_keras.data import DatasetError, decode_image, load_image, load_label, make_dataset, validate_dataset
from spgnet_keras.export import export_saved_model
from spgnet_keras.export.serving import NOT_AN_IMAGE_MESSAGE
from spgnet_keras.inference import predict_logits

MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "I;16", "I", "F", "YCbCr")
FORMATS = {"PNG": "png", "JPEG": "jpg", "BMP": "bmp", "GIF": "gif", "TIFF": "tif", "WEBP": "webp"}
SIZES = ((1, 1), (2, 3), (17, 5), (33, 40))  # (height, width)
SERVED_FORMATS = ("PNG", "JPEG")  # what the serving_default signature takes
NUM_CLASSES = 3
TIE = 1e-4  # class-score margin below which float rounding may pick either class


def pillow_image(mode, height, width, rng):
    """A random Pillow image of `mode`, built from random pixels of the mode's own range."""
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65536, (height, width), dtype=np.uint16))
    if mode == "I":
        return Image.fromarray(rng.integers(0, 65536, (height, width)).astype(np.int32), "I")
    if mode == "F":
        return Image.fromarray(rng.uniform(0, 255, (height, width)).astype(np.float32), "F")
    if mode in ("LA", "RGBA"):
        return Image.fromarray(rng.integers(0, 256, (height, width, len(mode)), dtype=np.uint8), mode)
    rgb = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    if mode in ("P", "PA"):
        return rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16).convert(mode)
    return rgb.convert(mode)


def refusal(fmt, mode):
    """The reason the decoding rule refuses a file Pillow wrote in `fmt` from `mode` (None: accepted)."""
    if fmt == "TIFF":
        return "a TIFF file"
    if fmt == "BMP" and mode == "1":
        return "a BMP of 1, 4 or 16 bits per pixel"
    return None


def rule_pixels(data):
    """Pixels the rule promises, computed independently with Pillow (None for JPEG: lossy decoders differ)."""
    image = Image.open(io.BytesIO(data))
    if image.format == "JPEG":
        return None
    image.load()
    if image.mode.startswith("I;16"):  # 16-bit PNG: the high byte
        return np.repeat((np.asarray(image) >> 8).astype(np.uint8)[..., None], 3, axis=-1)
    rgb = np.asarray(image.convert("RGB")).copy()  # palettes expanded, alpha dropped
    if image.format == "GIF" and "transparency" in image.info:
        rgb[np.asarray(image) == image.info["transparency"]] = 0  # TensorFlow's GIF decoder: black
    return rgb


def _write_files(folder):
    """Every (mode, format, size) Pillow can write, with an all-zero mask beside each image."""
    rng = np.random.default_rng(0)
    files = []
    for mode in MODES:
        for fmt, extension in FORMATS.items():
            for height, width in SIZES:
                buffer = io.BytesIO()
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        pillow_image(mode, height, width, rng).save(buffer, fmt)
                except (OSError, ValueError):  # Pillow cannot write this mode in this format
                    continue
                stem = f"{mode.replace(';', '')}_{fmt}_{height}x{width}"
                image = folder / f"{stem}.{extension}"
                image.write_bytes(buffer.getvalue())
                mask = folder / f"{stem}_mask.png"
                Image.fromarray(np.zeros((height, width), np.uint8), "L").save(mask)
                files.append({"mode": mode, "format": fmt, "size": (height, width), "image": str(image),
                              "mask": str(mask), "refusal": refusal(fmt, mode)})
    return files


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The files, what the pipeline decodes from the accepted ones, and both class maps."""
    base = tmp_path_factory.mktemp("decoding")
    files = _write_files(base)
    accepted = [f for f in files if f["refusal"] is None]
    pairs = [(f["image"], f["mask"]) for f in accepted]
    report = validate_dataset(pairs, num_classes=NUM_CLASSES)
    dataset = make_dataset(pairs, batch_size=1, num_classes=NUM_CLASSES)
    for file, (image, mask) in zip(accepted, dataset):
        file["pipeline"] = image.numpy()[0]
        file["pipeline_mask"] = mask.numpy()[0]

    keras.utils.set_random_seed(3)
    model = SPGNet(NUM_CLASSES, backbones=("resnet18", "resnet18"), decoder_channels=8)
    served = tf.saved_model.load(str(export_saved_model(model, base / "export" / "1")))
    serve = served.signatures["serving_default"]
    to_serve = [f for f in accepted if f["format"] in SERVED_FORMATS]
    result = serve(images=tf.constant([open(f["image"], "rb").read() for f in to_serve]))
    for file, classes, (height, width) in zip(to_serve, result["classes"].numpy(), result["image_sizes"].numpy()):
        file["served"] = classes[:height, :width]
    for size in SIZES:  # one predict call per size: a batch of every served file of that size
        same_size = [f for f in to_serve if f["size"] == size]
        batch = np.stack([load_image(f["image"]) for f in same_size])
        logits = predict_logits(model, batch, batch_size=len(same_size))
        for file, scores in zip(same_size, logits):
            top_two = np.sort(scores, axis=-1)[..., -2:]
            file["predicted"], file["tie"] = np.argmax(scores, -1), top_two[..., 1] - top_two[..., 0] < TIE
    return {"files": files, "report": report, "serve": serve}


@pytest.fixture(scope="module")
def graph_decode():
    """The decode function make_dataset maps over file names, traced once."""
    return tf.function(decode_image, input_signature=[tf.TensorSpec([], tf.string)])


@pytest.mark.parametrize("mode", MODES)
def test_every_reader_agrees_or_all_refuse(corpus, graph_decode, mode):
    files = [f for f in corpus["files"] if f["mode"] == mode]
    assert {f["size"] for f in files} == set(SIZES)
    for file in files:
        name, data = file["image"], open(file["image"], "rb").read()
        if file["refusal"]:
            with pytest.raises(ValueError, match=rf"{name} \({file['refusal']}"):
                load_image(name)
            with pytest.raises(DatasetError, match=rf"{name} \({file['refusal']}"):
                validate_dataset([(name, file["mask"])], NUM_CLASSES)
            with pytest.raises(tf.errors.InvalidArgumentError, match=rf"Unreadable image.*{name}.*{file['refusal']}"):
                graph_decode(name)
            continue  # and the served signature (test_served_signature_refuses_other_formats)
        pixels = load_image(name)
        assert pixels.dtype == np.uint8 and pixels.shape == (*file["size"], 3)
        np.testing.assert_array_equal(file["pipeline"], pixels.astype(np.float32), err_msg=name)
        expected = rule_pixels(data)
        if expected is None:  # JPEG: libjpeg-turbo in TensorFlow and Pillow round a few levels apart
            assert np.abs(pixels.astype(int) - np.asarray(Image.open(name).convert("RGB"))).max() <= 8, name
        else:
            np.testing.assert_array_equal(pixels, expected, err_msg=name)
        if file["format"] in SERVED_FORMATS:
            sure = ~file["tie"]
            np.testing.assert_array_equal(file["served"][sure], file["predicted"][sure], err_msg=name)
            assert file["tie"].mean() < 0.05, name


@pytest.mark.parametrize("fmt", sorted(set(FORMATS) - set(SERVED_FORMATS)))
def test_served_signature_refuses_other_formats(corpus, fmt):
    """The served signature takes JPEG/PNG bytes only (decided from the magic bytes) and says so."""
    file = next(f for f in corpus["files"] if f["format"] == fmt)
    with pytest.raises(tf.errors.InvalidArgumentError, match=NOT_AN_IMAGE_MESSAGE.split(" (")[0]):
        corpus["serve"](images=tf.constant([open(file["image"], "rb").read()]))


def test_check_counts_every_accepted_pixel(corpus):
    accepted = [f for f in corpus["files"] if f["refusal"] is None]
    assert corpus["report"].num_pairs == len(accepted) > 100
    assert corpus["report"].class_pixel_counts[0] == sum(f["size"][0] * f["size"][1] for f in accepted)
    assert all(not f["pipeline_mask"].any() for f in accepted)


MASK_MODES = ("1", "L", "LA", "P", "RGB", "RGBA", "I;16")
INDEX_MASK_MODES = ("L", "P", "I;16", "1")  # grey of 8, 16 or 1 bits (binary masks), palette


def _index_mask(mode, labels):
    """A PNG mask of `mode` whose pixels encode `labels` (a palette P mask: indices = labels)."""
    if mode == "P":
        image = Image.fromarray(labels, "P")
        image.putpalette([0, 0, 0, 200, 0, 0, 0, 200, 0])
        return image
    if mode == "I;16":
        return Image.fromarray(labels.astype(np.uint16))
    if mode == "1":
        return Image.fromarray(labels.astype(bool))  # labels 0 / 1
    return Image.fromarray(labels, "L").convert(mode)


@pytest.mark.parametrize("mode", MASK_MODES)
def test_index_masks_read_the_same_or_are_refused_up_front(tmp_path, mode):
    """The check refuses what the pipeline cannot read as class indices; the rest reads identically
    in the check, the pipeline and evaluation."""
    labels = np.random.default_rng(1).integers(0, 2 if mode == "1" else NUM_CLASSES, (17, 5)).astype(np.uint8)
    Image.fromarray(np.zeros((17, 5, 3), np.uint8)).save(tmp_path / "a.png")
    _index_mask(mode, labels).save(tmp_path / "m.png")
    pairs = [(str(tmp_path / "a.png"), str(tmp_path / "m.png"))]
    if mode not in INDEX_MASK_MODES:
        with pytest.raises(DatasetError, match=r"m\.png.*(mode|class-index mask)"):
            validate_dataset(pairs, NUM_CLASSES)
        return
    report = validate_dataset(pairs, NUM_CLASSES)
    (_, masks), = make_dataset(pairs, batch_size=1, num_classes=NUM_CLASSES)
    np.testing.assert_array_equal(masks.numpy()[0], labels)
    np.testing.assert_array_equal(load_label(tmp_path / "m.png"), labels)
    np.testing.assert_array_equal(report.class_pixel_counts, np.bincount(labels.ravel(), minlength=NUM_CLASSES))


def test_a_16_bit_mask_reads_its_values_and_a_value_above_255_is_named(tmp_path):
    """16-bit grey masks (labelling and GIS tools write them) hold the class values themselves,
    255 = ignore; a value the label tables cannot hold is refused up front and in the pipeline."""
    labels = np.array([[0, 1, 2, 255], [2, 1, 0, 255]], np.uint16).repeat(3, 0)
    Image.fromarray(np.zeros((6, 4, 3), np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(labels).save(tmp_path / "m.png")
    assert Image.open(tmp_path / "m.png").mode == "I;16"
    pairs = [(str(tmp_path / "a.png"), str(tmp_path / "m.png"))]
    report = validate_dataset(pairs, 3)
    np.testing.assert_array_equal(report.class_pixel_counts, [6, 6, 6])
    (_, masks), = make_dataset(pairs, batch_size=1, num_classes=3)
    np.testing.assert_array_equal(masks.numpy()[0], labels)
    labels[0, 1] = 300
    Image.fromarray(labels).save(tmp_path / "m.png")
    refusal = r"m\.png is a 16-bit class-index PNG holding the value 300; class values must be 0\.\.255"
    with pytest.raises(DatasetError, match=refusal):
        validate_dataset(pairs, 3)
    with pytest.raises(ValueError, match=refusal):
        load_label(tmp_path / "m.png")
    with pytest.raises(tf.errors.InvalidArgumentError, match="holding the value.*300"):
        next(iter(make_dataset(pairs, batch_size=1, num_classes=3)))


def _one_bit_bmp(path):
    Image.fromarray(np.eye(4, dtype=bool)).save(path)


def _tiff(path):
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(path, "TIFF")


def _jpeg_named_png(path):
    Image.fromarray(np.zeros((4, 4), np.uint8), "L").save(path, "JPEG")


def _repeated_palette_colour(path):
    mask = Image.fromarray(np.array([[0, 1], [2, 2]], np.uint8).repeat(2, 0).repeat(2, 1), "P")
    mask.putpalette([0, 0, 0, 9, 9, 9, 0, 0, 0])  # index 2 has the colour of index 0
    mask.save(path)


def _four_bit_grey(path):
    Image.fromarray(np.eye(4, dtype=np.uint8), "L").save(path, bits=4)


@pytest.mark.parametrize("bad_file, writer, reason", [
    ("image.bmp", _one_bit_bmp, "a BMP of 1, 4 or 16 bits per pixel"),
    ("image.tif", _tiff, "a TIFF file"),
    ("mask.png", _jpeg_named_png, "not a PNG file; masks must be PNG"),
    ("mask.png", _repeated_palette_colour, "palette index 2 is read as 0"),
    ("mask.png", _four_bit_grey, "not a class-index mask"),
])
def test_check_refuses_up_front_what_training_cannot_read(tmp_path, bad_file, writer, reason):
    """Each of these passed the old Pillow check, then crashed the run mid-epoch or trained on
    other labels; now the check (run by make_dataset(validate=True) before any batch) names the
    file and the reason, and without the check the pipeline itself stops at the file."""
    paths = {"image": tmp_path / "image.png", "mask": tmp_path / "mask.png"}
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(paths["image"])
    Image.fromarray(np.zeros((4, 4), np.uint8), "L").save(paths["mask"])
    bad = tmp_path / bad_file
    paths["image" if bad_file.startswith("image") else "mask"] = bad
    writer(bad)
    pairs = [(str(paths["image"]), str(paths["mask"]))]
    repeats = "palette" in reason
    with pytest.warns(UserWarning, match="repeats colours") if repeats else contextlib.nullcontext():
        with pytest.raises(DatasetError, match=rf"{bad}.*{reason}"):
            make_dataset(pairs, batch_size=1, num_classes=NUM_CLASSES, validate=True)
    if repeats:  # the pipeline alone reads index 2 as class 0, with a warning
        with pytest.warns(UserWarning, match="repeats colours"):
            (_, masks), = make_dataset(pairs, batch_size=1, num_classes=NUM_CLASSES)
        np.testing.assert_array_equal(masks.numpy()[0], [[0, 0, 1, 1]] * 2 + [[0, 0, 0, 0]] * 2)
    else:
        with pytest.raises(tf.errors.InvalidArgumentError, match=rf"Unreadable .*{bad}.*{reason}"):
            list(make_dataset(pairs, batch_size=1, num_classes=NUM_CLASSES))
