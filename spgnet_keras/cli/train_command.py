"""`spgnet train`: train on your folders as they are, a named dataset, or a YAML experiment
(resumes after a crash).

    spgnet train --images DIR --masks DIR [--val-images DIR --val-masks DIR | --val-fraction F]
    spgnet train --config FILE [--set SECTION.KEY=VALUE ...]

Every flag sets one config field (the table in the README); flags and `--set` apply in
command-line order on top of `--config` (default: the `camvid_cpu` experiment), so of two
that set the same field the later one wins.
"""

import json
import sys
from pathlib import Path

from spgnet_keras.cli.config_options import add_data_flags, add_run_flags, config_from_flags, parse_assignments

__all__ = ["add_parser", "parse_assignments", "run"]


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "train", help="train SPGNet on your folders, a named dataset or a YAML config",
        description="Train SPGNet. Data: --images DIR --masks DIR (your folders as they are) or --data ROOT "
                    "--dataset NAME; recipe: --config FILE (default experiment camvid_cpu) and the flags below.")
    parser.add_argument("--config", default=None, help="YAML experiment (see spgnet_keras/configs/); default: "
                        "the camvid_cpu experiment")
    add_data_flags(parser)
    add_run_flags(parser)
    parser.add_argument("--no-report", action="store_true",
                        help="do not evaluate the trained model into RUN/report/index.html at the end")
    parser.add_argument("--dry-run", action="store_true",
                        help="read and check the data, build the model, print the plan, and stop (nothing written)")
    parser.set_defaults(func=run_command)


def build_config(args):
    """The ExperimentConfig of the command line: `--config` (or camvid_cpu), then the flags."""
    from spgnet_keras.config import experiment_config, load_config

    base = load_config(args.config) if args.config else experiment_config("camvid_cpu")
    config = config_from_flags(args, base)
    if not args.config and config.data.dataset == "folder" and config.run.out_dir == base_out_dir():
        config.run.out_dir = FOLDER_RUN_DIR  # not "runs/camvid_cpu" for a user's own data
    return config


FOLDER_RUN_DIR = "runs/train"


def base_out_dir():
    from spgnet_keras.config import experiment_config

    return experiment_config("camvid_cpu").run.out_dir


def run_command(args):
    from spgnet_keras.distribution import is_one_of_several_processes
    from spgnet_keras.training import RunFinished, plan, train

    config = build_config(args)
    if args.dry_run:
        for line in plan(config):
            print(line)
        print("dry run: nothing was trained or written")
        return 0
    try:
        model, history, checkpoint = train(config)
    except RunFinished as finished:
        print(f"spgnet train: {finished}")
        return 0
    final = {key: values[-1] for key, values in history.items()}
    print(json.dumps({"final": final, "checkpoint": str(checkpoint.latest_path)}, indent=2))
    if args.no_report:
        return None
    if is_one_of_several_processes():  # its weights live on every process: evaluating needs them all
        print(f"report: not written by one process of a multi-process run; run spgnet evaluate --model "
              f"{checkpoint.latest_path} --report {Path(config.run.out_dir) / 'report'}", file=sys.stderr)
        return None
    write_run_report(model, config.run.out_dir)


def write_run_report(model, run_dir):
    """Evaluates the trained model on the run's recorded validation data into `run_dir/report/`
    (its table and path go to stderr: stdout keeps the JSON summary alone)."""
    from spgnet_keras.data.sources import DATA_RECORD, read_data_record
    from spgnet_keras.evaluation import evaluate_data, format_table
    from spgnet_keras.visualization import write_report

    run_dir = Path(run_dir)
    data, _ = read_data_record(run_dir / DATA_RECORD)
    if not data.val_pairs:
        return None
    result = evaluate_data(model, data)
    result.settings["model"] = "the trained model (checkpoints/latest.keras)"
    print(format_table(result), file=sys.stderr)
    page = write_report(result, run_dir / "report", model=model, data=data, run_dir=run_dir)
    print(f"report: {page}", file=sys.stderr)
    return page


run = run_command
