"""SYNTHETIC procedural street scenes with pixel-exact labels (for tests and smoke runs).

THIS DATA IS SYNTHETIC: cartoon-like scenes drawn with numpy, not photographs. It exists
so that training, evaluation and export can be exercised end to end without a real
dataset, and so that a small CNN can be checked to *learn* (classes differ by colour and
texture). Numbers obtained on it say nothing about real-world accuracy.

Classes (`SYNTHETIC_CLASSES`; palette = the Cityscapes colours of the same names):

====  ===========  ==========================================================================
 id   name         appearance
====  ===========  ==========================================================================
 0    sky          blue vertical gradient, very smooth
 1    building     beige/brick/grey/brown blocks above the horizon with a dark window grid
 2    road         dark grey fine-grained asphalt trapezoid with a dashed white centre line
 3    sidewalk     light warm-grey paving with a tile-line pattern, beside the road
 4    car          saturated body colour, rounded boxes, dark windows, black wheels
 5    pole         thin vertical metallic-grey bar with a lamp head
 6    person       skin-tone head (ellipse), coloured torso, dark legs
 7    vegetation   green, strongly speckled tree crowns (+ brown trunk) and hedges
====  ===========  ==========================================================================

No pixel is void (255). Layout per image: random horizon height and vanishing point,
a row of buildings with gaps, a road trapezoid, sidewalks elsewhere below the horizon,
then trees, poles, persons and cars drawn far-to-near with perspective scaling.

Everything is deterministic: image `i` of a split depends only on `(seed, split, i)`,
not on how many images are generated.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from spgnet_keras.constants import IGNORE_LABEL
from spgnet_keras.data.spec import DatasetSpec
from spgnet_keras.errors import InvalidInputError

SKY, BUILDING, ROAD, SIDEWALK, CAR, POLE, PERSON, VEGETATION = range(8)

SYNTHETIC_CLASSES: tuple[str, ...] = (
    "sky", "building", "road", "sidewalk", "car", "pole", "person", "vegetation")
SYNTHETIC_PALETTE: tuple[tuple[int, int, int], ...] = (
    (70, 130, 180), (70, 70, 70), (128, 64, 128), (244, 35, 232),
    (0, 0, 142), (153, 153, 153), (220, 20, 60), (107, 142, 35))
SYNTHETIC_SPEC = DatasetSpec(
    num_classes=len(SYNTHETIC_CLASSES),
    class_names=SYNTHETIC_CLASSES,
    palette=SYNTHETIC_PALETTE,
    ignore_index=IGNORE_LABEL,
    name="synthetic",
)

_BUILDING_COLOURS = np.array(
    [[196, 180, 150], [160, 82, 60], [128, 128, 134], [120, 92, 70], [175, 160, 140]], float)
_CAR_COLOURS = np.array(
    [[200, 20, 30], [20, 50, 190], [230, 200, 20], [20, 150, 60], [240, 120, 10],
     [150, 20, 160], [20, 170, 190]], float)
_CLOTHES_COLOURS = np.array(
    [[200, 30, 90], [40, 40, 160], [230, 110, 20], [90, 160, 40], [120, 40, 140],
     [230, 220, 60]], float)
_SPLIT_IDS = {"train": 0, "val": 1, "test": 2}


class _Canvas:
    """An image and its label map, painted region by region (later paint covers earlier)."""

    def __init__(self, height: int, width: int, rng: np.random.Generator):
        self.height, self.width, self.rng = height, width, rng
        self.yy, self.xx = np.mgrid[0:height, 0:width].astype(np.float32)
        self.image = np.zeros((height, width, 3), np.float32)
        self.label = np.zeros((height, width), np.uint8)
        # One standard-normal field per image, reused (scaled) by every texture: drawing
        # fresh noise per shape dominated the generation time.
        self._noise = rng.standard_normal((height, width, 3), dtype=np.float32)

    def paint(self, region: np.ndarray, class_id: int, colour) -> None:
        """Sets `region` pixels to `colour` (an RGB triple or an `[H, W, 3]` texture)."""
        colour = np.asarray(colour, np.float32)
        self.image[region] = colour[region] if colour.ndim == 3 else colour
        self.label[region] = class_id

    def noise(self, sigma: float, channels: int = 1) -> np.ndarray:
        """Gaussian noise `[H, W, channels]` (1 or 3) for texturing, from the shared field."""
        return sigma * self._noise[..., :channels]

    def jitter(self, colour, amount: float = 12.0) -> np.ndarray:
        """Returns `colour` with a small random per-channel offset."""
        return np.asarray(colour, np.float32) + self.rng.uniform(-amount, amount, 3)


def _rect(c: _Canvas, y0: float, x0: float, y1: float, x1: float) -> np.ndarray:
    """Boolean mask of the axis-aligned rectangle `[y0, y1) x [x0, x1)`."""
    return (c.yy >= y0) & (c.yy < y1) & (c.xx >= x0) & (c.xx < x1)


def _ellipse(c: _Canvas, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    """Boolean mask of an axis-aligned ellipse."""
    return ((c.yy - cy) / max(ry, 0.5)) ** 2 + ((c.xx - cx) / max(rx, 0.5)) ** 2 <= 1.0


def _rounded_box(c: _Canvas, y0: float, x0: float, y1: float, x1: float, r: float) -> np.ndarray:
    """Boolean mask of a rectangle with corners rounded by radius `r`."""
    r = max(min(r, (y1 - y0) / 2, (x1 - x0) / 2), 0.0)
    dy = np.maximum(np.maximum(y0 + r - c.yy, c.yy - (y1 - r)), 0)
    dx = np.maximum(np.maximum(x0 + r - c.xx, c.xx - (x1 - r)), 0)
    return _rect(c, y0, x0, y1, x1) & (dy ** 2 + dx ** 2 <= r ** 2 + 1e-6)


def _draw_sky(c: _Canvas) -> None:
    """Fills the frame with a smooth blue gradient (lighter towards the horizon)."""
    top = c.jitter([70, 130, 210], 15)
    bottom = c.jitter([170, 205, 235], 10)
    t = (c.yy / c.height)[..., None]
    c.paint(np.ones((c.height, c.width), bool), SKY, top * (1 - t) + bottom * t + c.noise(2))


def _draw_buildings(c: _Canvas, horizon: float) -> None:
    """Row of window-textured blocks standing on the horizon, with occasional gaps."""
    x = -c.rng.uniform(0, 0.1) * c.width
    while x < c.width:
        block_w = c.rng.uniform(0.12, 0.3) * c.width
        if c.rng.random() < 0.2:  # gap showing sky
            x += block_w * 0.5
            continue
        top = horizon * c.rng.uniform(0.05, 0.75)
        base = c.jitter(_BUILDING_COLOURS[c.rng.integers(len(_BUILDING_COLOURS))])
        pitch_y, pitch_x = c.rng.uniform(7, 12), c.rng.uniform(7, 12)
        # Texture only the block's bounding rows/columns (cheaper than full-frame arrays).
        rows = slice(max(int(top), 0), min(int(horizon) + 2, c.height))
        cols = slice(max(int(x), 0), min(int(x + block_w) + 1, c.width))
        yy, xx = c.yy[rows, cols], c.xx[rows, cols]
        windows = (((yy - top - 3) % pitch_y) < pitch_y * 0.5) & (
            ((xx - x - 3) % pitch_x) < pitch_x * 0.5)
        texture = np.empty_like(c.image)
        texture[rows, cols] = np.where(windows[..., None], np.float32([45, 55, 75]), base)
        texture[rows, cols] += c.noise(5)[rows, cols]
        c.paint(_rect(c, top, x, horizon + 1, x + block_w), BUILDING, texture)
        x += block_w


def _road_half_width(c: _Canvas, y: np.ndarray | float, horizon: float, spread: float):
    """Half width of the road at row `y` (zero at the horizon, widest at the bottom)."""
    return np.maximum(y - horizon, 0) / (c.height - horizon) * spread * c.width + 1.0


def _draw_ground(c: _Canvas, horizon: float, vanish_x: float, spread: float) -> None:
    """Sidewalk below the horizon and the road trapezoid with a dashed centre line."""
    below = c.yy >= horizon
    paving = c.jitter([185, 170, 160], 10) + c.noise(4)
    tiles = ((c.xx % 9) < 1) | ((c.yy % 6) < 1)
    paving = np.where(tiles[..., None], paving - 45, paving)
    c.paint(below, SIDEWALK, paving)
    half = _road_half_width(c, c.yy, horizon, spread)
    road = below & (np.abs(c.xx - vanish_x) < half)
    asphalt = c.jitter([75, 75, 80], 8) + c.noise(9, 1)
    dashes = (np.abs(c.xx - vanish_x) < half * 0.03 + 0.5) & ((c.yy % 14) < 7)
    asphalt = np.where(dashes[..., None], np.float32([235, 235, 225]), asphalt)
    c.paint(road, ROAD, asphalt)


def _draw_tree(c: _Canvas, ground_y: float, x: float, scale: float) -> None:
    """A speckled green crown on a brown trunk, or a low hedge, all labelled vegetation."""
    foliage = c.jitter([60, 120, 45], 15) + c.noise(22, 1) * np.float32([0.5, 1.0, 0.4])
    if c.rng.random() < 0.3:  # hedge
        hedge = _rounded_box(c, ground_y - 10 * scale - 2, x - 22 * scale - 2, ground_y,
                             x + 22 * scale + 2, 4 * scale)
        c.paint(hedge, VEGETATION, foliage)
        return
    trunk_h = 25 * scale + 3
    trunk = _rect(c, ground_y - trunk_h, x - 1.5 * scale - 0.5, ground_y, x + 1.5 * scale + 0.5)
    c.paint(trunk, VEGETATION, c.jitter([95, 65, 40], 8) + c.noise(5))
    ry, rx = (18 * scale + 3) * c.rng.uniform(0.8, 1.3), (14 * scale + 3) * c.rng.uniform(0.8, 1.3)
    c.paint(_ellipse(c, ground_y - trunk_h - ry * 0.6, x, ry, rx), VEGETATION, foliage)


def _draw_pole(c: _Canvas, ground_y: float, x: float, scale: float) -> None:
    """A thin metallic bar with a small lamp head."""
    height = 70 * scale + 12
    half_w = 1.0 * scale + 0.6
    metal = c.jitter([115, 120, 125], 8) + np.where(
        (np.abs(c.xx - x + half_w / 2) < 0.6)[..., None], 40.0, 0.0)
    c.paint(_rect(c, ground_y - height, x - half_w, ground_y, x + half_w), POLE, metal)
    lamp = _rect(c, ground_y - height, x - half_w, ground_y - height + 2 * scale + 1,
                 x + half_w + 6 * scale + 1)
    c.paint(lamp, POLE, metal)


def _draw_person(c: _Canvas, ground_y: float, x: float, scale: float) -> None:
    """Head ellipse, torso rounded box and two legs."""
    height = 34 * scale + 8
    clothes = c.jitter(_CLOTHES_COLOURS[c.rng.integers(len(_CLOTHES_COLOURS))], 10) + c.noise(4)
    legs_top = ground_y - height * 0.45
    leg_w = height * 0.07 + 0.5
    legs = (_rect(c, legs_top, x - leg_w * 2, ground_y, x - leg_w * 0.5)
            | _rect(c, legs_top, x + leg_w * 0.5, ground_y, x + leg_w * 2))
    c.paint(legs, PERSON, c.jitter([40, 40, 55], 8) + c.noise(3))
    torso = _rounded_box(c, ground_y - height * 0.8, x - height * 0.14, legs_top + 1,
                         x + height * 0.14, height * 0.05)
    c.paint(torso, PERSON, clothes)
    head = _ellipse(c, ground_y - height * 0.89, x, height * 0.1, height * 0.075)
    c.paint(head, PERSON, c.jitter([225, 180, 150], 15))


def _draw_car(c: _Canvas, ground_y: float, x: float, scale: float) -> None:
    """Rounded body and cabin in a saturated colour, dark windows, black wheels."""
    width = 60 * scale + 10
    body_h = width * 0.3
    paint = c.jitter(_CAR_COLOURS[c.rng.integers(len(_CAR_COLOURS))], 15) + c.noise(3)
    wheel_r = width * 0.11
    body_bottom = ground_y - wheel_r * 0.6
    body = _rounded_box(c, body_bottom - body_h, x - width / 2, body_bottom, x + width / 2,
                        body_h * 0.3)
    cabin = _rounded_box(c, body_bottom - body_h * 1.9, x - width * 0.3, body_bottom - body_h + 1,
                         x + width * 0.3, body_h * 0.35)
    c.paint(body | cabin, CAR, paint)
    windows = _rect(c, body_bottom - body_h * 1.75, x - width * 0.25, body_bottom - body_h * 1.05,
                    x + width * 0.25) & (np.abs(c.xx - x) > 0.8)
    c.paint(windows, CAR, c.jitter([40, 50, 70], 8))
    for wheel_x in (x - width * 0.3, x + width * 0.3):
        c.paint(_ellipse(c, ground_y - wheel_r, wheel_x, wheel_r, wheel_r), CAR,
                c.jitter([20, 20, 20], 5))


def _perspective(c: _Canvas, ground_y: float, horizon: float) -> float:
    """Object scale at ground row `ground_y` for a frame of height `c.height`."""
    return (ground_y - horizon) / (c.height - horizon) * c.height / 128.0


def render_scene(
    height: int, width: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Draws one SYNTHETIC street scene.

    Args:
        height: Image height in pixels (>= 32).
        width: Image width in pixels (>= 32).
        rng: Random generator; the scene is a pure function of its state.

    Returns:
        `(image uint8 [H, W, 3], label uint8 [H, W])` with labels in 0..7.
    """
    c = _Canvas(height, width, rng)
    horizon = height * rng.uniform(0.35, 0.55)
    vanish_x = width * rng.uniform(0.35, 0.65)
    spread = rng.uniform(0.3, 0.55)
    _draw_sky(c)
    _draw_buildings(c, horizon)
    _draw_ground(c, horizon, vanish_x, spread)

    objects = []  # (ground_y, draw function, x)
    bottom = height - 1.0
    for _ in range(rng.integers(1, 4)):
        y = rng.uniform(horizon + 0.1 * (bottom - horizon), bottom)
        objects.append((y, _draw_tree, _sidewalk_x(c, rng, y, horizon, vanish_x, spread)))
    for _ in range(rng.integers(1, 4)):
        y = rng.uniform(horizon + 0.15 * (bottom - horizon), bottom)
        objects.append((y, _draw_pole, _sidewalk_x(c, rng, y, horizon, vanish_x, spread)))
    for _ in range(rng.integers(1, 5)):
        y = rng.uniform(horizon + 0.2 * (bottom - horizon), bottom)
        objects.append((y, _draw_person, _sidewalk_x(c, rng, y, horizon, vanish_x, spread)))
    for _ in range(rng.integers(1, 4)):
        y = rng.uniform(horizon + 0.15 * (bottom - horizon), bottom + 0.1 * height)
        half = float(_road_half_width(c, min(y, bottom), horizon, spread))
        objects.append((y, _draw_car, vanish_x + rng.uniform(-0.6, 0.6) * half))
    for ground_y, draw, x in sorted(objects, key=lambda item: item[0]):
        draw(c, ground_y, x, _perspective(c, ground_y, horizon))

    brightness = rng.uniform(0.85, 1.15)
    image = c.image * brightness + c.noise(2.0, 3)
    return np.clip(np.round(image), 0, 255).astype(np.uint8), c.label


def _sidewalk_x(c: _Canvas, rng: np.random.Generator, y: float, horizon: float,
                vanish_x: float, spread: float) -> float:
    """A column on the sidewalk (left or right of the road) at row `y`."""
    half = float(_road_half_width(c, y, horizon, spread))
    side = -1.0 if rng.random() < 0.5 else 1.0
    offset = half + rng.uniform(0.05, 0.5) * (c.width * 0.5)
    return float(np.clip(vanish_x + side * offset, 2, c.width - 3))


def _scene_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """Random generator of image `index` of `split`; independent of the image count."""
    return np.random.default_rng([int(seed), _SPLIT_IDS.get(split, 3), int(index)])


def make_synthetic_dataset(
    num_images: int, height: int = 128, width: int = 256, seed: int = 0, split: str = "train"
) -> tuple[np.ndarray, np.ndarray]:
    """Generates SYNTHETIC street scenes in memory.

    Args:
        num_images: Number of scenes.
        height: Image height (>= 32).
        width: Image width (>= 32).
        seed: Base seed; equal arguments give identical arrays.
        split: Split name mixed into the seed so train and val scenes differ.

    Returns:
        `(images uint8 [N, H, W, 3], labels uint8 [N, H, W])`, labels in 0..7 (see
        `SYNTHETIC_CLASSES`).

    Raises:
        ValueError: For sizes below 32 pixels or a negative count.
    """
    if height < 32 or width < 32:
        raise InvalidInputError(f"Synthetic scenes need height, width >= 32, got {height}x{width}")
    if num_images < 0:
        raise InvalidInputError(f"num_images must be >= 0, got {num_images}")
    images = np.zeros((num_images, height, width, 3), np.uint8)
    labels = np.zeros((num_images, height, width), np.uint8)
    for index in range(num_images):
        images[index], labels[index] = render_scene(height, width,
                                                    _scene_rng(seed, split, index))
    return images, labels


def write_synthetic_folder(
    out_dir: str | Path,
    num_train: int = 200,
    num_val: int = 50,
    size: tuple[int, int] = (128, 256),
    seed: int = 0,
) -> Path:
    """Writes a SYNTHETIC dataset in the CamVid-style folder layout.

    Creates `out_dir/{train,val}/{images,labels}/<stem>.png` (RGB images, 8-bit
    class-index labels), `out_dir/{train,val}.txt` (stems) and `out_dir/meta.json`
    (classes, palette, ignore_index, per-class pixel counts, and `"synthetic": true`), so
    `make_dataset("synthetic", root=out_dir)` or `camvid_files(out_dir, split)` read it
    like any folder dataset.

    Args:
        out_dir: Destination folder (created if needed; existing files are overwritten).
        num_train: Number of training scenes.
        num_val: Number of validation scenes.
        size: `(height, width)` of every image.
        seed: Base seed.

    Returns:
        `out_dir` as a `Path`.
    """
    out_dir = Path(out_dir)
    height, width = size
    meta = SYNTHETIC_SPEC.to_meta_dict()
    meta.update(synthetic=True, stats={},
                note="SYNTHETIC procedural street scenes generated by "
                     "spgnet_keras.data.synthetic (not real images)")
    for split, count in (("train", num_train), ("val", num_val)):
        images, labels = make_synthetic_dataset(count, height, width, seed, split)
        for sub in ("images", "labels"):
            (out_dir / split / sub).mkdir(parents=True, exist_ok=True)
        stems = [f"synthetic_{split}_{index:05d}" for index in range(count)]
        for stem, image, label in zip(stems, images, labels):
            Image.fromarray(image, "RGB").save(out_dir / split / "images" / f"{stem}.png",
                                               compress_level=1)
            Image.fromarray(label, "L").save(out_dir / split / "labels" / f"{stem}.png",
                                             compress_level=1)
        (out_dir / f"{split}.txt").write_text("".join(f"{s}\n" for s in stems))
        counts = np.bincount(labels.ravel(), minlength=len(SYNTHETIC_CLASSES))
        meta["stats"][split] = {"n": count, "counts": dict(zip(SYNTHETIC_CLASSES,
                                                               counts.tolist()))}
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=1))
    return out_dir
