"""Small datasets in the layouts people have, written by the tests (random pixels, known labels)."""

from pathlib import Path

import numpy as np
from PIL import Image

from spgnet_keras.classes import default_palette

SIZE = (32, 48)
COLOURS = [(0, 0, 0), (128, 64, 128), (0, 0, 142), (220, 20, 60)]
NAMES = ["background", "road", "car", "person"]


def labels_of(index, size=SIZE, num_classes=4):
    """A label map whose classes depend on `index` (column bands), values 0..num_classes-1."""
    height, width = size
    labels = np.zeros(size, np.uint8)
    band = width // num_classes
    for value in range(num_classes):
        labels[:, value * band:(value + 1) * band] = (value + index) % num_classes
    return labels


def write_image(path, index, size=SIZE):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(index).integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def write_mask(path, labels, mode="L", palette=None):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "RGB":
        Image.fromarray(np.asarray(palette, np.uint8)[labels]).save(path)
    else:
        image = Image.fromarray(labels, mode)
        if mode == "P":
            flat = [value for colour in palette for value in colour]
            image.putpalette(flat + [0] * (768 - len(flat)))
        image.save(path)
    return path


def suffixed_layout(root, train=6, valid=2):
    """mydata/{train,valid}/{img/*.jpg, ann/*_mask.png}: the issue's layout."""
    root = Path(root)
    for split, count in (("train", train), ("valid", valid)):
        for index in range(count):
            stem = f"{split}_{index:03d}"
            write_image(root / split / "img" / f"{stem}.jpg", index)
            write_mask(root / split / "ann" / f"{stem}_mask.png", labels_of(index))
    return root


def voc_layout(root, count=6, val=("2007_000002", "2007_000005")):
    """VOC2012-style: JPEGImages/*.jpg, SegmentationClass/*.png (palette PNGs, 255 borders),
    ImageSets/Segmentation/{train,val}.txt."""
    root = Path(root)
    stems = [f"2007_{index:06d}" for index in range(count)]
    palette = default_palette(256).tolist()  # VOC's own: 255 (borders) is (224, 224, 192)
    for index, stem in enumerate(stems):
        write_image(root / "JPEGImages" / f"{stem}.jpg", index)
        labels = labels_of(index)
        labels[0, :] = 255  # object borders / "void"
        write_mask(root / "SegmentationClass" / f"{stem}.png", labels, mode="P", palette=palette)
    lists = root / "ImageSets" / "Segmentation"
    lists.mkdir(parents=True)
    (lists / "train.txt").write_text("\n".join(s for s in reversed(stems) if s not in val) + "\n")
    (lists / "val.txt").write_text("\n".join(val) + "\n")
    return root


def classes_csv(path, names=NAMES, colours=COLOURS):
    path = Path(path)
    path.write_text("name,r,g,b\n" + "".join(f"{n},{r},{g},{b}\n" for n, (r, g, b) in zip(names, colours)))
    return path
