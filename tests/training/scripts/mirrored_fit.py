"""Trains a tiny SPGNet under a 2-replica MirroredStrategy on CamVid crops (run by
tests/training/test_distributed.py in a fresh interpreter: the two logical CPU devices must
be configured before TensorFlow initialises).

Usage: python mirrored_fit.py CAMVID_ROOT RESULT_JSON
"""

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
# Grappler's passes over the two-replica graph cost more time than the few steps they save.
tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})

import keras  # noqa: E402
import numpy as np  # noqa: E402

from spgnet_keras.config import LossConfig, OptimizerConfig  # noqa: E402
from spgnet_keras.data import make_dataset  # noqa: E402
from spgnet_keras.models.spgnet import SPGNet  # noqa: E402
from spgnet_keras.training import make_strategy, recipe_compile_arguments  # noqa: E402

EPOCHS, STEPS, BATCH, CROP = 4, 2, 4, (64, 96)
LEARNING_RATE = 0.05
LOSS = LossConfig(stage_weight=0.4, ohem_threshold=0.7, ohem_min_kept=2000)  # of 6144 pixels/image


def main(root, result_path):
    start = time.time()
    keras.utils.set_random_seed(0)
    strategy = make_strategy("mirrored")

    # A fixed set of STEPS real CamVid batches (augmented once by the package's pipeline),
    # repeated every epoch, so the epoch means compare the same batches.
    source = make_dataset("camvid", "train", root=root, batch_size=BATCH, crop_size=CROP,
                          training=True, seed=0, num_classes=11)
    batches = [(x.numpy(), y.numpy()) for x, y in source.take(STEPS)]
    images = np.concatenate([b[0] for b in batches])
    masks = np.concatenate([b[1] for b in batches])

    with strategy.scope():
        model = SPGNet.from_preset("spgnet_r18x2_128", num_classes=11, decoder_channels=8)
        model.compile(**recipe_compile_arguments(model, OptimizerConfig(learning_rate=LEARNING_RATE), LOSS, 100))
    output_names = sorted(model.output.keys())
    bn_layers = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]

    # Single-device reference of the first step's losses: the same model, called eagerly
    # outside any replica context on the whole first global batch (BatchNorm on batch
    # statistics, which sync BN must reproduce across the two replicas).
    outputs = model(images[:BATCH], training=True)
    reference = {name: float(loss(masks[:BATCH], outputs[name]))
                 for name, loss in zip(output_names, [model.loss[n] for n in output_names])}

    first_batch_logs = {}

    class FirstBatch(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if not first_batch_logs:
                first_batch_logs.update({k: float(v) for k, v in logs.items()})

    dataset = tf.data.Dataset.from_tensor_slices((images, masks)).batch(BATCH).repeat()
    history = model.fit(dataset, epochs=EPOCHS, steps_per_epoch=STEPS, verbose=0, callbacks=[FirstBatch()])
    weights_finite = all(bool(np.all(np.isfinite(w))) for w in model.get_weights())
    result = dict(
        replicas=strategy.num_replicas_in_sync,
        strategy=type(strategy).__name__,
        devices=list(strategy.extended.worker_devices),
        stem_bn_synchronized=bool(model.get_layer("stage1_stem_bn").synchronized),
        num_bn_layers=len(bn_layers),
        all_bn_synchronized=all(layer.synchronized for layer in bn_layers),
        output_names=output_names,
        history={k: [float(v) for v in values] for k, values in history.history.items()},
        first_batch_logs=first_batch_logs,
        reference_first_batch=reference,
        stage_weight=LOSS.stage_weight,
        weights_finite=weights_finite,
        seconds=time.time() - start,
    )
    with open(result_path, "w") as handle:
        json.dump(result, handle, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
