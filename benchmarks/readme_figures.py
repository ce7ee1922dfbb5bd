"""The README's pictures from a trained SPGNet: guided attention (Sec 4.5) and prediction overlays.

Writes `guided_attention.png` and `overlay.png` into `--out` (default `docs/images`):

* `guided_attention.png`: one row per chosen CamVid val frame: the image, the model's
  prediction and, for each of `--classes`, the paper's guided-attention map (Sec 4.5,
  Fig 4): the L2 norm of the 15 attention channels with the largest weights for that class
  in the SPG module's `C x D` attention matrix, min-max normalised per map (blue 0, red 1),
  blended over the image (`spgnet_keras.visualization.guided_attention_maps` and
  `attention_figure`).
* `overlay.png`: the chosen frames' predictions blended over the images
  (`visualization.overlay`, alpha 0.5, CamVid colours), at the images' own resolution,
  side by side with a white gap (no axes, no titles: the pixels themselves).

Frames. CamVid val is 101 frames of one video sequence (0016E5_07959 ... 08159, every 2nd
frame), so neighbouring frames look alike. The frames are chosen from the ground-truth
labels, deterministically: among the frames holding at least `--min-pixels` labelled
pixels of every `--require` class (default Car and Pedestrian), greedy farthest-point
selection on the per-frame class histograms (Hellinger distance, which lets small classes
count), starting from the frame farthest from the candidates' mean histogram, with chosen
frames at least `--min-gap` frame numbers apart (the gap is halved until enough frames
fit). The script prints each choice with its reason.

It also evaluates the model on all val images (one scale, no flip, as the training run's
validation) and prints the mIoU and the IoU of the displayed classes, for the caption;
`--caption-json` writes them (and the chosen frames) to a JSON file (a bare file name is
placed in `--out`).

Example::

    python benchmarks/readme_figures.py --model runs/camvid_benchmark/model.keras \\
        --caption-json readme_figures.json
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

_common.setup_tensorflow_logging()

import numpy as np  # noqa: E402

from spgnet_keras.data import (  # noqa: E402
    dataset_spec,
    load_image,
    load_label,  # noqa: E402
)
from spgnet_keras.evaluation import dataset_pairs, evaluate  # noqa: E402
from spgnet_keras.inference import load_model, predict  # noqa: E402
from spgnet_keras.visualization import (  # noqa: E402
    TOP_K,
    attention_figure,
    guided_attention_maps,
    overlay,
    resolve_palette,
    save_figure,
)

DEFAULT_CLASSES = "Car,Pedestrian,Road,Tree,Building"
DEFAULT_REQUIRE = "Car,Pedestrian"
GAP_PIXELS = 4  # white columns between the overlay panels


# --------------------------------------------------------------------------------------
# Frame choice
# --------------------------------------------------------------------------------------


def frame_number(path, fallback):
    """The frame number of a CamVid file name such as `0016E5_07959.png` (else `fallback`)."""
    tail = Path(path).stem.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else fallback


def class_histograms(pairs, num_classes, ignore_index=255):
    """`int64 [N, C]` labelled pixels of each class per label file."""
    counts = np.zeros((len(pairs), num_classes), np.int64)
    for row, (_, label_path) in enumerate(pairs):
        label = load_label(label_path)
        valid = label[label != ignore_index]
        counts[row] = np.bincount(valid[valid < num_classes], minlength=num_classes)[:num_classes]
    return counts


def hellinger(p, q):
    """Hellinger distance between histograms (rows of fractions), in [0, 1]."""
    return np.sqrt(0.5 * np.sum((np.sqrt(p) - np.sqrt(q)) ** 2, axis=-1))


def choose_frames(counts, numbers, required, count, min_pixels, min_gap):
    """Greedy farthest-point choice of `count` frames (see the module docstring).

    Returns `(chosen row indices, reasons, gap used)`.
    """
    fractions = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    candidates = [i for i in range(len(counts)) if all(counts[i, c] >= min_pixels for c in required)]
    if len(candidates) < count:
        raise SystemExit(f"Only {len(candidates)} val frames hold >= {min_pixels} pixels of every required class; "
                         f"need {count}. Lower --min-pixels or change --require.")
    mean = fractions[candidates].mean(axis=0)
    gap = min_gap
    while True:
        first = max(candidates, key=lambda i: (hellinger(fractions[i], mean), -i))
        chosen = [first]
        reasons = [f"farthest from the candidates' mean histogram (Hellinger {hellinger(fractions[first], mean):.3f})"]
        while len(chosen) < count:
            allowed = [i for i in candidates if i not in chosen
                       and all(abs(numbers[i] - numbers[j]) >= gap for j in chosen)]
            if not allowed:
                break
            distance = {i: min(hellinger(fractions[i], fractions[j]) for j in chosen) for i in allowed}
            best = max(allowed, key=lambda i: (distance[i], -i))
            nearest = min(chosen, key=lambda j: hellinger(fractions[best], fractions[j]))
            reasons.append(f"farthest from the frames already chosen (Hellinger {distance[best]:.3f} "
                           f"to the nearest, {numbers[nearest]:05d})")
            chosen.append(best)
        if len(chosen) == count or gap <= 1:
            break
        gap = max(1, gap // 2)
        print(f"  not enough frames {gap * 2} frame numbers apart; retrying with a gap of {gap}")
    if len(chosen) < count:
        raise SystemExit(f"Could not choose {count} distinct frames.")
    return chosen, reasons, gap


# --------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------


def overlay_strip(images, predictions, palette, alpha=0.5, gap=GAP_PIXELS):
    """The overlays side by side at full resolution, `uint8 [H, sum(W) + gaps, 3]`."""
    height = max(image.shape[0] for image in images)
    panels = []
    for index, (image, prediction) in enumerate(zip(images, predictions)):
        panel = np.full((height, image.shape[1], 3), 255, np.uint8)
        panel[: image.shape[0]] = overlay(image, prediction, palette, alpha=alpha)
        if index:
            panels.append(np.full((height, gap, 3), 255, np.uint8))
        panels.append(panel)
    return np.concatenate(panels, axis=1)


def percent(value):
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f} %"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a trained SPGNet with SPG guidance (.keras)")
    parser.add_argument("--data-root", default=None, help="CamVid root (default: $SPGNET_DATA_DIR or "
                                                          "../shared/data/camvid)")
    parser.add_argument("--out", default=str(_common.REPO / "docs" / "images"), help="output folder "
                                                                                      "(default docs/images)")
    parser.add_argument("--frames", type=int, default=3, help="val frames to show (default 3)")
    parser.add_argument("--classes", default=DEFAULT_CLASSES, help=f"attention classes (default {DEFAULT_CLASSES})")
    parser.add_argument("--require", default=DEFAULT_REQUIRE,
                        help=f"classes every chosen frame must show (default {DEFAULT_REQUIRE}; '' for none)")
    parser.add_argument("--min-pixels", type=int, default=100,
                        help="labelled pixels of each --require class a frame needs (default 100)")
    parser.add_argument("--min-gap", type=int, default=40, help="frame numbers between chosen frames (default 40)")
    parser.add_argument("--stage", type=int, default=1, help="the SPG module after this stage (default 1)")
    parser.add_argument("--caption-json", default=None, help="also write the numbers to this JSON file")
    parser.add_argument("--dpi", type=int, default=120)
    args = parser.parse_args(argv)
    if args.frames < 1:
        parser.error("--frames must be positive")

    root = _common.camvid_root(args.data_root)
    spec = dataset_spec("camvid", root)
    names = list(spec.class_names)
    classes = [c.strip() for c in args.classes.split(",") if c.strip()]
    required = [c.strip() for c in args.require.split(",") if c.strip()]
    for name in classes + required:
        if name not in names:
            parser.error(f"unknown class {name!r}; CamVid classes: {', '.join(names)}")
    palette = resolve_palette("camvid", spec.num_classes)
    out = Path(args.out)
    started = time.perf_counter()

    # 1. Frames, from the labels alone.
    pairs = dataset_pairs("camvid", root, "val")
    counts = class_histograms(pairs, spec.num_classes, spec.ignore_index)
    numbers = [frame_number(image, 2 * i) for i, (image, _) in enumerate(pairs)]
    required_idx = [names.index(c) for c in required]
    chosen, reasons, gap = choose_frames(counts, numbers, required_idx, args.frames, args.min_pixels, args.min_gap)
    candidates = sum(all(counts[i, c] >= args.min_pixels for c in required_idx) for i in range(len(pairs)))
    print(f"{len(pairs)} val frames ({Path(pairs[0][0]).stem} ... {Path(pairs[-1][0]).stem}); {candidates} hold "
          f">= {args.min_pixels} pixels of each of {required or ['(no class required)']}.")
    print(f"Chosen frames (greedy farthest-point on class histograms, >= {gap} frame numbers apart):")
    frames = []
    for row, reason in zip(chosen, reasons):
        total = max(int(counts[row].sum()), 1)
        top = np.argsort(-counts[row], kind="stable")[:4]
        mix = ", ".join(f"{names[c]} {100 * counts[row, c] / total:.0f}%" for c in top)
        need = ", ".join(f"{names[c]} {counts[row, c]} px" for c in required_idx)
        print(f"  {Path(pairs[row][0]).stem}: {reason}; {need}; mostly {mix}")
        frames.append(dict(frame=Path(pairs[row][0]).stem, image=pairs[row][0], label=pairs[row][1], reason=reason,
                           pixels={names[c]: int(counts[row, c]) for c in range(spec.num_classes)}))

    # 2. The model's val mIoU (all images, one scale, as the training run's validation).
    model = load_model(args.model)
    if getattr(model, "guidance", None) != "spg":
        raise SystemExit(f"{args.model}: guided attention needs an SPGNet with guidance='spg', "
                         f"got {getattr(model, 'guidance', type(model).__name__)!r}.")
    compiled = _common.CompiledModel(model)
    result = evaluate(compiled, pairs, num_classes=spec.num_classes, class_names=names)
    iou = dict(zip(names, (None if math.isnan(v) else float(v) for v in result.iou)))
    print(f"Val mIoU {percent(result.miou)} (pixel accuracy {percent(result.pixel_accuracy)}, "
          f"{result.num_images} images, one scale, {result.seconds:.0f} s)")
    print("IoU of the displayed classes: " + ", ".join(f"{c} {percent(iou[c])}" for c in classes))

    # 3. Figures.
    images, predictions, maps = [], [], []
    for frame in frames:
        image = load_image(frame["image"])
        images.append(image)
        predictions.append(predict(compiled, image))
        maps.append(guided_attention_maps(model, image, classes, stage=args.stage, class_names=names))
    figure = attention_figure(images, maps, classes, predictions=predictions, palette=palette)
    for row, frame in enumerate(frames):  # the frame name at the left of each row
        axis = figure.axes[row * (2 + len(classes))]
        axis.text(-0.03, 0.5, frame["frame"], transform=axis.transAxes, rotation=90, ha="right", va="center",
                  fontsize=9)
    attention_path = save_figure(figure, out / "guided_attention.png", dpi=args.dpi)
    from PIL import Image

    overlay_path = out / "overlay.png"
    out.mkdir(parents=True, exist_ok=True)
    Image.fromarray(overlay_strip(images, predictions, palette)).save(overlay_path)
    print(f"Wrote {attention_path} and {overlay_path} ({time.perf_counter() - started:.0f} s)")

    if args.caption_json:
        path = Path(args.caption_json)
        path = path if path.parent != Path(".") or path.is_absolute() else out / path
        payload = dict(
            command=_common.command_line(),
            model=str(args.model),
            data_root=str(root),
            evaluation=dict(miou=result.miou, pixel_accuracy=result.pixel_accuracy, num_images=result.num_images,
                            settings=result.settings, per_class_iou=iou),
            displayed_classes={c: iou[c] for c in classes},
            attention=dict(stage=args.stage, top_k=TOP_K, normalization="minmax"),
            frame_choice=dict(require=required, min_pixels=args.min_pixels, min_gap=args.min_gap, gap_used=gap,
                              candidates=int(candidates)),
            frames=frames,
            figures=[str(attention_path), str(overlay_path)],
            versions=_common.versions(),
            commit=_common.git_commit(),
        )
        print(f"Wrote {_common.write_json(path, payload)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
