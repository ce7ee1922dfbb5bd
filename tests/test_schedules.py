"""Tests for spgnet_keras.schedules."""


import keras
import numpy as np
import pytest

from spgnet_keras.schedules import PolyDecay
from tests.helpers import run_serialization_test


def lr_at(schedule, step):
    return float(schedule(step))


def test_poly_values():
    schedule = PolyDecay(0.01, max_steps=1000)
    assert lr_at(schedule, 0) == pytest.approx(0.01)
    assert lr_at(schedule, 500) == pytest.approx(0.01 * 0.5**0.9, rel=1e-6)
    assert lr_at(schedule, 900) == pytest.approx(0.01 * 0.1**0.9, rel=1e-5)
    assert lr_at(schedule, 1000) == 0.0
    assert lr_at(schedule, 5000) == 0.0  # clamped after max_steps
    steps = np.arange(0, 1001, 50)
    values = [lr_at(schedule, s) for s in steps]
    assert all(a > b for a, b in zip(values, values[1:]))


def test_end_learning_rate_and_power():
    schedule = PolyDecay(0.1, max_steps=100, power=2.0, end_learning_rate=0.001)
    assert lr_at(schedule, 0) == pytest.approx(0.1)
    assert lr_at(schedule, 50) == pytest.approx(0.099 * 0.25 + 0.001, rel=1e-6)
    assert lr_at(schedule, 100) == pytest.approx(0.001)
    assert lr_at(schedule, 10_000) == pytest.approx(0.001)


def test_warmup_is_linear_and_continuous():
    schedule = PolyDecay(0.01, max_steps=1000, warmup_steps=100, warmup_start_lr=1e-4)
    poly_100 = 0.01 * 0.9**0.9
    assert lr_at(schedule, 0) == pytest.approx(1e-4)
    assert lr_at(schedule, 50) == pytest.approx(1e-4 + (poly_100 - 1e-4) / 2, rel=1e-6)
    assert lr_at(schedule, 99) == pytest.approx(1e-4 + (poly_100 - 1e-4) * 0.99, rel=1e-6)
    assert lr_at(schedule, 100) == pytest.approx(poly_100, rel=1e-6)
    assert lr_at(schedule, 500) == pytest.approx(0.01 * 0.5**0.9, rel=1e-6)
    assert lr_at(schedule, 1000) == 0.0


def test_accepts_tensor_steps_like_an_optimizer():
    schedule = PolyDecay(0.01, max_steps=10)
    optimizer = keras.optimizers.SGD(learning_rate=schedule)
    optimizer.iterations.assign(5)
    assert float(optimizer.learning_rate) == pytest.approx(0.01 * 0.5**0.9, rel=1e-6)


def test_config_round_trip():
    schedule = PolyDecay(0.02, 300, power=1.0, end_learning_rate=1e-5,
                         warmup_steps=10, warmup_start_lr=1e-3, name="poly")
    restored = run_serialization_test(schedule)  # config and JSON round trips (tests/helpers.py)
    assert isinstance(restored, PolyDecay)
    for step in (0, 5, 10, 150, 300):
        assert lr_at(restored, step) == pytest.approx(lr_at(schedule, step))


@pytest.mark.parametrize(
    "kwargs, message",
    [({"max_steps": 0}, "max_steps must be > 0"), ({"max_steps": 10, "power": 0.0}, "power must be > 0"),
     ({"max_steps": 10, "warmup_steps": 11}, r"warmup_steps must be in \[0, max_steps=10\], got 11"),
     ({"max_steps": 10, "warmup_steps": -1}, r"warmup_steps must be in \[0, max_steps=10\], got -1")],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PolyDecay(0.01, **kwargs)
