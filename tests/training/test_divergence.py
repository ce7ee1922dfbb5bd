"""A non-finite loss stops `train` with TrainingDivergedError naming the step, and leaves
the checkpoints of the last good epoch byte-identical."""

import json

import keras
import numpy as np
import pytest

from spgnet_keras import training
from spgnet_keras.callbacks import TrainingDivergedError
from spgnet_keras.config import load_config
from tests.training.conftest import tiny_synthetic_sections, write_config


class PoisonAtEpoch(keras.callbacks.Callback):
    """At the start of epoch `epoch`, records the checkpoint files, then sets the classifier
    kernel to +inf so that the next step's loss is NaN."""

    def __init__(self, checkpoints, epoch=1):
        super().__init__()
        self.checkpoints = checkpoints
        self.epoch = epoch
        self.saved = None

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            self.saved = {p.name: p.read_bytes() for p in sorted(self.checkpoints.iterdir())}
            kernel = self.model.get_layer("stage1_classifier").kernel
            kernel.assign(np.full(kernel.shape, np.inf, np.float32))


def test_nan_loss_stops_and_keeps_last_good_checkpoint(synthetic_root, tmp_path, monkeypatch):
    out_dir = tmp_path / "run"
    config = load_config(write_config(tmp_path / "c.yaml", {
        **tiny_synthetic_sections(synthetic_root, epochs=3, out_dir=str(out_dir)),
        "model": {"preset": "spgnet_r18x1_128", "arguments": {"decoder_channels": 8}},
    }))
    poison = PoisonAtEpoch(out_dir / "checkpoints")
    make_callbacks = training.make_callbacks

    def with_poison(*args, **kwargs):
        callbacks, guard, checkpoint = make_callbacks(*args, **kwargs)
        return [poison, *callbacks], guard, checkpoint

    monkeypatch.setattr(training, "make_callbacks", with_poison)
    with pytest.raises(TrainingDivergedError) as error:
        training.train(config)
    message = str(error.value)
    # Epoch 0 ran steps 1-2; the first step of epoch 1 (step 3) produced the NaN.
    assert "at step 3" in message and "nan" in message.lower()
    assert str(out_dir / "checkpoints" / "latest.keras") in message

    assert poison.saved is not None and set(poison.saved) == {"latest.keras", "best.keras", "best.json"}
    after = {p.name: p.read_bytes() for p in sorted((out_dir / "checkpoints").iterdir())}
    assert after == poison.saved  # byte-identical, and no temporary files left behind
    model = keras.saving.load_model(out_dir / "checkpoints" / "latest.keras", safe_mode=True)
    assert all(np.all(np.isfinite(w)) for w in model.get_weights())
    # The last good backup (end of epoch 0) survives, so re-running resumes from it.
    assert json.loads((out_dir / "backup" / "training_metadata.json").read_text())["epoch"] == 1
    assert np.all(np.isfinite(model(np.zeros((1, 64, 96, 3), np.float32), training=False)["prediction"]))
