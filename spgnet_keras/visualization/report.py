"""The evaluation report: one static HTML page a person opens from disk and browses.

`write_report(result, out_dir, ...)` writes `out_dir/index.html` (inline CSS, no script, no
network reference), `out_dir/report.json` (the numbers it shows, `EvaluationResult.to_dict`)
and its figures as PNG files under `out_dir/images/`:

- summary: mIoU, pixel accuracy, per-class IoU as a sorted bar chart in the class colours,
  the dataset and the model;
- the row-normalised confusion matrix as a heat map;
- every image's mIoU, and the worst and best images as image / ground truth / prediction /
  error map (wrong pixels red, ignored pixels chequered) with a colour legend;
- the guided attention (paper Sec 4.5) of the classes most confused in a few of the worst
  images (SPGNet models with `guidance="spg"`);
- the training curves of a run folder (`history.csv`).
"""

from __future__ import annotations

import html
import json
import math
import os
import string
from pathlib import Path
from typing import Callable

import numpy as np

from spgnet_keras.constants import IGNORE_LABEL
from spgnet_keras.errors import InvalidInputError
from spgnet_keras.visualization.colors import resolve_palette, save_figure
from spgnet_keras.visualization.panels import ERROR_COLOR, colour_labels, enlarge, error_map, strip

__all__ = ["evaluate_report", "write_report"]

TEMPLATE = Path(__file__).with_name("report.html")
MIN_PANEL_WIDTH = 360
"""Examples are enlarged (nearest neighbour, by an integer factor) to at least this width per panel."""


def _text(value) -> str:
    return html.escape(str(value), quote=True)


def _value(value) -> str:
    """A number as the page stores it (`repr`, exactly the JSON's), "nan" for undefined."""
    return "nan" if value is None or not math.isfinite(value) else repr(float(value))


def _percent(value) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{100 * value:.2f}"


def _rgb(colour) -> str:
    return "rgb({},{},{})".format(*(int(c) for c in colour))


class _Pairs:
    """Image path -> label of the evaluated data (file pairs or a `ResolvedData`)."""

    def __init__(self, data, read_label):
        from spgnet_keras.data import load_label

        if data is None:
            self.labels, self.read = {}, None
            return
        pairs = data.val_pairs if hasattr(data, "val_pairs") else list(data)
        pairs = [(p[0], p[1]) for p in pairs if isinstance(p[0], (str, os.PathLike))]
        if read_label is None and hasattr(data, "dataset_arguments"):
            from spgnet_keras.data import MaskReader

            read_label = MaskReader([mask for _, mask in pairs], **data.dataset_arguments())
        self.labels = {str(image): label for image, label in pairs}
        self.read = read_label or (lambda path: load_label(path))

    def label(self, image_path):
        path = self.labels.get(str(image_path))
        return None if path is None else np.asarray(self.read(path))


def _classes_and_palette(result, model, data, palette):
    names = list(result.class_names)
    if palette is None and model is not None and getattr(model, "palette", None) is not None:
        palette = model.palette
    if palette is None:
        spec = getattr(data, "spec", None)
        palette = getattr(spec, "palette", None)
    try:
        colours = resolve_palette(palette, len(names)) if palette is not None else None
    except InvalidInputError:
        colours = None
    if colours is None:
        colours = resolve_palette(None, len(names))
    return names, np.asarray(colours[: len(names)], np.uint8)


def _attention_model(model):
    """(model, channels D) when the model has an SPG module to read attention from, else None."""
    from spgnet_keras.visualization.attention import attention_matrix

    if model is None or getattr(model, "guidance", None) != "spg":
        return None
    try:
        return attention_matrix(model).shape[1]
    except (InvalidInputError, AttributeError, ValueError):
        return None


def _predict(model, image, settings):
    from spgnet_keras.inference import predict_logits

    logits = predict_logits(model, image, scales=settings.get("scales", (1.0,)), flip=settings.get("flip", False),
                            output=settings.get("output", "prediction"), window=settings.get("window"),
                            stride=settings.get("stride"))
    return np.argmax(np.asarray(logits), axis=-1).astype(np.int32)


def write_report(
    result,
    out_dir: str | os.PathLike,
    model=None,
    data=None,
    run_dir: str | os.PathLike | None = None,
    num_examples: int = 4,
    num_attention: int = 2,
    palette=None,
    read_label: Callable[[str], np.ndarray] | None = None,
    ignore_index: int = IGNORE_LABEL,
    title: str | None = None,
) -> Path:
    """Writes the browsable report `out_dir/index.html` of an evaluation.

    The numbers come from `result` only (also written as `out_dir/report.json`); the model
    is run again on the few images it draws (the worst and best `num_examples`), with the
    evaluation's test-time settings (`result.settings`).

    Args:
        result: `EvaluationResult`. From `spgnet_keras.evaluation.evaluate` (its
            `per_image` scores name the worst and best images).
        out_dir: str or path. Folder of the page (created; `index.html`, `report.json`,
            `images/`).
        model: The evaluated model, or None for a page of numbers only. Its `class_names`
            and `palette` colour the page when it has them.
        data: The evaluated data: a `ResolvedData` or `(image path, label path)` pairs;
            needed for the example images.
        run_dir: str or path. A run folder of `spgnet train`: its `history.csv` gives the
            training curves.
        num_examples: int. Worst and best images shown (each).
        num_attention: int. Worst images with a guided-attention figure (Sec 4.5).
        palette: Class colours (anything `resolve_palette` accepts; default the model's,
            then the dataset's, then `default_palette`).
        read_label: Reads a label file into class indices (default: as the data was read).
        ignore_index: int. The label value that is not scored.
        title: str. Page title.

    Returns:
        The path of `index.html`.

    Example:

    ```python
    from spgnet_keras.evaluation import evaluate
    from spgnet_keras.visualization import write_report

    result = evaluate(model, pairs)
    write_report(result, "report", model=model, data=pairs)  # open report/index.html
    ```
    """
    out_dir = Path(out_dir)
    images_dir = out_dir / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    for old in images_dir.glob("*.png"):
        old.unlink()
    names, colours = _classes_and_palette(result, model, data, palette)
    record = result.to_dict()
    (out_dir / "report.json").write_text(json.dumps(record, indent=2) + "\n")
    settings = result.settings
    title = title or f"Evaluation report: {settings.get('dataset', 'data')}"
    sections = [("summary", "Summary"), ("confusion", "Confusion matrix"), ("images", "Per image")]
    if _attention_model(model) is not None and data is not None:
        sections.append(("attention", "Guided attention"))
    if _training_log(run_dir) is not None:
        sections.append(("training", "Training curves"))
    nav = "".join(f'<a href="#{key}">{name}</a>' for key, name in sections)
    body = [f"<h1>{_text(title)}</h1>", f"<nav>{nav}</nav>", _meta(result, model, run_dir)]
    body += _summary(result, names, colours)
    body += _confusion(result, names, colours)
    body += _examples(result, model, _Pairs(data, read_label), names, colours, images_dir, num_examples,
                      num_attention, ignore_index)
    body += _curves(run_dir, images_dir)
    page = string.Template(TEMPLATE.read_text()).substitute(title=_text(title), body="\n".join(body))
    path = out_dir / "index.html"
    path.write_text(page, encoding="utf-8")
    return path


def _meta(result, model, run_dir) -> str:
    settings = result.settings
    rows = [("dataset", settings.get("dataset")), ("validation data", settings.get("validation")),
            ("root", settings.get("root")), ("split", settings.get("split")), ("model file", settings.get("model"))]
    if model is not None:
        rows.append(("model", f"{model.__class__.__name__} {getattr(model, 'name', '')}"
                              f" ({model.count_params():,} parameters)"))
    if run_dir is not None:
        rows.append(("run folder", str(run_dir)))
    test_time = {k: settings[k] for k in ("scales", "flip", "window", "stride") if k in settings}
    rows.append(("test time", json.dumps(test_time)))
    rows.append(("images", result.num_images))
    rows.append(("seconds", f"{result.seconds:.1f}"))
    cells = "".join(f"<tr><th>{_text(k)}</th><td>{_text(v)}</td></tr>" for k, v in rows if v is not None)
    return f'<table class="meta">{cells}</table>'


def _summary(result, names, colours) -> list[str]:
    cards = [("mIoU", "miou", result.miou), ("pixel accuracy", "pixel_accuracy", result.pixel_accuracy),
             ("mean class accuracy", "mean_accuracy", result.mean_accuracy)]
    parts = ['<h2 id="summary">Summary</h2><div class="cards">']
    for label, key, value in cards:
        parts.append(f'<div class="card"><div>{label}</div><div class="value" data-metric="{key}" '
                     f'data-value="{_value(value)}">{_percent(value)} %</div></div>')
    parts.append(f'<div class="card"><div>images</div><div class="value">{result.num_images}</div></div></div>')
    parts.append('<h3>Per-class IoU (sorted)</h3><div class="bars">')
    iou = result.iou
    order = sorted(range(len(names)), key=lambda c: (-iou[c] if math.isfinite(iou[c]) else 1.0, c))
    pixels = result.pixels_per_class
    for c in order:
        width = 0.0 if not math.isfinite(iou[c]) else 100 * iou[c]
        parts.append(
            f'<div><span class="chip" style="background:{_rgb(colours[c])}"></span>{_text(names[c])}</div>'
            f'<div class="bar-track" title="{int(pixels[c]):,} labelled pixels"><div class="bar" '
            f'style="width:{width:.2f}%;background:{_rgb(colours[c])}"></div></div>'
            f'<div class="num" data-class="{_text(names[c])}" data-iou="{_value(iou[c])}">{_percent(iou[c])}</div>')
    parts.append("</div>")
    return parts


def _confusion(result, names, colours) -> list[str]:
    confusion = result.confusion.astype(np.float64)
    totals = confusion.sum(axis=1, keepdims=True)
    values = np.divide(confusion, totals, out=np.zeros_like(confusion), where=totals > 0)
    head = "".join(f'<th class="col"><span class="chip" style="background:{_rgb(colours[c])}"></span>'
                   f"{_text(n)}</th>" for c, n in enumerate(names))
    rows = [f'<tr><th>ground truth \\ predicted</th>{head}</tr>']
    for t, name in enumerate(names):
        cells = []
        for p in range(len(names)):
            v = values[t, p]
            ink = "#fff" if v > 0.5 else "#222"
            cells.append(f'<td style="background:rgba(31,90,180,{v:.3f});color:{ink}" '
                         f'title="{_text(name)} as {_text(names[p])}: {int(confusion[t, p]):,} pixels">'
                         f"{100 * v:.0f}</td>")
        rows.append(f'<tr><th style="text-align:right">{_text(name)} <span class="chip" '
                    f'style="background:{_rgb(colours[t])}"></span></th>{"".join(cells)}</tr>')
    return ['<h2 id="confusion">Confusion matrix</h2>',
            '<p class="note">Rows: ground truth; columns: prediction; % of each row (per-class recall on the '
            'diagonal). Hover a cell for its pixel count.</p>',
            f'<table class="confusion">{"".join(rows)}</table>']


def _legend(names, colours) -> str:
    items = [f'<span><span class="chip" style="background:{_rgb(c)}"></span>{_text(n)}</span>'
             for n, c in zip(names, colours)]
    items.append('<span><span class="chip ignore"></span>ignore (255, not scored)</span>')
    items.append(f'<span><span class="chip" style="background:{_rgb(ERROR_COLOR)}"></span>'
                 "error map: wrong pixel</span>")
    return f'<div class="legend">{"".join(items)}</div>'


def _image_name(score) -> str:
    return Path(score.image).name if score.image else f"image {score.index}"


def _examples(result, model, pairs, names, colours, images_dir, count, num_attention, ignore_index) -> list[str]:
    scores = [s for s in result.per_image if math.isfinite(s.miou)]
    ranked = sorted(scores, key=lambda s: (s.miou, s.index))
    parts = ['<h2 id="images">Per image</h2>']
    rows = "".join(
        f'<tr data-image-index="{s.index}" data-miou="{_value(s.miou)}"><td>{s.index}</td>'
        f"<td>{_text(_image_name(s))}</td><td class='num'>{_percent(s.miou)}</td>"
        f"<td class='num'>{_percent(s.pixel_accuracy)}</td><td class='num'>{s.pixels:,}</td></tr>"
        for s in ranked)
    parts.append(f"<details><summary>mIoU of all {len(ranked)} scored images, worst first</summary>"
                 '<table class="scores"><tr><th>#</th><th>image</th><th>mIoU %</th><th>pixel acc. %</th>'
                 f"<th>labelled pixels</th></tr>{rows}</table></details>")
    drawable = model is not None and pairs.labels
    if not drawable:
        parts.append('<p class="note">No example images: the report was written without the model or the '
                     "image files.</p>")
        return parts
    worst = ranked[:count]
    best = [s for s in reversed(ranked) if s not in worst][:count]
    parts.append(_legend(names, colours))
    drawn = {}
    columns = []
    for heading, chosen in (("Worst images", worst), ("Best images", best)):
        column = [f"<div><h3>{heading}</h3>"]
        for score in chosen:
            picture = _draw_example(score, model, pairs, result.settings, colours, images_dir, ignore_index)
            if picture is None:
                continue
            file_name, image, prediction = picture
            drawn[score.index] = (image, prediction)
            column.append(
                f'<div class="example" data-image-index="{score.index}"><b>{_text(_image_name(score))}</b>: '
                f'mIoU <span data-miou="{_value(score.miou)}">{_percent(score.miou)} %</span>, pixel accuracy '
                f"{_percent(score.pixel_accuracy)} %"
                '<div class="panel-titles"><span>image</span><span>ground truth</span><span>prediction</span>'
                f'<span>error map</span></div><img src="images/{file_name}" alt="{_text(_image_name(score))}"></div>')
        columns.append("".join(column) + "</div>")
    parts.append(f'<div class="columns">{"".join(columns)}</div>')
    parts += _attention(worst[:num_attention], drawn, model, names, colours, images_dir)
    return parts


def _draw_example(score, model, pairs, settings, colours, images_dir, ignore_index):
    from PIL import Image

    from spgnet_keras.data import load_image

    if score.image is None:
        return None
    label = pairs.label(score.image)
    if label is None:
        return None
    image = load_image(score.image)
    prediction = _predict(model, image, settings)
    factor = max(1, math.ceil(MIN_PANEL_WIDTH / image.shape[1]))
    panels = [image, colour_labels(label, colours, ignore_index), colour_labels(prediction, colours, ignore_index),
              error_map(image, label, prediction, ignore_index)]
    file_name = f"example_{score.index:05d}.png"
    Image.fromarray(strip([enlarge(p, factor) for p in panels])).save(images_dir / file_name)
    return file_name, image, prediction


def _attention(scores, drawn, model, names, colours, images_dir) -> list[str]:
    from spgnet_keras.visualization.attention import (
        TOP_K,
        attention_figure,
        guided_attention_maps,
    )

    channels = _attention_model(model)
    if channels is None or not scores:
        return []
    parts = ['<h2 id="attention">Guided attention (Sec 4.5)</h2>',
             '<p class="note">For the worst images: the guided attention of the SPG module after stage 1 for the '
             f"classes with the most wrong pixels there (missed or falsely predicted), top {min(TOP_K, channels)} "
             "channels per class, blue = 0 to red = 1 (min-max per map).</p>"]
    for score in scores:
        if score.index not in drawn:
            continue
        image, prediction = drawn[score.index]
        confusion = score.confusion
        errors = confusion.sum(axis=0) + confusion.sum(axis=1) - 2 * np.diag(confusion)
        classes = [int(c) for c in np.argsort(-errors, kind="stable")[:3] if errors[c] > 0] or [int(np.argmax(
            confusion.sum(axis=1)))]
        maps = guided_attention_maps(model, image, classes, top_k=min(TOP_K, channels))
        figure = attention_figure(image, maps, [names[c] for c in classes], predictions=prediction, palette=colours)
        file_name = f"attention_{score.index:05d}.png"
        save_figure(figure, images_dir / file_name, dpi=100)
        parts.append(f'<div class="figure"><b>{_text(_image_name(score))}</b> '
                     f'({", ".join(_text(names[c]) for c in classes)})<br>'
                     f'<img src="images/{file_name}" alt="guided attention"></div>')
    return parts


def _training_log(run_dir):
    """The run's `history.csv` when it records at least one epoch, else None: a run killed
    between its backup and its CSV row at the end of epoch 1 leaves a log without rows, and a
    continuation that then has no epoch left to train still reports its evaluation."""
    from spgnet_keras.visualization.curves import read_csv_log

    if run_dir is None or not (Path(run_dir) / "history.csv").is_file():
        return None
    try:
        read_csv_log(Path(run_dir) / "history.csv")
    except InvalidInputError:
        return None
    return Path(run_dir) / "history.csv"


def _curves(run_dir, images_dir) -> list[str]:
    from spgnet_keras.visualization.curves import plot_training_curves

    log = _training_log(run_dir)
    if log is None:
        return []
    figure = plot_training_curves(log)
    save_figure(figure, images_dir / "training_curves.png", dpi=100)
    return ['<h2 id="training">Training curves</h2>',
            '<p class="note">From the run\'s history.csv; loss panels on a log axis, limited to the later epochs '
            "when epoch 1 is far above them.</p>",
            '<div class="figure"><img src="images/training_curves.png" alt="training curves"></div>']


def evaluate_report(model, data, out_dir: str | os.PathLike, run_dir: str | os.PathLike | None = None,
                    num_examples: int = 4, **kwargs):
    """Evaluates `model` on `data` and writes the report: `evaluate` plus `write_report`.

    Args:
        model: The model to evaluate.
        data: A `ResolvedData` (evaluated with `evaluate_data`) or what
            `spgnet_keras.evaluation.evaluate` takes (image/label path pairs for pictures).
        out_dir: str or path. Folder of the page.
        run_dir: str or path. Run folder whose training curves to show.
        num_examples: int. Worst and best images shown.
        **kwargs: Passed to the evaluation (scales, flip, max_images, ...).

    Returns:
        The `EvaluationResult`.

    Example:

    ```python
    from spgnet_keras.visualization import evaluate_report

    result = evaluate_report(model, pairs, "report")  # report/index.html
    ```
    """
    from spgnet_keras.evaluation import evaluate, evaluate_data

    result = evaluate_data(model, data, **kwargs) if hasattr(data, "val_pairs") else evaluate(model, data, **kwargs)
    write_report(result, out_dir, model=model, data=data, run_dir=run_dir, num_examples=num_examples,
                 read_label=kwargs.get("read_label"), ignore_index=kwargs.get("ignore_index", IGNORE_LABEL))
    return result
