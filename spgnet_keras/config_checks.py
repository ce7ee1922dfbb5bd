"""The value checks of an `ExperimentConfig` (`check_values`): every field in range, the
combinations that cannot train named together, before a run folder is touched."""

import math

from spgnet_keras.classes import check_num_classes
from spgnet_keras.constants import MAX_IMAGE_SIDE
from spgnet_keras.errors import InvalidInputError
from spgnet_keras.scales import check_scales

# Allowed values of run.precision (Keras dtype policies) and run.strategy (spgnet_keras.distribution).
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
STRATEGIES = ("auto", "default", "mirrored", "multiworker", "data_parallel")


def check_values(config, source="config"):
    """Range checks that types alone do not catch, so a bad run fails before it starts."""
    data, run = config.data, config.run
    problems = []
    if len(data.crop_size) != 2 or any(not isinstance(v, int) or v < 1 for v in data.crop_size):
        problems.append(f"data.crop_size must be [height, width] of positive integers, got {data.crop_size!r}")
    elif any(v > MAX_IMAGE_SIDE for v in data.crop_size):
        problems.append(f"data.crop_size sides must be at most {MAX_IMAGE_SIDE}, got {data.crop_size!r}")
    try:
        check_scales(data.scales, "data.scales")
    except ValueError as error:
        problems.append(str(error).rstrip("."))
    if data.num_classes is not None:
        try:
            check_num_classes(data.num_classes, "data.num_classes")
        except ValueError as error:
            problems.append(str(error).rstrip("."))
    problems += data_problems(data)
    weights = config.loss.class_weights
    if isinstance(weights, str) and weights != "auto":
        problems.append(f"loss.class_weights must be a list of numbers or 'auto', got {weights!r}")
    for name, value in (("data.batch_size", data.batch_size), ("run.epochs", run.epochs),
                        ("run.steps_per_epoch", run.steps_per_epoch)):
        if value < 1:
            problems.append(f"{name} must be >= 1, got {value}")
    if run.precision not in PRECISIONS:
        problems.append(f"run.precision must be one of {PRECISIONS}, got {run.precision!r}")
    if run.strategy not in STRATEGIES:
        problems.append(f"run.strategy must be one of {STRATEGIES}, got {run.strategy!r}")
    problems += optimizer_problems(config.optimizer)
    problems += learning_problems(config.optimizer)
    problems += model_problems(config.model)
    if problems:
        raise InvalidInputError(f"{source}: " + "; ".join(problems) + ".")


def data_problems(data):
    """Messages for data options that cannot work together (before any file is read)."""
    from spgnet_keras.data.listing import check_suffixes
    from spgnet_keras.data.masks import MASK_FORMAT_CHOICES, parse_label_map

    problems = []
    folders = [name for name in ("images", "masks", "val_images", "val_masks", "train_list", "val_list")
               if getattr(data, name) is not None]
    if folders and data.dataset != "folder":
        problems.append(f"data.{folders[0]} is for dataset 'folder' (your folders as they are), not {data.dataset!r}")
    if data.mask_format not in MASK_FORMAT_CHOICES:
        problems.append(f"data.mask_format must be one of {MASK_FORMAT_CHOICES}, got {data.mask_format!r}")
    if data.val_fraction is not None and not 0 < data.val_fraction < 1:
        problems.append(f"data.val_fraction must lie between 0 and 1 (exclusive), got {data.val_fraction!r}")
    for check in (lambda: check_suffixes(data.image_suffix, data.mask_suffix), lambda: parse_label_map(data.label_map)):
        try:
            check()
        except ValueError as error:
            problems.append(f"data.{str(error).rstrip('.')}")
    return problems


def optimizer_problems(optimizer):
    """Messages for an unknown weight-decay mode or variable set."""
    from spgnet_keras.optimizers import DECAY_VARIABLES, WEIGHT_DECAY_MODES

    problems = []
    if optimizer.weight_decay_mode not in WEIGHT_DECAY_MODES:
        problems.append(f"optimizer.weight_decay_mode must be one of {WEIGHT_DECAY_MODES}, "
                        f"got {optimizer.weight_decay_mode!r}")
    if optimizer.decay_variables not in DECAY_VARIABLES:
        problems.append(f"optimizer.decay_variables must be one of {sorted(DECAY_VARIABLES)}, "
                        f"got {optimizer.decay_variables!r}")
    return problems


def learning_problems(optimizer):
    """Messages for optimizer values that cannot train (a learning rate <= 0 never moves the
    weights, or climbs the loss), found before any data is read."""
    problems = []
    if not math.isfinite(optimizer.learning_rate) or optimizer.learning_rate <= 0:
        problems.append(f"optimizer.learning_rate must be a positive number, got {optimizer.learning_rate!r}")
    if not 0 <= optimizer.momentum < 1:
        problems.append(f"optimizer.momentum must be in [0, 1), got {optimizer.momentum!r}")
    if not math.isfinite(optimizer.weight_decay) or optimizer.weight_decay < 0:
        problems.append(f"optimizer.weight_decay must be >= 0, got {optimizer.weight_decay!r}")
    if not math.isfinite(optimizer.power) or optimizer.power < 0:
        problems.append(f"optimizer.power must be >= 0, got {optimizer.power!r}")
    if optimizer.warmup_steps < 0:
        problems.append(f"optimizer.warmup_steps must be >= 0, got {optimizer.warmup_steps!r}")
    return problems


def model_problems(model):
    """Messages for an unknown preset or a decoder width out of bounds (before any data is read)."""
    from spgnet_keras.models.presets import preset_arguments
    from spgnet_keras.models.spgnet import check_decoder_channels

    try:
        arguments = {**preset_arguments(model.preset), **model.arguments}
        if "decoder_channels" in arguments:
            check_decoder_channels(arguments["decoder_channels"])
    except ValueError as error:
        return [f"model: {error}".rstrip(".")]
    return []


def check_model_arguments(arguments, source):
    from spgnet_keras.models.spgnet import SPGNET_ARGUMENTS

    allowed = set(SPGNET_ARGUMENTS) - {"num_classes"}
    for key in arguments:
        if key not in allowed:
            raise InvalidInputError(f"{source}: unknown key model.arguments.{key}; expected one of {sorted(allowed)}.")
