"""Tests needing ../shared/data skip with a reason on a clean clone, and fail in CI."""

import pytest

from tests.shared_data import shared_dataset


@pytest.mark.parametrize("ci, outcome", [("", pytest.skip.Exception), ("true", pytest.fail.Exception)])
def test_missing_shared_data_skips_outside_ci_and_fails_in_ci(ci, outcome, tmp_path, monkeypatch):
    monkeypatch.setenv("SPGNET_DATA_DIR", str(tmp_path / "absent"))
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="Shared data folder not found: .*absent"):
        shared_dataset("camvid", "meta.json")
    (tmp_path / "absent" / "camvid").mkdir(parents=True)
    with pytest.raises(outcome, match="camvid not found at .*expected meta.json"):
        shared_dataset("camvid", "meta.json")
    (tmp_path / "absent" / "camvid" / "meta.json").write_text("{}")
    assert shared_dataset("camvid", "meta.json") == tmp_path / "absent" / "camvid"


def test_tests_using_the_data_fixtures_are_marked():
    from tests.conftest import pytest_collection_modifyitems

    class Item:
        def __init__(self, fixturenames):
            self.fixturenames, self.markers = fixturenames, []

        def add_marker(self, marker):
            self.markers.append(marker.name)

    items = [Item(["tmp_path", "camvid_root"]), Item(["cityscapes_root"]), Item(["tmp_path"])]
    pytest_collection_modifyitems(items)
    assert [item.markers for item in items] == [["shared_data"], ["shared_data"], []]
