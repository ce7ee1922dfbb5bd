"""Experiment configuration: dataclasses, named experiments, YAML overrides.

A run is described by `ExperimentConfig` (model, data, optimizer, loss, run). Named
experiments (`EXPERIMENTS`) give complete defaults; a YAML file names one with
`experiment:` and overrides any field. Unknown keys, wrong types, values that cannot
train and a key given twice are errors that name the key and the file. YAML is read
with a `yaml.SafeLoader` only (`load_yaml`).
"""

import dataclasses
import os
import re
import typing
from pathlib import Path

import yaml

from spgnet_keras.config_checks import PRECISIONS, STRATEGIES, check_model_arguments, check_values  # noqa: F401
from spgnet_keras.constants import DEFAULT_STAGE_WEIGHT
from spgnet_keras.errors import InvalidInputError
from spgnet_keras.scales import TRAINING_SCALES


@dataclasses.dataclass
class ModelConfig:
    """SPGNet architecture: a preset of the paper's tables plus argument overrides, or a saved
    SPGNet to fine-tune (`weights`: its architecture, re-headed for the data's classes).

    Example:

    ```python
    model = ModelConfig(preset="spgnet_r18x2_128", arguments={"spg_excitation": "softmax"})
    ```
    """

    preset: str = "spgnet_r18x2_128"
    arguments: dict = dataclasses.field(default_factory=dict)  # SPGNet(...) keyword overrides
    backbone_weights: typing.Optional[str] = None  # None | "imagenet" | path to a weights file
    weights: typing.Optional[str] = None  # a saved SPGNet (.keras or preset folder) to start from


@dataclasses.dataclass
class DataConfig:
    """Where the data are and how to read them (`spgnet_keras.data.resolve_data`).

    A named dataset reads `root` (camvid, cityscapes, synthetic; folder = ROOT/<split>/{images,
    labels}). Folders of any other layout are given as they are (dataset "folder"): `images` and
    `masks` (relative to `root` when it is set), file naming, list files, and a validation
    folder, list or held-out fraction.

    Example:

    ```python
    data = DataConfig(dataset="folder", images="mydata/img", masks="mydata/ann",
                      mask_suffix="_mask.png", classes="mydata/classes.csv")
    ```
    """

    dataset: str = "camvid"  # camvid | cityscapes | folder | synthetic
    root: typing.Optional[str] = None
    train_split: str = "train"
    val_split: str = "val"
    images: typing.Optional[str] = None  # training images (dataset "folder")
    masks: typing.Optional[str] = None  # their masks; None: beside the images
    val_images: typing.Optional[str] = None
    val_masks: typing.Optional[str] = None
    train_list: typing.Optional[str] = None  # keys (VOC ImageSets) or an image,mask CSV
    val_list: typing.Optional[str] = None
    val_fraction: typing.Optional[float] = None  # held out of the training pairs (default 0.1 without val data)
    split_seed: int = 0
    image_suffix: typing.Optional[str] = None  # e.g. _leftImg8bit.png; None: any image extension
    mask_suffix: str = ".png"  # e.g. _mask.png, _gtFine_labelTrainIds.png
    image_prefix: str = ""
    mask_prefix: str = ""
    recursive: bool = True
    classes: typing.Optional[str] = None  # classes file (names, optional colours)
    num_classes: typing.Optional[int] = None  # None: from the classes file, the dataset, or counted in the masks
    crop_size: typing.List[int] = dataclasses.field(default_factory=lambda: [160, 224])
    batch_size: int = 8
    scales: typing.List[float] = dataclasses.field(default_factory=lambda: list(TRAINING_SCALES))
    flip: bool = True
    mask_format: str = "auto"  # auto | index | color
    reduce_zero_label: bool = False  # 0 -> 255, other classes down by one (ADE20K)
    label_map: typing.Optional[dict] = None  # {old: new} after reduce_zero_label, e.g. {3: 1, 7: 255}
    validate: bool = True
    val_max_images: typing.Optional[int] = None


@dataclasses.dataclass
class OptimizerConfig:
    """SGD with poly decay (`spgnet_keras.optimizers.build_sgd`, `schedules.PolyDecay`).

    Defaults are the paper's (Sec 4.2): lr 0.01, momentum 0.9, weight decay 1e-4, poly
    power 0.9, no warm-up. The paper's code base is PyTorch, whose SGD decay is coupled
    (`wd * w` added to the gradient, before momentum) and applies to every parameter
    (In-Place ABN's scripts pass `model.parameters()`, BN and biases included): hence
    `weight_decay_mode="coupled"` and `decay_variables="all"`. "decoupled" (Keras' own,
    about 10x weaker at momentum 0.9) and "kernels" (conv/dense kernels only) remain options.

    Example:

    ```python
    optimizer = OptimizerConfig(learning_rate=0.005, warmup_steps=100)
    ```
    """

    learning_rate: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    weight_decay_mode: str = "coupled"  # coupled | decoupled
    decay_variables: str = "all"  # all | kernels
    power: float = 0.9
    warmup_steps: int = 0


@dataclasses.dataclass
class LossConfig:
    """The deep-supervision loss (`spgnet_keras.losses`): stage weights, OHEM, class weights.

    Example:

    ```python
    loss = LossConfig(ohem_threshold=0.7, ohem_min_kept=12500, class_weights="auto")
    ```
    """

    stage_weight: float = DEFAULT_STAGE_WEIGHT  # paper Sec 3.4: a plain sum of the stage losses
    ohem_threshold: typing.Optional[float] = None
    ohem_min_kept: int = 0
    ohem_top_k: typing.Optional[float] = None
    class_weights: typing.Optional[typing.Union[typing.List[float], str]] = None  # or "auto": median frequency


# OHEM as the cityscapes_paper experiment uses it (Table 8; threshold and count our choice, see
# EXPERIMENTS): keep pixels below 0.7 probability, at least 100k per batch of eight 768x768 crops.
PAPER_OHEM_THRESHOLD = 0.7
PAPER_OHEM_MIN_KEPT = 12500  # per 768x768 image
PAPER_OHEM_CROP = (768, 768)


def paper_ohem_loss(crop_size=PAPER_OHEM_CROP, **fields):
    """`LossConfig` with the paper's OHEM, its per-image `ohem_min_kept` scaled to `crop_size` pixels.

    Example:

    ```python
    paper_ohem_loss((160, 224))  # LossConfig(ohem_threshold=0.7, ohem_min_kept=760)
    ```
    """
    height, width = crop_size
    kept = max(1, round(PAPER_OHEM_MIN_KEPT * height * width / (PAPER_OHEM_CROP[0] * PAPER_OHEM_CROP[1])))
    return LossConfig(ohem_threshold=PAPER_OHEM_THRESHOLD, ohem_min_kept=kept, **fields)


@dataclasses.dataclass
class RunConfig:
    """Where a run writes (`out_dir`), how long it trains, its seed, precision and strategy.

    Example:

    ```python
    run = RunConfig(out_dir="runs/camvid", epochs=20, steps_per_epoch=46, precision="mixed_bfloat16")
    ```
    """

    out_dir: str = "runs/experiment"
    epochs: int = 10
    steps_per_epoch: int = 50
    # Initial weights and training batches; training itself is not bitwise reproducible on the
    # CPU (kernel round-off differs between runs; docs/benchmarks.md, "Reading the `medium` ablation").
    seed: int = 0
    precision: str = "float32"  # float32 | mixed_float16 | mixed_bfloat16
    jit_compile: bool = False
    strategy: str = "auto"  # auto | default | mirrored | multiworker (TensorFlow) | data_parallel (JAX)
    validation_steps: typing.Optional[int] = None
    verbose: int = 1


@dataclasses.dataclass
class ExperimentConfig:
    """One training run: the five sections above. `load_config` reads it from a named
    experiment (`EXPERIMENTS`) and a YAML file; `--set section.key=value` overrides fields.

    Example:

    ```python
    config = ExperimentConfig()
    config.data.dataset, config.run.epochs = "synthetic", 1
    print(config.max_steps)  # epochs * steps_per_epoch
    ```
    """

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
    # Where each number comes from (paper: Cheng et al., "SPGNet: Semantic Prediction Guidance for Scene Parsing", ICCV 2019):
    # - 2 x ResNet-50, D=256: the paper's best model (Tables 1, 9).
    # - batch 8, SGD lr 0.01, momentum 0.9, weight decay 1e-4, poly power 0.9: Sec 4.2 (the
    #   OptimizerConfig defaults; decay coupled on every parameter, as PyTorch's SGD; see there).
    # - scales 0.5-2.0 step 0.25, flip (DataConfig defaults): Sec 4.2.
    # - 80 x 1000 = 80k iterations on "train": Sec 4.2 (the ablation/val budget).
    # - deep supervision, stage weight 1.0 (LossConfig default): Sec 3.4 gives no weights.
    # - OHEM on every stage: Table 8 / Sec 4.4. Threshold 0.7 and 100k kept pixels per batch
    #   are not in the paper: our choice, the usual Cityscapes OHEM setting (PSPNet-style code).
    # - 768x768 crops: NOT in the paper ("random crop", size not given). Our choice: the usual
    #   Cityscapes crop of its era (769 with align_corners resizes = 768 here; a multiple of 32).
    "cityscapes_paper": lambda: _experiment(
        model=dict(preset="spgnet_r50x2_256"),
        data=dict(dataset="cityscapes", crop_size=[768, 768], batch_size=8),
        loss=dict(ohem_threshold=PAPER_OHEM_THRESHOLD, ohem_min_kept=PAPER_OHEM_MIN_KEPT),  # 100k per batch of 8
        run=dict(out_dir="runs/cityscapes_paper", epochs=80, steps_per_epoch=1000),
    ),
    # CamVid on a CPU, all sizes our choice to fit 2 cores: 2 x ResNet-18 (the paper's ablation
    # encoder, Tables 3-5), decoder 64 (paper 128), crops 160x224 (CamVid is 180x240), 20 x 46
    # steps (~20 passes over the 367 train images), lr 0.02 (paper 0.01: our choice, chosen for
    # the short budget from random encoder weights). Optimizer, scales, flip and stage weight:
    # the paper's (Sec 3.4, 4.2).
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
        raise InvalidInputError(f"Unknown experiment {name!r}; expected one of {sorted(EXPERIMENTS)}.")
    return EXPERIMENTS[name]()


class DuplicateKeyError(InvalidInputError):
    """A YAML mapping names the same key twice (PyYAML would keep the last silently)."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that refuses a key repeated in one mapping (a section pasted twice
    would otherwise silently replace the first). Merge keys (`<<: *base`) still override."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            first_lines = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                try:
                    first = first_lines.setdefault(key, line)
                except TypeError:  # an unhashable key: SafeLoader reports it below
                    continue
                if first != line:
                    raise DuplicateKeyError(
                        f"key {key!r} appears twice (lines {first} and {line}); merge the two into one"
                    )
        return super().construct_mapping(node, deep=deep)


def load_yaml(text):
    """`yaml.safe_load` that raises `DuplicateKeyError` for a key repeated in a mapping."""
    loader = _UniqueKeyLoader(text)  # a SafeLoader: no Python object tags are constructed
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def load_config(path):
    """Reads a YAML file: `experiment: NAME` (default "camvid_cpu") plus section overrides."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Config file {path} does not exist.")
    try:
        raw = load_yaml(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise InvalidInputError(f"{path}: not valid YAML: {error}") from None
    except DuplicateKeyError as error:
        raise InvalidInputError(f"{path}: {error}.") from None
    if not isinstance(raw, dict):
        raise InvalidInputError(f"{path}: the top level must be a mapping of sections, got {type(raw).__name__}.")
    name = raw.pop("experiment", "camvid_cpu")
    if not isinstance(name, str) or name not in EXPERIMENTS:
        raise InvalidInputError(f"{path}: unknown experiment {name!r}; expected one of {sorted(EXPERIMENTS)}.")
    config = experiment_config(name)
    apply_overrides(config, raw, source=str(path))
    return config


def apply_overrides(config, overrides, source="overrides"):
    """Sets `overrides` ({section: {key: value}}) on `config`, checking names, types and values."""
    set_fields(config, overrides, source)
    check_model_arguments(config.model.arguments, source)
    check_values(config, source)
    return config


def set_fields(config, overrides, source):
    """Sets `overrides` ({section: {key: value}}) on `config`, checking names and types only."""
    for section, values in overrides.items():
        if section not in {f.name for f in dataclasses.fields(config)}:
            raise InvalidInputError(f"{source}: unknown section {section!r}; expected one of "
                             f"{[f.name for f in dataclasses.fields(config)]}.")
        target = getattr(config, section)
        if not isinstance(values, dict):
            raise InvalidInputError(f"{source}: section {section!r} must be a mapping, got {values!r}.")
        hints = typing.get_type_hints(type(target))
        for key, value in values.items():
            if key not in hints:
                raise InvalidInputError(f"{source}: unknown key {section}.{key}; expected one of {sorted(hints)}.")
            value = _checked(value, hints[key], f"{source}: {section}.{key}")
            if (section, key) in PATH_FIELDS and isinstance(value, str) and value != "imagenet":
                value = os.path.expanduser(value)
            setattr(target, key, value)


def apply_assignments(config, assignments, source="command line"):
    """Applies `[(section, key, value, origin), ...]` in order (a later one of the same field
    wins), each checked in name and type with its `origin` (e.g. "--set", "--epochs") in the
    message, then the whole config checked as `apply_overrides` does.

    `key` may reach into a mapping field: `("model", "arguments.decoder_channels", 64, ...)`
    sets one SPGNet argument and keeps the others; `("data", "label_map.255", 1, ...)` one
    label-map entry.
    """
    for section, key, value, origin in assignments:
        field, dot, entry = key.partition(".")
        if dot:
            current = getattr(getattr(config, section, None), field, None)
            if current is not None and not isinstance(current, dict):
                raise InvalidInputError(f"{origin}: {section}.{field} is not a mapping; set it whole ({section}.{field}=VALUE).")
            value = {**(current or {}), entry: value}
        set_fields(config, {section: {field: value}}, origin)
        if (section, field) == ("model", "arguments"):
            check_model_arguments(value, origin)
    check_model_arguments(config.model.arguments, source)
    check_values(config, source)
    return config


FLOAT_LITERAL = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")

# Fields that hold a path: `~` is expanded when they are set (a shell does it on the command
# line, YAML does not).
PATH_FIELDS = {("data", "root"), ("data", "images"), ("data", "masks"), ("data", "val_images"),
               ("data", "val_masks"), ("data", "train_list"), ("data", "val_list"), ("data", "classes"),
               ("model", "weights"), ("model", "backbone_weights"), ("run", "out_dir")}


def _checked(value, hint, where):
    origin = typing.get_origin(hint)
    if origin is typing.Union:  # Optional[X], Union[X, Y]: the first alternative that takes the value
        if value is None and type(None) in typing.get_args(hint):
            return None
        alternatives = [a for a in typing.get_args(hint) if a is not type(None)]
        for alternative in alternatives[:-1]:
            try:
                return _checked(value, alternative, where)
            except ValueError:
                pass
        hint = alternatives[-1]
        origin = typing.get_origin(hint)
    if origin in (list, typing.List):
        if not isinstance(value, list):
            raise InvalidInputError(f"{where} must be a list, got {value!r}.")
        item_hints = typing.get_args(hint)
        if not item_hints:
            return value
        return [_checked(item, item_hints[0], f"{where}[{index}]") for index, item in enumerate(value)]
    expected = origin or hint
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is float and isinstance(value, str) and FLOAT_LITERAL.fullmatch(value.strip()):
        return float(value)  # YAML 1.1 reads 1e-3 (no dot) as a string: take the number the user wrote
    if expected is bool and not isinstance(value, bool):
        raise InvalidInputError(f"{where} must be true or false, got {value!r}.")
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise InvalidInputError(f"{where} must be of type {expected.__name__}, got {value!r}.")
    return value


def config_to_dict(config):
    return dataclasses.asdict(config)
