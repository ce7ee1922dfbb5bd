"""Evaluation: IoU against a NumPy reference and against cityscapesscripts, Cityscapes
result files, datasets, the `evaluate` / `predict` commands and their errors."""

import json
import math
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from spgnet_keras import SPGNet
from spgnet_keras.cli import main
from spgnet_keras.data import load_label
from spgnet_keras.data.cityscapes import CITYSCAPES_CLASSES, LABEL_ID_TO_TRAIN_ID, TRAIN_ID_TO_LABEL_ID
from spgnet_keras.evaluation import (
    CityscapesResultWriter,
    EvaluationResult,
    cityscapes_result_path,
    evaluate,
    evaluate_dataset,
    evaluate_label_files,
    format_table,
    to_json,
)
from tests.shared_data import shared_data_dir  # noqa: E402

CITYSCAPES_STEM = "frankfurt_000000_000294"



def class_coded_model(num_classes):
    """A 1x1 conv whose argmax is round(channel 0 of the RGB input): logits_c =
    2c*x - c^2 = x^2 - (x - c)^2. Lets a test choose every pixel's prediction exactly."""
    inputs = keras.Input((None, None, 3))
    layer = keras.layers.Conv2D(num_classes, 1)
    outputs = layer(inputs)
    kernel = np.zeros((1, 1, 3, num_classes), np.float32)
    kernel[0, 0, 0] = 2.0 * np.arange(num_classes)
    layer.set_weights([kernel, -np.arange(num_classes, dtype=np.float32) ** 2])
    return keras.Model(inputs, {"prediction": outputs})


def coded_image(prediction):
    """Float RGB (0-255) image whose red channel holds the wanted class."""
    image = np.zeros(prediction.shape + (3,), np.float32)
    image[..., 0] = prediction
    return image


def reference_scores(labels, predictions, num_classes, ignore=255):
    """Per-class IoU by explicit TP/FP/FN counting, mIoU (NaN classes skipped), pixel accuracy."""
    tp = np.zeros(num_classes)
    fp = np.zeros(num_classes)
    fn = np.zeros(num_classes)
    correct = total = 0
    for label, prediction in zip(labels, predictions):
        valid = label != ignore
        for c in range(num_classes):
            tp[c] += np.sum((prediction == c) & (label == c) & valid)
            fp[c] += np.sum((prediction == c) & (label != c) & valid)
            fn[c] += np.sum((prediction != c) & (label == c) & valid)
        correct += np.sum((prediction == label) & valid)
        total += np.sum(valid)
    union = tp + fp + fn
    iou = np.array([tp[c] / union[c] if union[c] else np.nan for c in range(num_classes)])
    return iou, np.nanmean(iou), correct / total


def random_case(seed, num_classes=5, absent=4):
    """Labels/predictions of three differently sized images; class `absent` never occurs."""
    rng = np.random.default_rng(seed)
    labels, predictions = [], []
    for shape in ((40, 60), (33, 47), (64, 96)):
        label = rng.integers(0, absent, shape)
        label[rng.random(shape) < 0.1] = 255
        prediction = np.where(rng.random(shape) < 0.6, np.minimum(label, absent - 1), rng.integers(0, absent, shape))
        labels.append(label)
        predictions.append(prediction)
    return labels, predictions


# ---------------------------------------------------------------- NumPy reference


def test_evaluate_matches_numpy_reference():
    num_classes = 5
    labels, predictions = random_case(0, num_classes)
    model = class_coded_model(num_classes)
    names = [f"k{i}" for i in range(num_classes)]
    pairs = [(coded_image(p), label) for p, label in zip(predictions, labels)]
    result = evaluate(model, pairs, class_names=names, flip=True)
    iou, miou, accuracy = reference_scores(labels, predictions, num_classes)
    assert result.num_images == 3 and result.class_names == tuple(names)
    np.testing.assert_allclose(result.iou, iou, atol=1e-12)
    assert math.isnan(result.iou[4])  # absent from labels and predictions
    assert result.miou == pytest.approx(miou, abs=1e-12)
    assert result.pixel_accuracy == pytest.approx(accuracy, abs=1e-12)
    assert result.confusion.sum() == sum(int(np.sum(label != 255)) for label in labels)
    # Same numbers from a batched tf.data pipeline padded with the ignore label.
    dataset = tf.data.Dataset.from_generator(
        lambda: ((coded_image(p), label.astype(np.int32)) for p, label in zip(predictions, labels)),
        output_signature=(tf.TensorSpec((None, None, 3), tf.float32), tf.TensorSpec((None, None), tf.int32)),
    ).padded_batch(2, padding_values=(0.0, 255))
    batched = evaluate(model, dataset, num_classes=num_classes)
    np.testing.assert_array_equal(batched.confusion, result.confusion)
    assert batched.num_images == 3
    assert evaluate(model, dataset, num_classes=num_classes, max_images=1).num_images == 1


def test_result_table_and_json(tmp_path):
    confusion = np.array([[3, 1, 0], [0, 4, 0], [0, 0, 0]])
    result = EvaluationResult(confusion, ("road", "car", "train"), num_images=2)
    np.testing.assert_allclose(result.iou[:2], [3 / 4, 4 / 5])
    assert math.isnan(result.iou[2])
    assert result.miou == pytest.approx((0.75 + 0.8) / 2)
    assert result.pixel_accuracy == pytest.approx(7 / 8)
    table = format_table(result)
    for text in ("road", "car", "train", "75.00", "80.00", "77.50", "87.50", "n/a"):
        assert text in table
    data = json.loads(to_json(result, tmp_path / "out" / "result.json"))
    assert data == json.loads((tmp_path / "out" / "result.json").read_text())
    assert data["per_class"]["train"]["iou"] is None
    assert data["miou"] == pytest.approx(0.775)
    assert data["confusion_matrix"] == confusion.tolist()


# ---------------------------------------------------------------- cityscapesscripts


def cityscapes_official_scores(predictions, ground_truths):
    """Runs cityscapesscripts' evalPixelLevelSemanticLabeling on file lists.

    The instance-level score (np.in1d, removed in NumPy 2) and the JSON export are off;
    they do not enter the class IoU.
    """
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as official

    official.args.evalInstLevelScore = False
    official.args.evalPixelAccuracy = False
    official.args.JSONOutput = False
    official.args.quiet = True
    results = official.evaluateImgLists([str(p) for p in predictions], [str(g) for g in ground_truths], official.args)
    scores = np.array([results["classScores"][name] for name in CITYSCAPES_CLASSES], np.float64)
    return scores, results["averageScoreClasses"]


def assert_same_scores(ours, theirs):
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
    np.testing.assert_allclose(ours[~np.isnan(ours)], theirs[~np.isnan(theirs)], atol=1e-4)


def test_iou_matches_cityscapesscripts_on_real_sample(cityscapes_root, tmp_path):
    ground_truths = sorted((cityscapes_root / "gtFine" / "val").glob("*/*_gtFine_labelIds.png"))
    assert ground_truths, f"no labelIds under {cityscapes_root}"
    rng = np.random.default_rng(0)
    writer = CityscapesResultWriter(tmp_path / "results")
    predictions = []
    for ground_truth in ground_truths:
        label = np.asarray(Image.open(ground_truth))
        train_ids = rng.integers(0, 19, label.shape)
        # Make it better than chance where labelled, and add "void" predictions (255 ->
        # label id 0), which cityscapesscripts counts as misses of the true class.
        truth = LABEL_ID_TO_TRAIN_ID[label]
        keep = (rng.random(label.shape) < 0.5) & (truth != 255)
        train_ids[keep] = truth[keep]
        train_ids[rng.random(label.shape) < 0.05] = 255
        image_name = ground_truth.name.replace("_gtFine_labelIds", "_leftImg8bit")
        predictions.append(writer(train_ids, ground_truth.parent / image_name))
    assert predictions[0] == tmp_path / "results" / "frankfurt" / f"{CITYSCAPES_STEM}_leftImg8bit.png"
    ours = evaluate_label_files(
        predictions, ground_truths, 19, CITYSCAPES_CLASSES, label_map=LABEL_ID_TO_TRAIN_ID,
        prediction_map=LABEL_ID_TO_TRAIN_ID,
    )
    assert ours.unassigned.sum() > 0
    theirs, their_mean = cityscapes_official_scores(predictions, ground_truths)
    assert_same_scores(ours.iou, theirs)
    assert ours.miou == pytest.approx(their_mean, abs=1e-4)
    assert 0.05 < ours.miou < 0.9


def test_model_predictions_in_benchmark_layout(cityscapes_root, tmp_path, monkeypatch):
    keras.utils.set_random_seed(5)
    model = SPGNet(19, backbones=("resnet18",), decoder_channels=16)
    out = tmp_path / "cityscapes_results"
    result = evaluate_dataset(model, "cityscapes", cityscapes_root, "val", predictions_dir=out, flip=True)
    assert result.num_images == 1 and result.class_names == CITYSCAPES_CLASSES
    written = out / "frankfurt" / f"{CITYSCAPES_STEM}_leftImg8bit.png"
    saved = np.asarray(Image.open(written))
    assert saved.dtype == np.uint8 and saved.shape == (128, 256)
    assert set(np.unique(saved)) <= set(TRAIN_ID_TO_LABEL_ID.tolist())
    # The official script finds the file through CITYSCAPES_RESULTS and agrees on IoU.
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as official

    monkeypatch.setenv("CITYSCAPES_RESULTS", str(out))
    monkeypatch.setattr(official.args, "predictionPath", None)
    monkeypatch.setattr(official.args, "predictionWalk", None)
    ground_truth = cityscapes_root / "gtFine" / "val" / "frankfurt" / f"{CITYSCAPES_STEM}_gtFine_labelIds.png"
    found = official.getPrediction(official.args, str(ground_truth))
    assert Path(found) == written
    theirs, _ = cityscapes_official_scores([found], [ground_truth])
    assert_same_scores(result.iou, theirs)
    assert np.isfinite(result.iou).any()


def test_cityscapes_result_path():
    path = cityscapes_result_path("/r", "/data/leftImg8bit/test/berlin/berlin_000123_000019_leftImg8bit.png")
    assert path == Path("/r/berlin/berlin_000123_000019_leftImg8bit.png")
    with pytest.raises(ValueError, match="not a Cityscapes file name"):
        cityscapes_result_path("/r", "picture.png")


# ---------------------------------------------------------------- datasets and errors


def test_evaluate_camvid_files():
    root = shared_data_dir() / "camvid"
    keras.utils.set_random_seed(3)
    model = SPGNet(11, backbones=("resnet18",), decoder_channels=16)
    result = evaluate_dataset(model, "camvid", root, "val", max_images=2)
    assert result.num_images == 2 and result.class_names[0] == "Sky"
    first_labels = [root / "val" / "labels" / f"{s}.png" for s in (root / "val.txt").read_text().split()[:2]]
    labelled = sum(int(np.sum(load_label(p) != 255)) for p in first_labels)
    assert result.confusion.sum() == labelled
    # The same images through the tf.data eval pipeline (float RGB 0-255, padded to 32
    # with the ImageNet mean colour / ignore, batched): inference pads a file's image with
    # the same colour, so the model sees the same padded input and the counts are equal.
    from spgnet_keras.data import make_dataset

    dataset = make_dataset("camvid", "val", root=root, batch_size=2, pad_to_multiple=32)
    piped = evaluate(model, dataset, class_names=result.class_names, max_images=2)
    np.testing.assert_array_equal(piped.confusion, result.confusion)


def test_class_count_mismatch_raises(camvid_root):
    # A 3-class model scored on 11-class data would give meaningless numbers: refused,
    # naming both counts, whether the data's classes come from class_names, num_classes
    # or the dataset's spec.
    from spgnet_keras.data import CAMVID_SPEC

    rng = np.random.default_rng(0)
    pairs = [(rng.integers(0, 256, (24, 40, 3), dtype=np.uint8), rng.integers(0, 11, (24, 40)))]
    model = class_coded_model(3)
    assert len(CAMVID_SPEC.class_names) == 11
    with pytest.raises(ValueError, match=r"predicts 3 classes but the data has 11"):
        evaluate(model, pairs, class_names=CAMVID_SPEC.class_names)
    with pytest.raises(ValueError, match=r"predicts 3 classes but the data has 11"):
        evaluate(model, pairs, num_classes=11)
    keras.utils.set_random_seed(4)
    spgnet = SPGNet(3, backbones=("resnet18",), decoder_channels=8)
    with pytest.raises(ValueError, match=r"predicts 3 classes but the data has 11"):
        evaluate_dataset(spgnet, "camvid", camvid_root, "val", max_images=1)
    # Matching counts are fine (labels of a 3-class problem).
    three = [(image, label % 3) for image, label in pairs]
    assert evaluate(model, three, num_classes=3).num_images == 1


def test_model_taking_normalised_input_is_refused():
    from spgnet_keras.models import with_preprocessing

    raw = SPGNet(3, backbones=("resnet18",), decoder_channels=8, include_preprocessing=False)
    image = np.random.default_rng(1).integers(0, 256, (24, 40, 3), dtype=np.uint8)
    label = np.zeros((24, 40), np.int64)
    with pytest.raises(ValueError, match="with_preprocessing"):
        evaluate(raw, [(image, label)], num_classes=3)
    with pytest.raises(ValueError, match="with_preprocessing"):
        evaluate(raw, [], num_classes=3)  # refused before any data is read
    assert evaluate(with_preprocessing(raw), [(image, label)], num_classes=3).num_images == 1


def test_evaluation_errors(tmp_path):
    model = class_coded_model(3)
    with pytest.raises(ValueError, match="No images"):
        evaluate(model, [], num_classes=3)
    (tmp_path / "empty" / "val" / "images").mkdir(parents=True)
    (tmp_path / "empty" / "val" / "labels").mkdir(parents=True)
    with pytest.raises(ValueError, match="No images"):
        evaluate_dataset(model, "folder", tmp_path / "empty", "val")
    with pytest.raises(FileNotFoundError, match="Dataset root not found: .*missing"):
        evaluate_dataset(model, "camvid", tmp_path / "missing", "val")
    with pytest.raises(ValueError, match="Unknown dataset"):
        evaluate_dataset(model, "pascal", tmp_path, "val")
    image = np.zeros((10, 12, 3), np.uint8)
    Image.fromarray(image).save(tmp_path / "a.png")
    Image.fromarray(np.zeros((10, 11), np.uint8)).save(tmp_path / "a_label.png")
    with pytest.raises(ValueError, match="12x10 but label"):
        evaluate(model, [(tmp_path / "a.png", tmp_path / "a_label.png")], num_classes=3)
    with pytest.raises(ValueError, match="a.png: a PNG whose layout is not a class-index mask"):
        load_label(tmp_path / "a.png")
    Image.fromarray(np.full((10, 12), 7, np.uint8)).save(tmp_path / "b_label.png")
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        evaluate(model, [(tmp_path / "a.png", tmp_path / "b_label.png")], num_classes=3)
    with pytest.raises(ValueError, match="scales"):
        evaluate(model, [(coded_image(np.zeros((4, 4))), np.zeros((4, 4), int))], num_classes=3, scales=(0,))


# ---------------------------------------------------------------- command line


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    keras.utils.set_random_seed(9)
    model = SPGNet(19, backbones=("resnet18", "resnet18"), decoder_channels=16)
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    model.save(path)
    return path


def test_evaluate_command(saved_model, cityscapes_root, tmp_path, capsys):
    code = main([
        "evaluate", "--model", str(saved_model), "--data", str(cityscapes_root), "--dataset", "cityscapes",
        "--json", str(tmp_path / "metrics.json"), "--predictions", str(tmp_path / "results"),
        "--confusion-plot", str(tmp_path / "cm.png"), "--scales", "0.75", "1.0", "--flip", "--quiet",
    ])
    assert code == 0
    out = capsys.readouterr().out
    assert "mIoU" in out and "traffic light" in out
    data = json.loads((tmp_path / "metrics.json").read_text())
    assert data["num_images"] == 1 and len(data["per_class"]) == 19
    assert data["settings"]["scales"] == [0.75, 1.0] and data["settings"]["flip"] is True
    assert (tmp_path / "results" / "frankfurt" / f"{CITYSCAPES_STEM}_leftImg8bit.png").is_file()
    assert (tmp_path / "cm.png").stat().st_size > 0


def test_evaluate_command_errors(saved_model, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["evaluate", "--model", str(saved_model), "--data", str(tmp_path / "empty"), "--dataset", "folder"]) == 2
    assert "not found" in capsys.readouterr().err
    args = ["evaluate", "--model", str(saved_model), "--data", str(tmp_path), "--dataset", "camvid"]
    assert main(args + ["--scales", "0"]) == 2
    assert "positive" in capsys.readouterr().err
    assert main(args + ["--max-images", "0"]) == 2
    assert "--max-images" in capsys.readouterr().err
    assert main(args) == 2  # no split folders
    assert "not found" in capsys.readouterr().err
    city = shared_data_dir() / "cityscapes_sample"
    assert main(["evaluate", "--model", str(tmp_path / "none.keras"), "--data", str(city), "--dataset", "cityscapes"]) == 2
    assert "Model file not found" in capsys.readouterr().err


def test_predict_command(saved_model, cityscapes_root, tmp_path, capsys):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    city_image = next((cityscapes_root / "leftImg8bit" / "val" / "frankfurt").glob("*.png"))
    (inputs / city_image.name).write_bytes(city_image.read_bytes())
    rgb = np.asarray(Image.open(city_image))
    Image.fromarray(rgb[:40, :60, 0], "L").save(inputs / "gray.png")
    rgba = np.concatenate([rgb[:40, :60], np.full((40, 60, 1), 128, np.uint8)], -1)
    Image.fromarray(rgba, "RGBA").save(inputs / "rgba.png")
    out = tmp_path / "out"
    code = main(["predict", str(inputs), "--model", str(saved_model), "--out", str(out), "--palette", "cityscapes",
                 "--flip"])
    assert code == 0, capsys.readouterr().err
    stem = city_image.stem
    assert np.asarray(Image.open(out / "labels" / f"{stem}.png")).shape == (128, 256)
    assert np.asarray(Image.open(out / "color" / f"{stem}.png")).shape == (128, 256, 3)
    assert np.asarray(Image.open(out / "overlay" / "gray.png")).shape == (40, 60, 3)
    assert np.asarray(Image.open(out / "labels" / "rgba.png")).shape == (40, 60)
    # Benchmark-format label ids need Cityscapes file names.
    assert main(["predict", str(inputs), "--model", str(saved_model), "--out", str(out), "--cityscapes-results"]) == 2
    assert "not a Cityscapes file name" in capsys.readouterr().err
    code = main(["predict", str(inputs / city_image.name), "--model", str(saved_model), "--out", str(out),
                 "--cityscapes-results", "--scales", "0.75", "1.0", "--attention", "road", "car", "--overwrite"])
    assert code == 0, capsys.readouterr().err
    labels = np.asarray(Image.open(out / "labels" / f"{stem}.png"))
    assert labels.max() < 19
    label_ids = np.asarray(Image.open(out / "cityscapes_results" / "frankfurt" / f"{CITYSCAPES_STEM}_leftImg8bit.png"))
    np.testing.assert_array_equal(label_ids, TRAIN_ID_TO_LABEL_ID[labels])
    assert (out / "attention" / f"{stem}.png").is_file()


def test_predict_never_replaces_masks_or_earlier_results(saved_model, camvid_root, tmp_path, capsys):
    import shutil

    split = tmp_path / "camvid_val"  # a copy of a dataset split: images/ beside labels/
    (split / "images").mkdir(parents=True)
    (split / "labels").mkdir()
    image = sorted((camvid_root / "val" / "images").glob("*.png"))[0]
    shutil.copy(image, split / "images")
    shutil.copy(camvid_root / "val" / "labels" / image.name, split / "labels")
    mask = (split / "labels" / image.name).read_bytes()
    for options in ([], ["--overwrite"]):  # the command that used to overwrite the ground truth
        code = main(["predict", str(split / "images"), "--model", str(saved_model), "--out", str(split), *options])
        assert code == 2
        assert "is a dataset split (images/ beside labels/)" in capsys.readouterr().err
    assert (split / "labels" / image.name).read_bytes() == mask

    out = tmp_path / "predictions"
    base = ["predict", str(image), "--model", str(saved_model), "--out", str(out)]
    assert main(base) == 0
    first = (out / "labels" / image.name).read_bytes()
    (out / "labels" / image.name).write_bytes(b"an earlier result")
    assert main(base) == 2
    message = capsys.readouterr().err
    assert "already exist" in message and "--overwrite" in message
    assert (out / "labels" / image.name).read_bytes() == b"an earlier result"
    assert main(base + ["--overwrite"]) == 0
    assert (out / "labels" / image.name).read_bytes() == first


def test_predict_command_errors(saved_model, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.png").write_text("not an image")
    base = ["--model", str(saved_model), "--out", str(tmp_path / "out")]
    assert main(["predict", str(tmp_path / "empty")] + base) == 2
    assert "No image files" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "notes.png")] + base) == 2
    assert "Not a readable image" in capsys.readouterr().err
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "good.png")
    good = str(tmp_path / "good.png")
    assert main(["predict", good, "--scales", "-1"] + base) == 2
    assert "positive" in capsys.readouterr().err
    assert main(["predict", good, "--scales", "1", "--paper-scales"] + base) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["predict", good, "--window", "48"] + base) == 2
    assert "multiples of 32" in capsys.readouterr().err
    assert main(["predict", good, "--window", "64", "--stride", "96"] + base) == 2
    assert "must not exceed" in capsys.readouterr().err
    assert main(["predict", good, "--palette", "nope"] + base) == 2
    assert "existing file" in capsys.readouterr().err
    assert main(["predict", good, "--model", str(tmp_path / "good.png"), "--out", str(tmp_path / "o")]) == 2
    assert ".keras" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_evaluate_never_writes_predictions_over_ground_truth(saved_model, camvid_root, tmp_path, capsys):
    """`spgnet evaluate --predictions ROOT/val/labels` used to replace the masks it scored (and the
    next evaluation then scored 100 %): the rule of `spgnet predict --out` holds here too."""
    import shutil

    split = tmp_path / "val"
    (split / "images").mkdir(parents=True)
    (split / "labels").mkdir()
    for image in sorted((camvid_root / "val" / "images").glob("*.png"))[:2]:
        shutil.copy(image, split / "images")
        shutil.copy(camvid_root / "val" / "labels" / image.name, split / "labels")
    masks = {path.name: path.read_bytes() for path in (split / "labels").iterdir()}
    base = ["evaluate", "--model", str(saved_model), "--images", str(split / "images"), "--masks",
            str(split / "labels"), "--num-classes", "19", "--quiet"]  # the model has 19 classes
    for target in (split / "labels", split, split / "images"):
        for options in ([], ["--overwrite"]):
            assert main(base + ["--predictions", str(target), *options]) == 2
            message = capsys.readouterr().err
            assert "is a dataset split" in message or "would replace files the command reads" in message, message
    assert main(base + ["--report", str(split / "labels" / "report")]) == 2
    assert "--report" in capsys.readouterr().err
    assert {path.name: path.read_bytes() for path in (split / "labels").iterdir()} == masks

    out = tmp_path / "predictions"
    assert main(base + ["--predictions", str(out)]) == 0
    written = sorted(path.name for path in out.iterdir())
    assert written == sorted(masks)
    assert main(base + ["--predictions", str(out)]) == 2
    assert "already exist" in capsys.readouterr().err
    assert main(base + ["--predictions", str(out), "--overwrite"]) == 0
    assert {path.name: path.read_bytes() for path in (split / "labels").iterdir()} == masks
