"""Your data as it is: pairing by folders, suffixes, prefixes, nesting and list files; the error
that suggests the option; validation splits; classes files (Python API, files the tests write)."""

import re
import warnings

import pytest

from spgnet_keras.data import (
    DatasetError,
    DatasetNotFoundError,
    FolderNaming,
    folder_files,
    read_classes,
    read_pair_list,
    resolve_data,
    split_pairs,
)
from tests.data.layouts import (
    COLOURS,
    NAMES,
    classes_csv,
    labels_of,
    suffixed_layout,
    voc_layout,
    write_image,
    write_mask,
)


def names(pairs):
    return [(p[0].rsplit("/", 2)[-2:], p[1].rsplit("/", 2)[-2:]) for p in pairs]


def test_same_stems_in_two_folders_with_other_names_and_extensions(tmp_path):
    write_image(tmp_path / "photos" / "b.jpeg", 1)
    write_image(tmp_path / "photos" / "a.JPG", 0)
    (tmp_path / "photos" / ".DS_Store").write_text("hidden files are not images")
    for stem in ("a", "b"):
        write_mask(tmp_path / "gt" / f"{stem}.png", labels_of(0))
    pairs = folder_files(tmp_path / "photos", tmp_path / "gt")
    assert names(pairs) == [(["photos", "a.JPG"], ["gt", "a.png"]), (["photos", "b.jpeg"], ["gt", "b.png"])]


def test_suffixed_masks_error_suggests_the_option_and_the_option_pairs_them(tmp_path):
    root = suffixed_layout(tmp_path / "mydata")
    images, masks = root / "train" / "img", root / "train" / "ann"
    expected = (f"All 6 masks in {masks} end in '_mask.png': pass --mask-suffix _mask.png "
                "(Python: mask_suffix='_mask.png'); with it 6 of these 6 images pair")
    with pytest.raises(DatasetError, match=re.escape(expected)):
        folder_files(images, masks)
    # skip_unpaired does not hide it when nothing pairs (it used to warn about 6 orphans, then "No pairs").
    with pytest.raises(DatasetError, match=re.escape(expected)):
        folder_files(images, masks, skip_unpaired=True)
    pairs = folder_files(images, masks, mask_suffix="_mask.png")
    assert [p[1].rsplit("/", 1)[1] for p in pairs] == [f"train_{i:03d}_mask.png" for i in range(6)]


def test_prefixed_masks_are_suggested_and_paired(tmp_path):
    for index in range(3):
        write_image(tmp_path / "images" / f"f{index}.png", index)
        write_mask(tmp_path / "labels" / f"label_f{index}.png", labels_of(index))
    with pytest.raises(DatasetError, match=re.escape("start with 'label_' and end in '.png': pass --mask-prefix label_")):
        folder_files(tmp_path / "images", tmp_path / "labels")
    assert len(folder_files(tmp_path / "images", tmp_path / "labels", mask_prefix="label_")) == 3


def test_nested_city_folders_pair_by_relative_path_with_repeated_stems(tmp_path):
    images, masks = tmp_path / "leftImg8bit" / "train", tmp_path / "gtFine" / "train"
    for city in ("aachen", "bremen"):
        for frame in ("000000_000019", "000001_000019"):
            write_image(images / city / f"{frame}_leftImg8bit.png", len(city))  # the same names in both cities
            for kind in ("labelTrainIds", "color"):
                write_mask(masks / city / f"{frame}_gtFine_{kind}.png", labels_of(0))
    with pytest.raises(DatasetError, match=re.escape(f"{masks} holds several kinds of mask per image; pass the "
                                                     "options of the one that holds class indices: ")) as raised:
        folder_files(images, masks)
    assert "--image-suffix _leftImg8bit.png --mask-suffix _gtFine_labelTrainIds.png (4 pairs)" in str(raised.value)
    assert "--image-suffix _leftImg8bit.png --mask-suffix _gtFine_color.png (4 pairs)" in str(raised.value)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the color masks are neither images nor masks here: no orphan warning
        pairs = folder_files(images, masks, image_suffix="_leftImg8bit.png", mask_suffix="_gtFine_labelTrainIds.png")
    assert len(pairs) == 4
    for image, mask in pairs:  # each image with the mask of its own city
        assert image.split("/")[-2] == mask.split("/")[-2]
        assert image.rsplit("/", 1)[1].replace("_leftImg8bit", "") == mask.rsplit("/", 1)[1].replace(
            "_gtFine_labelTrainIds", "")


def test_same_stem_in_different_sub_folders_is_explained(tmp_path):
    write_image(tmp_path / "images" / "city" / "a.png", 0)
    write_mask(tmp_path / "masks" / "a_other.png", labels_of(0))
    write_mask(tmp_path / "masks" / "deep" / "a.png", labels_of(0))
    with pytest.raises(DatasetError, match="Pairs are matched by their path inside the two folders"):
        folder_files(tmp_path / "images", tmp_path / "masks")


def test_masks_beside_their_images_in_one_folder(tmp_path):
    for index in range(3):
        write_image(tmp_path / "data" / f"{index}.jpg", index)
        write_mask(tmp_path / "data" / f"{index}_mask.png", labels_of(index))
    pairs = folder_files(tmp_path / "data", mask_suffix="_mask.png")
    assert [p[0].rsplit("/", 1)[1] for p in pairs] == ["0.jpg", "1.jpg", "2.jpg"]
    with pytest.raises(DatasetError, match="end in '_mask.png': pass --mask-suffix _mask.png"):
        folder_files(tmp_path / "data")  # the masks are PNGs beside JPEGs: read as masks, never as images


def test_masks_that_are_not_png_are_named(tmp_path):
    write_image(tmp_path / "images" / "a.png", 0)
    (tmp_path / "masks").mkdir()
    (tmp_path / "masks" / "a.tif").write_bytes(b"II*\0")
    with pytest.raises(DatasetError, match=re.escape(f"Masks must be PNG files (lossless class values); "
                                                     f"{tmp_path / 'masks'} holds 1 file(s): 1 .tif")):
        folder_files(tmp_path / "images", tmp_path / "masks")
    with pytest.raises(ValueError, match="mask_suffix must end in .png"):
        folder_files(tmp_path / "images", tmp_path / "masks", mask_suffix="_mask.jpg")


def test_voc_list_files_select_and_order_pairs_of_palette_masks(tmp_path):
    root = voc_layout(tmp_path / "VOC2012")
    lists = root / "ImageSets" / "Segmentation"
    train = folder_files(root / "JPEGImages", root / "SegmentationClass", split_list=lists / "train.txt")
    assert [p[0].rsplit("/", 1)[1] for p in train] == ["2007_000004.jpg", "2007_000003.jpg", "2007_000001.jpg",
                                                       "2007_000000.jpg"]  # the list's order
    (lists / "bad.txt").write_text("2007_000001\n2008_999999\n")
    with pytest.raises(DatasetNotFoundError, match=re.escape("bad.txt lists 1 image(s) that are not in the image "
                                                             "folder: '2008_999999'")):
        folder_files(root / "JPEGImages", root / "SegmentationClass", split_list=lists / "bad.txt")
    data = resolve_data(images=root / "JPEGImages", masks=root / "SegmentationClass",
                        train_list=lists / "train.txt", val_list=lists / "val.txt")
    assert len(data.train_pairs) == 4 and len(data.val_pairs) == 2 and data.style.mask_format == "index"
    # Only the val list: every other pair trains.
    data = resolve_data(images=root / "JPEGImages", masks=root / "SegmentationClass", val_list=lists / "val.txt")
    assert len(data.train_pairs) == 4 and not set(data.train_pairs) & set(data.val_pairs)


def test_csv_list_of_pairs(tmp_path):
    write_image(tmp_path / "a" / "x.png", 0)
    write_mask(tmp_path / "b" / "y.png", labels_of(0))
    (tmp_path / "pairs.csv").write_text("image,mask\na/x.png,b/y.png\n")
    assert read_pair_list(tmp_path / "pairs.csv") == [(str(tmp_path / "a" / "x.png"), str(tmp_path / "b" / "y.png"))]
    (tmp_path / "pairs.csv").write_text("a/x.png,b/y.png\na/missing.png,b/y.png\n")
    with pytest.raises(DatasetNotFoundError, match=re.escape(f"row 2: {tmp_path / 'a' / 'missing.png'}")):
        read_pair_list(tmp_path / "pairs.csv")
    (tmp_path / "pairs.csv").write_text("a/x.png,b/y.png\n" * 2)
    data = resolve_data(train_list=tmp_path / "pairs.csv", val_fraction=0.5, num_classes=4)
    assert len(data.train_pairs) == len(data.val_pairs) == 1 and data.spec.num_classes == 4


def test_validation_split_by_fraction_is_seeded_and_disjoint(tmp_path):
    root = suffixed_layout(tmp_path / "d", train=20, valid=0)
    pairs = folder_files(root / "train" / "img", root / "train" / "ann", mask_suffix="_mask.png")
    train, val = split_pairs(pairs, 0.25, seed=3)
    assert len(val) == 5 and len(train) == 15 and not set(train) & set(val)
    assert split_pairs(pairs, 0.25, seed=3) == (train, val)
    assert split_pairs(pairs, 0.25, seed=4)[1] != val
    data = resolve_data(images=root / "train" / "img", masks=root / "train" / "ann",
                        naming=FolderNaming(mask_suffix="_mask.png"))
    assert len(data.val_pairs) == 2 and "2 of 20 pairs held out (no validation split given): val_fraction 0.1, seed 0" \
        == data.val_source
    with pytest.raises(ValueError, match="Give one source of validation pairs"):
        resolve_data(images=root / "train" / "img", val_images=root / "x", val_fraction=0.2)


# ------------------------------------------------------------------------------ classes files


@pytest.mark.parametrize("file_name, text", [
    ("classes.json", '["background", "road", "car", "person"]'),
    ("meta.json", '{"classes": ["background", "road", "car", "person"], "palette": %s}' % [list(c) for c in COLOURS]),
    ("objects.json", '[%s]' % ", ".join('{"name": "%s", "color": %s}' % (n, list(c)) for n, c in zip(NAMES, COLOURS))),
    ("classes.csv", "name,r,g,b\n" + "".join(f"{n},{r},{g},{b}\n" for n, (r, g, b) in zip(NAMES, COLOURS))),
    ("classes.txt", "# one class per line\n" + "".join(f"{n} {r} {g} {b}\n" for n, (r, g, b) in zip(NAMES, COLOURS))),
    ("labelmap.txt", "# label:color_rgb:parts:actions\n" + "".join(f"{n}:{r},{g},{b}::\n" for n, (r, g, b)
                                                                    in zip(NAMES, COLOURS))),  # CVAT
])
def test_classes_files(tmp_path, file_name, text):
    path = tmp_path / file_name
    path.write_text(text)
    spec = read_classes(path)
    assert spec.class_names == tuple(NAMES) and spec.num_classes == 4
    if file_name != "classes.json":
        assert spec.palette == tuple(COLOURS)
    else:  # no colours: the default palette, distinct colours
        assert len(set(spec.palette)) == 4


@pytest.mark.parametrize("text, message", [
    ("name,r,g,b\nroad,1,2,3\ncar\n", "some classes have colours and some not (e.g. 'car')"),
    ("road\nroad\n", "the name 'road' is given to more than one class"),
    ("road 1 2\n", "line 1: expected 'name' or 'name r g b'"),
    ("road\n", "must be at least 2, got 1"),
    ("road 1 2 300\ncar 0 0 0\n", "colour values must be integers in 0..255"),
])
def test_bad_classes_files_are_named(tmp_path, text, message):
    path = tmp_path / ("c.csv" if text.startswith("name") else "c.txt")
    path.write_text(text)
    with pytest.raises(ValueError, match=re.escape(message)) as raised:
        read_classes(path)
    assert str(path) in str(raised.value)


def test_classes_file_gives_colour_masks_their_colours(tmp_path):
    root = tmp_path / "colour"
    for index in range(3):
        write_image(root / "img" / f"{index}.png", index)
        write_mask(root / "ann" / f"{index}.png", labels_of(index), mode="RGB", palette=COLOURS)
    classes = classes_csv(tmp_path / "classes.csv")
    data = resolve_data(images=root / "img", masks=root / "ann", classes=classes, val_fraction=0.34)
    assert data.style.mask_format == "color" and data.style.palette == tuple(COLOURS)
    assert data.spec.class_names == tuple(NAMES)
    with pytest.raises(DatasetError, match=re.escape("are colour-coded RGB PNGs: give the colour of each class in a "
                                                     "classes file")):
        resolve_data(images=root / "img", masks=root / "ann", val_fraction=0.34)
    (tmp_path / "names.txt").write_text("\n".join(NAMES))
    with pytest.raises(DatasetError, match=re.escape(f"but the classes (classes file {tmp_path / 'names.txt'}) have no "
                                                     "colours")):
        resolve_data(images=root / "img", masks=root / "ann", classes=tmp_path / "names.txt", val_fraction=0.34)


def test_named_folder_layout_errors_say_what_to_do(tmp_path):
    from spgnet_keras.data import make_dataset

    for index in range(2):
        write_image(tmp_path / "train" / "images" / f"{index}.png", index)
        write_mask(tmp_path / "train" / "labels" / f"{index}.png", labels_of(index))
    with pytest.raises(DatasetNotFoundError, match=re.escape("needs its classes: there is no "
                                                             f"{tmp_path / 'meta.json'} (a JSON object")):
        make_dataset("folder", root=tmp_path)
    batches = list(make_dataset("folder", root=tmp_path, num_classes=4, batch_size=1))  # no meta.json needed
    assert len(batches) == 2
    with pytest.raises(DatasetNotFoundError, match=re.escape("for folders of other names, pass them as they are: "
                                                             "folder_files(images_dir, masks_dir, ...)")):
        make_dataset("folder", "valid", root=tmp_path, num_classes=4)
