"""One process of a 2-process `spgnet train` with run.strategy=data_parallel (JAX,
keras.distribution; KERAS_DISTRIBUTION_* in the environment). The weights at the start of
fit go to INITIAL.npz.

    python data_parallel_worker.py INITIAL.npz TRAIN_ARGUMENTS...
"""

import sys

import keras
import numpy as np

from spgnet_keras import training
from spgnet_keras.cli import main


class SaveInitialWeights(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        np.savez(sys.argv[1], *self.model.get_weights())


def with_initial_weights(*args, **kwargs):
    callbacks, guard, checkpoint = make_callbacks(*args, **kwargs)
    return [SaveInitialWeights(), *callbacks], guard, checkpoint


make_callbacks = training.make_callbacks
training.make_callbacks = with_initial_weights
sys.exit(main(["train", *sys.argv[2:]]))
