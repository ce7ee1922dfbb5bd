"""Experiment configuration: dataclasses, named experiments, YAML overrides.

A run is described by `ExperimentConfig` (model, data, optimizer, loss, run). Named
experiments (`EXPERIMENTS`) give complete defaults; a YAML file names one with
`experiment:` and overrides any field. Unknown keys and wrong types are errors that
name the key and the file. YAML is read with `yaml.safe_load` only.
"""

import dataclasses
import inspect
import typing
from pathlib import Path

import yaml

from spgnet_keras.constants import DEFAULT_STAGE_WEIGHT


@dataclasses.dataclass
class ModelConfig:
    """SPGNet architecture: a preset of the paper's tables plus argument overrides."""

    preset: str = "spgnet_r18x2_128"
    arguments: dict = dataclasses.field(default_factory=dict)  # SPGNet(...) keyword overrides
    backbone_weights: typing.Optional[str] = None  # None | "imagenet" | path to a weights file


@dataclasses.dataclass
class DataConfig:
    dataset: str = "camvid"  # camvid | cityscapes | folder | synthetic
    root: typing.Optional[str] = None
    train_split: str = "train"
    val_split: str = "val"
    num_classes: typing.Optional[int] = None  # None: from the dataset's description
    crop_size: typing.List[int] = dataclasses.field(default_factory=lambda: [160, 224])
    batch_size: int = 8
    scales: typing.List[float] = dataclasses.field(default_factory=lambda: [0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0])
    flip: bool = True
    mask_format: str = "index"  # index | color
    validate: bool = True
    val_max_images: typing.Optional[int] = None


@dataclasses.dataclass
class OptimizerConfig:
    learning_rate: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    power: float = 0.9
    warmup_steps: int = 0


@dataclasses.dataclass
class LossConfig:
    stage_weight: float = DEFAULT_STAGE_WEIGHT  # paper Sec 3.4: a plain sum of the stage losses
    ohem_threshold: typing.Optional[float] = None
    ohem_min_kept: int = 0
    ohem_top_k: typing.Optional[float] = None
    class_weights: typing.Optional[typing.List[float]] = None


@dataclasses.dataclass
class RunConfig:
    out_dir: str = "runs/experiment"
    epochs: int = 10
    steps_per_epoch: int = 50
    seed: int = 0
    precision: str = "float32"  # float32 | mixed_float16 | mixed_bfloat16
    jit_compile: bool = False
    strategy: str = "auto"  # auto | default | mirrored | multiworker
    validation_steps: typing.Optional[int] = None
    verbose: int = 1


@dataclasses.dataclass
class ExperimentConfig:
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    run: RunConfig = dataclasses.field(default_factory=RunConfig)

    @property
    def max_steps(self):
        return self.run.epochs * self.run.steps_per_epoch


def _experiment(**sections):
    config = ExperimentConfig()
    for section, values in sections.items():
        for key, value in values.items():
            setattr(getattr(config, section), key, value)
    return config


EXPERIMENTS = {
    # Paper Sec 4.2: batch 8, lr 0.01, poly 0.9, 80k iterations, scales 0.5..2.0, OHEM (Table 8).
    "cityscapes_paper": lambda: _experiment(
        model=dict(preset="spgnet_r50x2_256"),
        data=dict(dataset="cityscapes", crop_size=[768, 768], batch_size=8),
        loss=dict(ohem_threshold=0.7, ohem_min_kept=12500),  # per image: 100k per batch of 8
        run=dict(out_dir="runs/cityscapes_paper", epochs=80, steps_per_epoch=1000),
    ),
    # CamVid on a CPU: 2 x ResNet-18, decoder 64, crops of 160x224 (CamVid is 180x240).
    "camvid_cpu": lambda: _experiment(
        model=dict(preset="spgnet_r18x2_128", arguments=dict(decoder_channels=64)),
        data=dict(dataset="camvid", crop_size=[160, 224], batch_size=8),
        optimizer=dict(learning_rate=0.02),
        run=dict(out_dir="runs/camvid_cpu", epochs=20, steps_per_epoch=46),
    ),
    # The demo's synthetic street scenes.
    "synthetic_demo": lambda: _experiment(
        model=dict(preset="spgnet_r18x2_128", arguments=dict(decoder_channels=32)),
        data=dict(dataset="synthetic", crop_size=[96, 160], batch_size=8, scales=[0.75, 1.0, 1.25]),
        optimizer=dict(learning_rate=0.02),
        run=dict(out_dir="runs/demo", epochs=6, steps_per_epoch=30),
    ),
}


def experiment_config(name):
    """A fresh copy of named experiment `name`."""
    if name not in EXPERIMENTS:
        raise ValueError(f"Unknown experiment {name!r}; expected one of {sorted(EXPERIMENTS)}.")
    return EXPERIMENTS[name]()


def load_config(path):
    """Reads a YAML file: `experiment: NAME` (default "camvid_cpu") plus section overrides."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Config file {path} does not exist.")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: the top level must be a mapping of sections, got {type(raw).__name__}.")
    name = raw.pop("experiment", "camvid_cpu")
    if not isinstance(name, str) or name not in EXPERIMENTS:
        raise ValueError(f"{path}: unknown experiment {name!r}; expected one of {sorted(EXPERIMENTS)}.")
    config = experiment_config(name)
    apply_overrides(config, raw, source=str(path))
    return config


def apply_overrides(config, overrides, source="overrides"):
    """Sets `overrides` ({section: {key: value}}) on `config`, checking names and types."""
    for section, values in overrides.items():
        if section not in {f.name for f in dataclasses.fields(config)}:
            raise ValueError(f"{source}: unknown section {section!r}; expected one of "
                             f"{[f.name for f in dataclasses.fields(config)]}.")
        target = getattr(config, section)
        if not isinstance(values, dict):
            raise ValueError(f"{source}: section {section!r} must be a mapping, got {values!r}.")
        hints = typing.get_type_hints(type(target))
        for key, value in values.items():
            if key not in hints:
                raise ValueError(f"{source}: unknown key {section}.{key}; expected one of {sorted(hints)}.")
            setattr(target, key, _checked(value, hints[key], f"{source}: {section}.{key}"))
    check_model_arguments(config.model.arguments, source)
    check_values(config, source)
    return config


def check_values(config, source="config"):
    """Range checks that types alone do not catch, so a bad run fails before it starts."""
    from spgnet_keras.training import PRECISIONS, STRATEGIES

    data, run = config.data, config.run
    problems = []
    if len(data.crop_size) != 2 or any(not isinstance(v, int) or v < 1 for v in data.crop_size):
        problems.append(f"data.crop_size must be [height, width] of positive integers, got {data.crop_size!r}")
    if not data.scales or any(s <= 0 for s in data.scales):
        problems.append(f"data.scales must be positive, got {data.scales!r}")
    for name, value in (("data.batch_size", data.batch_size), ("run.epochs", run.epochs),
                        ("run.steps_per_epoch", run.steps_per_epoch)):
        if value < 1:
            problems.append(f"{name} must be >= 1, got {value}")
    if run.precision not in PRECISIONS:
        problems.append(f"run.precision must be one of {PRECISIONS}, got {run.precision!r}")
    if run.strategy not in STRATEGIES:
        problems.append(f"run.strategy must be one of {STRATEGIES}, got {run.strategy!r}")
    if problems:
        raise ValueError(f"{source}: " + "; ".join(problems) + ".")


def check_model_arguments(arguments, source):
    from spgnet_keras.models.spgnet import SPGNet

    allowed = set(inspect.signature(SPGNet.__init__).parameters) - {"self", "kwargs", "num_classes"}
    for key in arguments:
        if key not in allowed:
            raise ValueError(f"{source}: unknown key model.arguments.{key}; expected one of {sorted(allowed)}.")


def _checked(value, hint, where):
    origin = typing.get_origin(hint)
    if origin is typing.Union:  # Optional[X]
        if value is None:
            return None
        hint = [a for a in typing.get_args(hint) if a is not type(None)][0]
        origin = typing.get_origin(hint)
    if origin in (list, typing.List):
        if not isinstance(value, list):
            raise ValueError(f"{where} must be a list, got {value!r}.")
        item_hints = typing.get_args(hint)
        if not item_hints:
            return value
        return [_checked(item, item_hints[0], f"{where}[{index}]") for index, item in enumerate(value)]
    expected = origin or hint
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is bool and not isinstance(value, bool):
        raise ValueError(f"{where} must be true or false, got {value!r}.")
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise ValueError(f"{where} must be of type {expected.__name__}, got {value!r}.")
    return value


def config_to_dict(config):
    return dataclasses.asdict(config)
