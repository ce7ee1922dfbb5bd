"""The evaluation report (`write_report`, `spgnet evaluate --report`): its numbers are the
JSON's, every image it shows exists, nothing comes from the network, and a real headless
browser renders it without console errors. Also the per-image scores of `evaluate` and the
figure fixes (readable loss curves, overlay legends)."""

import json
import math
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from spgnet_keras import SPGNet
from spgnet_keras.cli import main
from spgnet_keras.evaluation import evaluate, to_json
from spgnet_keras.visualization import evaluate_report, overlay_figure, plot_training_curves, write_report

NAMES = ("sky", "road", "<car> & co")  # a name that must be escaped
PALETTE = [(70, 130, 180), (128, 64, 128), (0, 0, 142)]
SIZE = 64


def write_pairs(root, count=5):
    """Synthetic 64x64 image/label PNG pairs (3 classes, a band of ignore at the top)."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    pairs = []
    for index in range(count):
        label = np.zeros((SIZE, SIZE), np.uint8)
        label[24:] = 1
        label[40:, 8 + 6 * index: 40] = 2
        label[:3] = 255
        image = np.clip(rng.normal(60 + 70 * np.minimum(label, 3)[..., None], 20, (SIZE, SIZE, 3)), 0, 255)
        Image.fromarray(image.astype(np.uint8)).save(root / "images" / f"frame{index}.png")
        Image.fromarray(label).save(root / "masks" / f"frame{index}.png")
        pairs.append((str(root / "images" / f"frame{index}.png"), str(root / "masks" / f"frame{index}.png")))
    return pairs


def write_history(run_dir):
    """A CSVLogger log whose first validation loss (82) dwarfs the later ones."""
    run_dir.mkdir(parents=True, exist_ok=True)
    rows = ["epoch,loss,miou,val_loss,val_miou", "0,3.1,0.10,82.0,0.05", "1,1.2,0.30,0.90,0.31",
            "2,0.8,0.40,0.70,0.38", "3,0.6,0.45,0.65,0.41"]
    (run_dir / "history.csv").write_text("\n".join(rows) + "\n")
    return run_dir


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(3)
    return SPGNet(3, backbones=("resnet18", "resnet18"), decoder_channels=16, class_names=NAMES, palette=PALETTE)


@pytest.fixture(scope="module")
def report(model, tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    pairs = write_pairs(root / "data")
    result = evaluate(model, pairs)
    page = write_report(result, root / "report", model=model, data=pairs, run_dir=write_history(root / "run"),
                        num_examples=2, num_attention=1)
    to_json(result, root / "metrics.json")
    return page, result, json.loads((root / "metrics.json").read_text())


class PageParser(HTMLParser):
    """Collects the attributes of every start tag and the raw text of style blocks."""

    def __init__(self):
        super().__init__()
        self.tags, self.styles, self._in_style = [], [], False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.styles.append(data)


def parse(page):
    parser = PageParser()
    parser.feed(Path(page).read_text(encoding="utf-8"))
    return parser


def number(text):
    return math.nan if text == "nan" else float(text)


def same(value, expected):
    return (expected is None and math.isnan(value)) or value == expected


# ---------------------------------------------------------------- per-image scores


def test_evaluate_keeps_per_image_scores(report):
    _, result, record = report
    assert len(result.per_image) == result.num_images == 5
    np.testing.assert_array_equal(sum(s.confusion for s in result.per_image), result.confusion)
    assert [s.index for s in result.per_image] == list(range(5))
    assert result.per_image[2].image.endswith("frame2.png")
    for score, saved in zip(result.per_image, record["per_image"]):
        assert saved["miou"] == score.miou and saved["confusion_matrix"] == score.confusion.tolist()
        assert len(saved["iou"]) == 3


# ---------------------------------------------------------------- the page


def test_page_numbers_equal_the_json(report):
    page, _, record = report
    assert json.loads((page.parent / "report.json").read_text())["per_class"] == record["per_class"]
    tags = parse(page).tags
    metrics = {a["data-metric"]: number(a["data-value"]) for _, a in tags if "data-metric" in a}
    for key in ("miou", "pixel_accuracy", "mean_accuracy"):
        assert same(metrics[key], record[key]), key
    per_class = {a["data-class"]: number(a["data-iou"]) for _, a in tags if "data-class" in a}
    assert set(per_class) == set(NAMES)  # html.escape'd in the file, the same names once parsed
    for name in NAMES:
        assert same(per_class[name], record["per_class"][name]["iou"]), name
    per_image = {int(a["data-image-index"]): number(a["data-miou"]) for _, a in tags
                 if "data-image-index" in a and "data-miou" in a}
    assert len(per_image) == 5
    for saved in record["per_image"]:
        assert same(per_image[saved["index"]], saved["miou"])
    bars = [number(a["data-iou"]) for _, a in tags if "data-iou" in a]
    defined = [v for v in bars if not math.isnan(v)]
    assert defined == sorted(defined, reverse=True)  # the bar chart is sorted
    assert "&lt;car&gt; &amp; co" in page.read_text() and "<car>" not in page.read_text()


def test_page_images_exist_and_nothing_comes_from_the_network(report):
    page, _, _ = report
    parser = parse(page)
    sources = [a.get("src") or a.get("href") for tag, a in parser.tags if a.get("src") or a.get("href")]
    images = [a["src"] for tag, a in parser.tags if tag == "img"]
    assert any(s.startswith("images/example_") for s in images) and "images/training_curves.png" in images
    assert any(s.startswith("images/attention_") for s in images)
    for source in images:
        path = page.parent / source
        assert path.is_file() and path.stat().st_size > 0, source
        assert Image.open(path).size[0] >= 360, source  # readable size
    for source in sources:
        assert not re.match(r"^(https?:)?//", source) and ":" not in source, source
    text = page.read_text()
    assert "http://" not in text and "https://" not in text and "@import" not in text
    assert not any(tag in ("script", "link") for tag, _ in parser.tags)
    assert not any(re.search(r"url\(", style) for style in parser.styles)


def test_report_without_model_has_numbers_only(report, tmp_path):
    _, result, _ = report
    page = write_report(result, tmp_path / "numbers")
    tags = parse(page).tags
    assert not any(tag == "img" for tag, _ in tags)
    assert any(a.get("data-metric") == "miou" for _, a in tags)


def test_evaluate_report_evaluates_and_writes(model, tmp_path):
    pairs = write_pairs(tmp_path / "data", count=2)
    result = evaluate_report(model, pairs, tmp_path / "report", num_examples=1, max_images=2)
    assert result.num_images == 2 and len(result.per_image) == 2
    record = json.loads((tmp_path / "report" / "report.json").read_text())
    assert [s["miou"] for s in record["per_image"]] == [s.miou for s in result.per_image]
    assert len(list((tmp_path / "report" / "images").glob("example_*.png"))) == 2  # the worst and the best


def find_chromium():
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def render(page, screenshot):
    """Headless browser screenshot of `page`; returns its console messages."""
    browser = find_chromium()
    if browser is None:
        message = "chromium is not installed (Debian: apt-get install -y chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the browser test: {message}")
        pytest.skip(message)
    command = [browser, "--headless", "--disable-gpu", "--hide-scrollbars", "--window-size=1280,1800",
               "--virtual-time-budget=3000", "--enable-logging=stderr", "--v=0", f"--screenshot={screenshot}",
               Path(page).resolve().as_uri()]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.insert(1, "--no-sandbox")  # chromium refuses to run as root with its sandbox
    run = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    return [line for line in run.stderr.splitlines() if ":CONSOLE" in line]


def test_a_headless_browser_renders_the_page(report, tmp_path):
    page, _, _ = report
    console = render(page, tmp_path / "shot.png")
    assert console == []
    shot = np.asarray(Image.open(tmp_path / "shot.png").convert("RGB"))
    assert shot.shape[:2] == (1800, 1280)
    assert shot.std() > 20 and len(np.unique(shot.reshape(-1, 3), axis=0)) > 100  # not a blank page
    # The console check does see errors: a page with a failing script reports them.
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><script>undefinedFunction();</script></body></html>")
    assert any("undefinedFunction" in line for line in render(bad, tmp_path / "bad.png"))


def test_evaluate_command_writes_the_report(model, tmp_path, capsys):
    write_pairs(tmp_path / "data", count=3)
    model.save(tmp_path / "model.keras")
    code = main(["evaluate", "--model", str(tmp_path / "model.keras"), "--images", str(tmp_path / "data/images"),
                 "--masks", str(tmp_path / "data/masks"), "--num-classes", "3", "--json", str(tmp_path / "m.json"),
                 "--report", str(tmp_path / "report"), "--quiet"])
    assert code == 0, capsys.readouterr().err
    assert f"wrote {tmp_path / 'report' / 'index.html'}" in capsys.readouterr().out
    record = json.loads((tmp_path / "m.json").read_text())
    tags = parse(tmp_path / "report" / "index.html").tags
    miou = next(number(a["data-value"]) for _, a in tags if a.get("data-metric") == "miou")
    assert same(miou, record["miou"]) and len(record["per_image"]) == 3
    assert any(tag == "img" and a["src"].startswith("images/example_") for tag, a in tags)


# ---------------------------------------------------------------- figures


def test_loss_curves_are_not_flattened_by_the_first_epoch(tmp_path):
    figure = plot_training_curves(write_history(tmp_path) / "history.csv")
    loss_axis = next(axis for axis in figure.axes if axis.get_title() == "loss")
    assert loss_axis.get_yscale() == "log"
    assert loss_axis.get_ylim()[1] < 5  # the 82 of epoch 1 is off scale, the later epochs fill the panel
    assert any("off scale" in text.get_text() for text in loss_axis.texts)
    miou_axis = next(axis for axis in figure.axes if axis.get_title() == "miou")
    assert miou_axis.get_yscale() == "linear"


def test_overlay_figure_has_a_legend():
    image = np.zeros((30, 40, 3), np.uint8)
    prediction = np.zeros((30, 40), np.int64)
    prediction[10:, :] = 2
    figure = overlay_figure(image, prediction, PALETTE, NAMES, label=np.ones((30, 40), np.int64))
    labels = [text.get_text() for legend in figure.legends for text in legend.get_texts()]
    assert labels == list(NAMES)  # the classes in the prediction or the ground truth
    assert figure.get_size_inches()[0] >= 12


@pytest.mark.parametrize("log", ["", "epoch,loss\n"])
def test_a_training_log_without_epochs_leaves_the_curves_out(model, tmp_path, log):
    """A run killed between its backup and its CSV row at the end of epoch 1 leaves history.csv
    empty or header-only; the report of its continuation is written without the curves."""
    pairs = write_pairs(tmp_path / "data")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "history.csv").write_text(log)
    page = write_report(evaluate(model, pairs), tmp_path / "report", model=model, data=pairs, run_dir=run_dir,
                        num_examples=1, num_attention=0)
    text = Path(page).read_text(encoding="utf-8")
    assert 'id="summary"' in text or "Summary" in text
    assert 'id="training"' not in text and not (tmp_path / "report" / "images" / "training_curves.png").exists()
