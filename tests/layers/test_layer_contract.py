"""Every layer of the package through the shared checks of `tests/helpers.py::run_layer_test`
(keras-hub's `run_layer_test`): output shape, config and JSON round trips, `.keras`
save/load with `safe_mode=True`, bfloat16 / mixed precision through the `dtype` argument."""

import keras
import pytest

from spgnet_keras import layers
from tests.helpers import run_layer_test
from tests.layers.test_precision import LAYERS


def test_every_exported_layer_is_covered():
    assert set(LAYERS) == set(layers.__all__)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_passes_the_shared_checks(name, tmp_path):
    make, inputs = LAYERS[name]
    # SPG returns (next stage's input, logits): the logits are float32 under any policy.
    float32_outputs = (1,) if name == "SemanticPredictionGuidance" else ()
    run_layer_test(make, inputs(), tmp_path, float32_outputs=float32_outputs)
    assert keras.saving.get_registered_object(f"spgnet_keras>{name}") is type(make(None))
