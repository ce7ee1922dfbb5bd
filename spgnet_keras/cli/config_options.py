"""Command-line flags that set fields of the experiment config (`spgnet train`, `evaluate`, `demo`).

Every flag is a short name for one `--set SECTION.KEY=VALUE`: flags and `--set` are applied in
the order they are given, so of two that set the same field the later one wins.
"""

import argparse

from spgnet_keras.errors import InvalidInputError

OVERRIDES = "overrides"


def parse_assignment(item):
    """"run.epochs=2" -> ("run", "epochs", 2), the value parsed as YAML."""
    import yaml

    from spgnet_keras.config import DuplicateKeyError, load_yaml

    key, sep, value = item.partition("=")
    section, dot, field = key.partition(".")
    if not sep or not dot or not section or not field:
        raise InvalidInputError(f"--set expects SECTION.KEY=VALUE, got {item!r}.")
    try:
        parsed = load_yaml(value)
    except (yaml.YAMLError, DuplicateKeyError) as error:
        raise InvalidInputError(f"--set {item!r}: the value is not valid YAML ({error}).") from None
    return section, field, parsed


def parse_assignments(assignments):
    """["run.epochs=2", ...] -> {"run": {"epochs": 2}} with YAML-typed values."""
    overrides = {}
    for item in assignments:
        section, field, value = parse_assignment(item)
        overrides.setdefault(section, {})[field] = value
    return overrides


class _Assign(argparse.Action):
    """Appends `(section, key, value, option)` to `namespace.overrides` for each field the flag sets."""

    def __init__(self, option_strings, dest, fields=(), convert=None, **kwargs):
        self.fields, self.convert = fields, convert
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        assignments = list(getattr(namespace, OVERRIDES, None) or [])
        if self.fields == "set":  # --set SECTION.KEY=VALUE: parsed (and checked) when applied
            assignments.append(("--set", values, None, option_string))
        else:
            value = self.const if self.nargs == 0 else values
            if self.convert is not None:
                value = (option_string, self.convert, value)
            for field in self.fields:  # "section.key" takes the flag's value; ("section.key", constant) the constant
                field, field_value = field if isinstance(field, tuple) else (field, value)
                section, key = field.split(".", 1)
                assignments.append((section, key, field_value, option_string))
        setattr(namespace, OVERRIDES, assignments)
        setattr(namespace, self.dest, values)  # the raw value too (e.g. for the UTF-8 check of paths)


def add_flag(parser, *names, fields, convert=None, flag=False, **kwargs):
    """A flag setting the config `fields` ("section.key", ...) to its value (or True with `flag`)."""
    if flag:
        kwargs.update(nargs=0, const=True)
    parser.add_argument(*names, action=_Assign, fields=fields, convert=convert, dest=names[0][2:].replace("-", "_"),
                        default=None, **kwargs)


def add_set_option(parser):
    parser.add_argument("--set", action=_Assign, fields="set", metavar="SECTION.KEY=VALUE", dest="set",
                        help="set any config field, e.g. --set run.epochs=2 or --set model.arguments.decoder_channels=64 "
                             "(value parsed as YAML); applied in command-line order with the other flags")


def assignments_of(args):
    """The `(section, key, value, option)` of the flags and `--set`, in command-line order, values converted."""
    result = []
    for section, key, value, option in getattr(args, OVERRIDES, None) or []:
        if section == "--set":
            result.append((*parse_assignment(key), "--set"))
            continue
        if isinstance(value, tuple) and len(value) == 3 and callable(value[1]):
            _, convert, raw = value
            try:
                value = convert(raw)
            except ValueError as error:
                raise InvalidInputError(f"{option} {raw!r}: {error}") from None
        result.append((section, key, value, option))
    return result


def crop_size(values):
    """`--crop-size H W`, `--crop-size HxW` or `--crop-size S` -> [H, W]."""
    parts = [part for value in values for part in str(value).lower().replace("x", " ").split()]
    try:
        sides = [int(part) for part in parts]
    except ValueError:
        raise InvalidInputError("expected HEIGHT WIDTH (or HEIGHTxWIDTH), e.g. 512 1024") from None
    if len(sides) == 1:
        sides *= 2
    if len(sides) != 2:
        raise InvalidInputError("expected HEIGHT WIDTH (or HEIGHTxWIDTH), e.g. 512 1024")
    return sides


def label_map(text):
    """`--label-map '{"3": 1, "7": 255}'`, `--label-map 3:1,7:255` or a JSON/YAML file -> dict."""
    from pathlib import Path

    import yaml

    from spgnet_keras.config import load_yaml
    from spgnet_keras.data.masks import parse_label_map

    path = Path(text)
    if path.suffix.lower() in (".json", ".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise InvalidInputError("no such file")
        text = path.read_text()
    text = text.strip()
    if not text.startswith("{"):
        text = "{" + ", ".join(item.replace(":", ": ", 1) for item in text.split(",")) + "}"
    try:
        mapping = load_yaml(text)
    except yaml.YAMLError:
        raise InvalidInputError("expected a mapping such as '{\"3\": 1, \"7\": 255}' or 3:1,7:255") from None
    return {str(key): value for key, value in parse_label_map(mapping).items()}


def class_weights(text):
    """`--class-weights auto` or `--class-weights 1,2.5,0.3` -> "auto" or a list of floats."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return [float(value) for value in text.split(",")]
    except ValueError:
        raise InvalidInputError("expected 'auto' (median-frequency balancing) or comma-separated numbers") from None


def add_data_flags(parser, evaluation=False):
    """The flags that say where a user's data are and how to read them (`DataConfig`).

    For `spgnet evaluate` (`evaluation=True`) the folders are the ones to evaluate:
    `--images` / `--masks` / `--list` set the validation fields.
    """
    group = parser.add_argument_group("your data as it is (no file is moved or renamed)")
    add_flag(group, "--data", fields=("data.root",), metavar="ROOT",
             help="root of a named dataset, or the folder the other data paths are relative to")
    add_flag(group, "--dataset", fields=("data.dataset",), choices=("camvid", "cityscapes", "folder", "synthetic"),
             help="layout of --data: camvid/folder = ROOT/<split>/{images,labels}, cityscapes = official layout")
    prefix = "val_" if evaluation else ""
    add_flag(group, "--images", fields=(("data.dataset", "folder"), f"data.{prefix}images"), metavar="DIR",
             help="folder of images (sub-folders too), any name" + ("" if evaluation else " (training images)"))
    add_flag(group, "--masks", fields=(f"data.{prefix}masks",), metavar="DIR",
             help="folder of their masks (default: beside the images)")
    if evaluation:
        add_flag(group, "--list", fields=("data.val_list",), metavar="FILE",
                 help="text file of image names (VOC ImageSets) or image,mask CSV selecting the pairs")
        add_flag(group, "--split", fields=("data.val_split",), metavar="NAME",
                 help="split of --data to evaluate (default val)")
    else:
        add_flag(group, "--val-images", fields=("data.val_images",), metavar="DIR", help="folder of validation images")
        add_flag(group, "--val-masks", fields=("data.val_masks",), metavar="DIR", help="folder of their masks")
        add_flag(group, "--train-list", fields=("data.train_list",), metavar="FILE",
                 help="text file of image names (VOC ImageSets/Segmentation/train.txt) or image,mask CSV")
        add_flag(group, "--val-list", fields=("data.val_list",), metavar="FILE",
                 help="the same for validation (from the training folders unless --val-images is given)")
        add_flag(group, "--val-fraction", fields=("data.val_fraction",), type=float, metavar="F",
                 help="hold out this share of the training pairs for validation (default 0.1 when there is no "
                      "validation data)")
        add_flag(group, "--split-seed", fields=("data.split_seed",), type=int, metavar="N",
                 help="seed of --val-fraction's split (default 0)")
    add_flag(group, "--image-suffix", fields=("data.image_suffix",), metavar="S",
             help="end of every image name, e.g. _leftImg8bit.png (default: any image extension)")
    add_flag(group, "--mask-suffix", fields=("data.mask_suffix",), metavar="S",
             help="end of every mask name, e.g. _mask.png or _gtFine_labelTrainIds.png (default .png)")
    add_flag(group, "--image-prefix", fields=("data.image_prefix",), metavar="P", help="start of every image name")
    add_flag(group, "--mask-prefix", fields=("data.mask_prefix",), metavar="P", help="start of every mask name")
    add_flag(group, "--classes", fields=("data.classes",), metavar="FILE",
             help="class names (and colours): JSON, CSV 'name,r,g,b' rows, or text 'name [r g b]' lines")
    add_flag(group, "--num-classes", fields=("data.num_classes",), type=int, metavar="N",
             help="number of classes when there is no classes file (default: counted in the masks)")
    add_flag(group, "--mask-format", fields=("data.mask_format",), choices=("auto", "index", "color"),
             help="auto (default): class-index PNGs (grey or palette) or colour-coded RGB PNGs (colours from "
                  "--classes)")
    add_flag(group, "--reduce-zero-label", fields=("data.reduce_zero_label",), flag=True,
             help="0 = unlabelled becomes 255 and every class moves down by one (ADE20K)")
    add_flag(group, "--label-map", fields=("data.label_map",), convert=label_map, metavar="MAP",
             help="merge or drop classes on the fly: '{\"3\": 1, \"7\": 255}', 3:1,7:255 or a JSON file")
    return group


def config_from_flags(args, base):
    """`base` (an ExperimentConfig) with the flags and `--set` of `args` applied in order."""
    from spgnet_keras.config import apply_assignments

    return apply_assignments(base, assignments_of(args))


def add_run_flags(parser):
    """The flags of the model and the recipe (`spgnet train`, `spgnet demo`), and `--set`."""
    group = parser.add_argument_group("model and run")
    add_flag(group, "--preset", fields=("model.preset",), metavar="NAME", help="architecture (SPGNet.presets)")
    add_flag(group, "--weights", fields=("model.weights",), metavar="MODEL",
             help="fine-tune a saved SPGNet (.keras or preset folder): its architecture, re-headed for your classes")
    add_flag(group, "--backbone-weights", fields=("model.backbone_weights",), metavar="W",
             help="encoder weights: imagenet (keras-hub, downloads) or a saved ResNetBackbone .keras file")
    add_flag(group, "--epochs", fields=("run.epochs",), type=int, metavar="N")
    add_flag(group, "--steps-per-epoch", fields=("run.steps_per_epoch",), type=int, metavar="N")
    add_flag(group, "--batch-size", fields=("data.batch_size",), type=int, metavar="N")
    add_flag(group, "--crop-size", fields=("data.crop_size",), convert=crop_size, nargs="+", metavar="H W",
             help="training crop, e.g. 512 1024 (or 512x1024)")
    add_flag(group, "--learning-rate", fields=("optimizer.learning_rate",), type=float, metavar="LR")
    add_flag(group, "--class-weights", fields=("loss.class_weights",), convert=class_weights, metavar="W",
             help="auto (median-frequency balancing of the training masks) or w0,w1,... per class")
    add_flag(group, "--seed", fields=("run.seed",), type=int, metavar="N", help="initial weights and batches")
    add_flag(group, "--out", fields=("run.out_dir",), metavar="DIR", help="run folder (checkpoints, logs, data.json)")
    add_set_option(group)
    return group
