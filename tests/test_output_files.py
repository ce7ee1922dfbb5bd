"""The one rule for commands that write image files (`spgnet_keras.output_files`)."""

import pytest

from spgnet_keras.output_files import check_output_targets, dataset_mark


@pytest.fixture
def dataset(tmp_path):
    root = tmp_path / "data"
    for split in ("train", "val"):
        for folder in ("images", "labels"):
            (root / split / folder).mkdir(parents=True)
    (root / "val" / "labels" / "a.png").write_bytes(b"ground truth")
    return root


@pytest.mark.parametrize("inside", ["val", "val/labels", "val/images", "val/labels/deeper"])
def test_folders_of_a_dataset_split_are_refused(dataset, inside):
    out = dataset / inside
    assert "dataset split" in dataset_mark(out)
    with pytest.raises(ValueError, match="ground-truth masks"):
        check_output_targets(out, [out / "a.png"], overwrite=True, option="--predictions")
    assert (dataset / "val" / "labels" / "a.png").read_bytes() == b"ground truth"


def test_a_dataset_root_is_refused(tmp_path):
    (tmp_path / "meta.json").write_text("{}")
    with pytest.raises(ValueError, match="dataset root"):
        check_output_targets(tmp_path, [], overwrite=True)


def test_inputs_are_never_replaced_and_existing_files_need_overwrite(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    image = out / "a.png"
    image.write_bytes(b"input")
    with pytest.raises(ValueError, match="would replace files the command reads"):
        check_output_targets(out, [image], overwrite=True, protected=[image])
    earlier = out / "b.png"
    earlier.write_bytes(b"earlier result")
    with pytest.raises(ValueError, match="1 output file.s. already exist.*--overwrite"):
        check_output_targets(out, [earlier, out / "c.png"])
    check_output_targets(out, [earlier, out / "c.png"], overwrite=True)
    check_output_targets(tmp_path / "new", [tmp_path / "new" / "x.png"])
    assert dataset_mark(tmp_path / "new") is None


def test_a_prediction_png_is_replaced_whole_or_not_at_all(tmp_path, monkeypatch):
    """A write that fails (or is killed) midway leaves the previous PNG and no temporary."""
    import numpy as np
    from PIL import Image

    from spgnet_keras.data.decoding import load_label, save_label

    path = save_label(tmp_path / "frame.png", np.ones((4, 6), np.uint8))

    def half_then_full_disk(self, fp, *args, **kwargs):
        with open(fp, "wb") as file:
            file.write(b"\x89PNG\r\n\x1a\n half")
        raise OSError(27, "File too large")

    monkeypatch.setattr(Image.Image, "save", half_then_full_disk)
    with pytest.raises(OSError, match="File too large"):
        save_label(path, np.zeros((4, 6), np.uint8))
    assert (load_label(path) == 1).all()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frame.png"]
