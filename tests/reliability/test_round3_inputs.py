"""Reliability, third round: inputs. Damaged and multi-frame images get the same decision
from the dataset check, the `tf.data` pipeline and inference; names that are not UTF-8
and files of unread formats are named, not hidden; a grey tensor is refused by the model."""

import io
import os
import warnings

import numpy as np
import pytest
from PIL import Image

from spgnet_keras import SPGNet
from spgnet_keras.constants import MAX_IMAGE_PIXELS
from spgnet_keras.data import folder_files, list_images, load_image, make_eval_dataset, validate_dataset
from spgnet_keras.errors import InvalidInputError

HEIGHT, WIDTH = 48, 64
NUM_CLASSES = 3


def encoded(array, fmt, **options):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, fmt, **options)
    return buffer.getvalue()


def photo(seed=0):
    return np.random.default_rng(seed).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)


def animation(fmt, frames, size):
    images = [Image.fromarray(np.full((*size, 3), 7 * index % 256, np.uint8)) for index in range(frames)]
    buffer = io.BytesIO()
    images[0].save(buffer, fmt, save_all=True, append_images=images[1:])
    return buffer.getvalue()


def jpeg_without_end_marker():
    data = encoded(photo(), "JPEG")
    assert data.endswith(b"\xff\xd9")
    return data[:-2]


def png_without_iend():
    data = encoded(photo(), "PNG")
    return data[:data.rindex(b"IEND") - 4]


GIF_FRAMES = MAX_IMAGE_PIXELS // (512 * 512) + 1  # every frame decoded: just past the limit

DAMAGED = {  # name -> (bytes, accepted?)
    "jpeg_without_end_marker": (jpeg_without_end_marker, False),
    "jpeg_cut_in_its_scan": (lambda: encoded(photo(), "JPEG")[:600], False),
    "png_cut_in_its_data": (lambda: encoded(photo(), "PNG")[:2000], False),
    "png_without_iend": (png_without_iend, False),
    "empty_file": (lambda: b"", False),
    "animated_webp": (lambda: animation("WEBP", 3, (HEIGHT, WIDTH)), False),
    "gif_whose_frames_pass_the_limit": (lambda: animation("GIF", GIF_FRAMES, (512, 512)), False),
    "gif_of_three_frames": (lambda: animation("GIF", 3, (HEIGHT, WIDTH)), True),
    "still_webp": (lambda: encoded(photo(), "WEBP"), True),
    "png": (lambda: encoded(photo(), "PNG"), True),
}
SUFFIX = {"jpeg": ".jpg", "png": ".png", "empty": ".png", "animated": ".webp", "gif": ".gif", "still": ".webp"}


def dataset_with(tmp_path, name):
    make, _ = DAMAGED[name]
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    image = images / f"frame{SUFFIX[name.split('_')[0]]}"
    image.write_bytes(make())
    size = (512, 512) if name == "gif_whose_frames_pass_the_limit" else (HEIGHT, WIDTH)
    Image.fromarray(np.zeros(size, np.uint8)).save(labels / "frame.png")
    return image, folder_files(images, labels)


def decision(action):
    try:
        return True, action()
    except (ValueError, Exception) as error:  # noqa: B014  (TF's InvalidArgumentError is not a ValueError)
        return False, str(error)


@pytest.mark.parametrize("name", sorted(DAMAGED))
def test_the_check_the_pipeline_and_inference_take_exactly_the_same_files(tmp_path, name):
    image, pairs = dataset_with(tmp_path, name)
    expected = DAMAGED[name][1]
    checked, check_message = decision(lambda: validate_dataset(pairs, NUM_CLASSES))
    loaded, loaded_image = decision(lambda: load_image(image))
    piped, piped_batch = decision(lambda: next(iter(make_eval_dataset(pairs, num_classes=NUM_CLASSES))))
    assert (checked, loaded, piped) == (expected, expected, expected), (check_message, loaded_image, piped_batch)
    if expected:  # the same pixels everywhere
        np.testing.assert_array_equal(piped_batch[0][0].numpy().astype(np.uint8)[:HEIGHT, :WIDTH], loaded_image)
    else:  # the check and inference name the file and the reason; the pipeline (data.validate: false) the
        # file when its header is refused, else the decoder's reason that the check gives too
        assert str(image) in check_message and str(image) in loaded_image
        reason = loaded_image.rsplit(" (", 1)[-1].rstrip(")") if "(" in loaded_image else loaded_image
        assert str(image) in piped_batch or reason in piped_batch, (loaded_image, piped_batch)


def test_a_gif_past_the_limit_is_refused_before_decoding_and_says_why(tmp_path):
    image, _ = dataset_with(tmp_path, "gif_whose_frames_pass_the_limit")
    with pytest.raises(InvalidInputError) as refused:
        load_image(image)
    assert str(refused.value) == (
        f"Image {image} is a GIF of {GIF_FRAMES} frames of 512x512: TensorFlow's GIF decoder decodes every frame "
        f"({GIF_FRAMES * 512 * 512} pixels) before keeping the first, more than the limit of {MAX_IMAGE_PIXELS} "
        "(spgnet_keras.constants.MAX_IMAGE_PIXELS); save its first frame as PNG.")


def test_an_animated_webp_is_refused_by_its_header(tmp_path):
    image, _ = dataset_with(tmp_path, "animated_webp")
    with pytest.raises(InvalidInputError, match="an animated WebP; TensorFlow's WebP decoder crashes the process"):
        load_image(image)


def test_a_name_that_is_not_utf8_is_refused_by_name_in_datasets_and_predict_folders(tmp_path):
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    Image.fromarray(photo()).save(images / "good.png")
    Image.fromarray(np.zeros((HEIGHT, WIDTH), np.uint8)).save(labels / "good.png")
    os.rename(images / "good.png", os.fsencode(images) + b"/bad\xff.png")
    expected = rf"{images}/bad\\xff.png: the name is not valid UTF-8 \(undecodable bytes shown as \\xNN\); rename it"
    with pytest.raises(InvalidInputError, match=f"Dataset file {expected}"):
        folder_files(images, labels)
    with pytest.raises(InvalidInputError, match=f"input {expected}"):
        list_images([images])


def test_files_a_folder_listing_leaves_out_are_counted_in_a_warning(tmp_path):
    folder = tmp_path / "inputs"
    folder.mkdir()
    Image.fromarray(photo()).save(folder / "a.png")
    Image.fromarray(photo()).save(folder / "b.tif")
    Image.fromarray(photo()).save(folder / "c.tif")
    (folder / "notes.txt").write_text("x")
    with pytest.warns(UserWarning, match=r"Skipped 3 file\(s\) of .*inputs that are not images spgnet_keras reads "
                                         r"\(2 \.tif, 1 \.txt\)"):
        assert list_images([folder]) == [folder / "a.png"]
    (folder / "a.png").unlink()
    with pytest.raises(InvalidInputError, match=r"No image files .* in folder .*inputs; it holds 3 file\(s\): 2 \.tif"):
        list_images([folder])

    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    for stem in ("one", "two"):
        Image.fromarray(photo()).save(images / f"{stem}.png")
        Image.fromarray(np.zeros((HEIGHT, WIDTH), np.uint8)).save(labels / f"{stem}.png")
    Image.fromarray(photo()).save(images / "three.tiff")
    with pytest.warns(UserWarning, match=r"1 image file\(s\) in .*images were left out \(1 \.tiff\)"):
        assert len(folder_files(images, labels)) == 2
    (images / "three.tiff").unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        folder_files(images, labels)  # nothing left out, nothing said


@pytest.mark.parametrize("channels", [1, 2, 4])
def test_the_model_refuses_images_of_another_channel_count(channels):
    model = SPGNet(NUM_CLASSES, backbones=("resnet18",), decoder_channels=8)
    images = np.zeros((1, 64, 64, channels), np.float32)
    with pytest.raises(ValueError, match=rf"got shape \(1, 64, 64, {channels}\)" if channels == 1 else "3"):
        model(images)
    with pytest.raises(ValueError):
        model.predict(images, verbose=0)
    assert model(np.zeros((1, 64, 64, 3), np.float32))["prediction"].shape == (1, 64, 64, NUM_CLASSES)
