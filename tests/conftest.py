import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402

SHARED_DATA_FIXTURES = {"camvid_root", "cityscapes_root"}


def pytest_collection_modifyitems(items):
    """Marks the tests that read ../shared/data (select them with `-m shared_data`)."""
    for item in items:
        if SHARED_DATA_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.shared_data)


@pytest.fixture(autouse=True)
def seeded():
    keras.utils.set_random_seed(1234)
    yield


@pytest.fixture(scope="session")
def camvid_root():
    """Root of the half-resolution CamVid copy (train/, val/, meta.json)."""
    from tests.shared_data import shared_dataset

    return shared_dataset("camvid", "meta.json")


@pytest.fixture(scope="session")
def cityscapes_root():
    """Root of the one-frame Cityscapes sample in the official layout."""
    from tests.shared_data import shared_dataset

    return shared_dataset("cityscapes_sample", "gtFine")
