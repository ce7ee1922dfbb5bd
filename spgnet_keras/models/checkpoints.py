"""Saved SPGNets into presets: `SPGNet.from_preset(weights=...)`, `from_preset(path)` and
`save_to_preset`.

The model class is passed in (`cls`), so this module sits below `spgnet.py` and imports
it nowhere. Weight copying and the `.keras` reader are `spgnet_keras.models.weights`
(re-exported here: `read_saved_model`, `load_model_weights`).
"""

import datetime
import json
from pathlib import Path

import h5py
import keras

from spgnet_keras.errors import InvalidInputError
from spgnet_keras.models.imagenet import load_backbone_weights
from spgnet_keras.models.presets import PRESETS
from spgnet_keras.models.weights import copy_matching_weights, load_model_weights, read_saved_model

__all__ = [
    "is_saved_preset",
    "load_model_weights",
    "load_preset_weights",
    "load_saved_preset",
    "read_saved_model",
    "read_spgnet",
    "save_preset_folder",
]

PRESET_CONFIG_FILE = "config.json"
PRESET_WEIGHTS_FILE = "model.weights.h5"
PRESET_METADATA_FILE = "metadata.json"
# Config keys of a saved SPGNet that are not its architecture (a re-headed or renamed model keeps them out).
_NOT_ARCHITECTURE = ("name", "trainable", "num_classes", "class_names", "palette")


def load_preset_weights(cls, arguments, num_classes, weights):
    """Builds `cls(num_classes, **arguments)` and fills it from `weights`.

    Args:
        cls: type. `SPGNet` (or a subclass).
        arguments: dict. The SPGNet arguments of the preset, with the user's overrides.
        num_classes: int or None. Class count, or None to take it from a saved model in `weights`.
        weights: str or None. None, "imagenet" or the path of a `.keras` / `.weights.h5` SPGNet.

    Returns:
        The built model.
    """
    if weights is None or weights == "imagenet":
        if num_classes is None:
            raise InvalidInputError(f"`num_classes` is required with weights={weights!r}.")
        model = cls(num_classes=num_classes, **arguments)
        if weights == "imagenet":
            load_backbone_weights(model, "imagenet")
        return model
    path = Path(weights)
    if not path.is_file():
        raise InvalidInputError(
            f"`weights` must be None, 'imagenet' or the path of a saved SPGNet (.keras or .weights.h5); "
            f"{str(weights)!r} is not a file."
        )
    source = _saved_spgnet(cls, path, arguments)
    model = cls(num_classes=num_classes or source.num_classes, **inherited_classes(arguments, source, num_classes))
    copy_weights_for_new_classes(source, model, path)
    return model


def is_saved_preset(preset):
    """True when `preset` names a saved SPGNet (a `.keras` file or a preset folder), not a preset name."""
    if not isinstance(preset, (str, Path)):
        return False
    path = Path(preset)
    return path.suffix.lower() == ".keras" or path.is_dir() or (path.exists() and str(preset) not in PRESETS)


def load_saved_preset(cls, preset, num_classes, weights, overrides):
    """`SPGNet.from_preset(path)`: the architecture and weights of a saved SPGNet (a `.keras`
    file or a `save_to_preset` folder), with `overrides` and re-headed for `num_classes`."""
    if weights is not None:
        raise InvalidInputError(f"from_preset({str(preset)!r}) loads the weights saved there; leave `weights` at None "
                                f"(got {weights!r}).")
    source = read_preset_folder(cls, preset) if Path(preset).is_dir() else read_spgnet(preset, cls=cls)
    config = source.get_config()
    arguments = {key: value for key, value in config.items() if key not in _NOT_ARCHITECTURE}
    arguments.update(overrides)
    model = cls(num_classes=num_classes or source.num_classes, **inherited_classes(arguments, source, num_classes))
    copy_weights_for_new_classes(source, model, preset)
    return model


def inherited_classes(arguments, source, num_classes):
    """`arguments` with the saved model's class names and palette when it keeps its classes
    (a new head, for another class count, starts without names unless they are given)."""
    arguments = dict(arguments)
    if num_classes in (None, source.num_classes):
        for key in ("class_names", "palette"):
            if arguments.get(key) is None:
                arguments[key] = getattr(source, key, None)
    return arguments


def save_preset_folder(model, preset_dir, overwrite=False):
    """Writes `model` as a keras-hub-style preset folder: `config.json` (the serialized
    model), `model.weights.h5` and `metadata.json`; `SPGNet.from_preset(preset_dir)` loads it."""
    preset_dir = Path(preset_dir)
    if (preset_dir / PRESET_CONFIG_FILE).exists() and not overwrite:
        raise InvalidInputError(f"{preset_dir} already holds a preset ({PRESET_CONFIG_FILE}); pass overwrite=True "
                                "to replace it.")
    preset_dir.mkdir(parents=True, exist_ok=True)
    (preset_dir / PRESET_CONFIG_FILE).write_text(json.dumps(keras.saving.serialize_keras_object(model), indent=2))
    model.save_weights(preset_dir / PRESET_WEIGHTS_FILE, overwrite=True)
    metadata = {"keras_version": keras.__version__, "parameter_count": model.count_params(),
                "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")}
    (preset_dir / PRESET_METADATA_FILE).write_text(json.dumps(metadata, indent=2))
    return preset_dir


def read_preset_folder(cls, preset_dir):
    """The `cls` model of a preset folder (`save_preset_folder`), loaded with `safe_mode=True`."""
    preset_dir = Path(preset_dir)
    missing = [name for name in (PRESET_CONFIG_FILE, PRESET_WEIGHTS_FILE) if not (preset_dir / name).is_file()]
    if missing:
        raise InvalidInputError(f"{preset_dir} is not a preset folder: it has no {' or '.join(missing)} "
                                "(written by SPGNet.save_to_preset).")
    try:
        config = json.loads((preset_dir / PRESET_CONFIG_FILE).read_text())
        model = keras.saving.deserialize_keras_object(config, safe_mode=True)
    except Exception as error:
        raise InvalidInputError(f"Cannot read the preset {preset_dir / PRESET_CONFIG_FILE}: {error}") from None
    if not isinstance(model, cls):
        raise InvalidInputError(f"{preset_dir} holds a {type(model).__name__}, not an {cls.__name__}.")
    try:
        model.load_weights(preset_dir / PRESET_WEIGHTS_FILE)
    except Exception as error:
        raise InvalidInputError(f"Cannot load {preset_dir / PRESET_WEIGHTS_FILE} into its config's model: "
                                f"{error}") from None
    return model


def read_spgnet(path, what="model", cls=None):
    """`read_saved_model`, refusing a file that holds another kind of model than `cls`.

    Args:
        path: str or `Path`. A `.keras` file.
        what: str. What the file is, for the messages.
        cls: type. The expected model class (default `spgnet_keras.SPGNet`, found in Keras'
            registry so that this module does not import the model module).
    """
    cls = cls or keras.saving.get_registered_object("spgnet_keras>SPGNet")
    model = read_saved_model(path, what)
    if not isinstance(model, cls):
        raise InvalidInputError(f"{path} holds a {type(model).__name__}, not an {cls.__name__}.")
    return model


def architecture_differences(source, target):
    """["decoder_channels=64 in the saved model, 128 here", ...] for the architecture arguments
    on which two SPGNets differ."""
    saved, asked = source.get_config(), target.get_config()
    saved["backbones"], asked["backbones"] = list(source.stage_backbones), list(target.stage_backbones)
    skipped = set(_NOT_ARCHITECTURE) | {"num_stages", "dtype", "test_pooling", "test_pooling_crop", "sync_batchnorm",
                                        "image_shape"}
    return [f"{key}={saved[key]!r} in the saved model, {asked.get(key)!r} here"
            for key in saved if key not in skipped and saved[key] != asked.get(key)]


def _saved_spgnet(cls, path, arguments):
    """The SPGNet stored at `path` (a `.keras` model, or a `.weights.h5` of this preset)."""
    name = path.name.lower()
    if name.endswith(".weights.h5"):
        source = cls(num_classes=classes_in_weights_file(path, cls, arguments), **arguments)
        try:
            source.load_weights(path)
        except (ValueError, KeyError, OSError) as error:
            raise InvalidInputError(f"{path} does not hold weights of this preset's architecture: {error}") from None
        return source
    if not name.endswith(".keras"):
        raise InvalidInputError(f"`weights` must be a .keras or .weights.h5 file, got {path}.")
    return read_spgnet(path, cls=cls)


def classes_in_weights_file(path, cls, arguments):
    """The class count of the SPGNet of architecture `arguments` saved in `.weights.h5` `path`.

    Keras keys a functional model's layers in a `.weights.h5` file by class name and
    position (`layers/conv2d_43/vars/0`), so the last classifier's key is found by
    building the architecture once; a wrong guess cannot pass the strict load that
    follows.
    """
    probe = cls(num_classes=2, **arguments)
    classifier = probe.get_layer(f"stage{len(probe.stage_backbones)}_classifier")
    position = [layer for layer in probe.layers if type(layer) is type(classifier)].index(classifier)
    key = f"layers/conv2d{'_' + str(position) if position else ''}/vars/0"
    try:
        with h5py.File(path, "r") as file:
            if key not in file or len(file[key].shape) != 4:
                raise InvalidInputError(f"{path} does not hold weights of this preset's architecture (no {key}).")
            return int(file[key].shape[-1])
    except OSError as error:
        raise InvalidInputError(f"Cannot read the weights file {path}: {error}") from None


def copy_weights_for_new_classes(source, target, where):
    """Copies every variable of `source` into `target`; with another class count, every
    variable whose shape involves the classes keeps its fresh initialisation.

    Returns:
        The `TransferReport` of `copy_matching_weights`.

    Raises:
        InvalidInputError: a variable that does not depend on the class count differs or is
            missing (another architecture).
    """
    report = copy_matching_weights(source, target)
    shapes = {v.path: tuple(v.shape) for v in target.weights}
    classes = {source.num_classes, target.num_classes}
    foreign = [path for path in report.new if not classes & set(shapes[path])] + list(report.unused)
    if source.num_classes == target.num_classes:
        foreign = report.new + report.unused
    if foreign:
        differences = architecture_differences(source, target)
        found = "; ".join(differences) if differences else f"e.g. variable {foreign[0]!r} does not match"
        raise InvalidInputError(
            f"{where} is another architecture than the model asked for: {found}. Pass the saved model's "
            f"arguments, or use the saved model itself as the preset: SPGNet.from_preset({str(where)!r}, "
            "num_classes=...)."
        )
    return report
