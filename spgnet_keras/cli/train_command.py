"""`spgnet train --config FILE`: train with a YAML experiment (resumes after a crash)."""

import json


def add_parser(subparsers):
    parser = subparsers.add_parser("train", help="train SPGNet from a YAML config")
    parser.add_argument("--config", required=True, help="YAML file (see spgnet_keras/configs/)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one field, e.g. --set run.epochs=2 (value parsed as YAML)")
    parser.set_defaults(func=run)


def parse_assignments(assignments):
    """["run.epochs=2", ...] -> {"run": {"epochs": 2}} with YAML-typed values."""
    import yaml

    from spgnet_keras.config import DuplicateKeyError, load_yaml

    overrides = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        section, dot, field = key.partition(".")
        if not sep or not dot or not section or not field:
            raise ValueError(f"--set expects SECTION.KEY=VALUE, got {item!r}.")
        try:
            parsed = load_yaml(value)
        except (yaml.YAMLError, DuplicateKeyError) as error:
            raise ValueError(f"--set {item!r}: the value is not valid YAML ({error}).") from None
        overrides.setdefault(section, {})[field] = parsed
    return overrides


def run(args):
    from spgnet_keras.config import apply_overrides, load_config
    from spgnet_keras.training import RunFinished, train

    config = load_config(args.config)
    apply_overrides(config, parse_assignments(args.set), source="--set")
    try:
        _, history, checkpoint = train(config)
    except RunFinished as finished:
        print(f"spgnet train: {finished}")
        return 0
    final = {key: values[-1] for key, values in history.items()}
    print(json.dumps({"final": final, "checkpoint": str(checkpoint.latest_path)}, indent=2))
