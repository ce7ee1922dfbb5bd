"""The `spgnet` command prints the package's own errors in one line (exit 2) and lets a bug
keep its traceback: only `spgnet_keras.errors.SPGNetError` (and OSError) become usage errors."""

import pytest

from spgnet_keras import cli
from spgnet_keras.callbacks import CheckpointWriteError, TrainingDivergedError
from spgnet_keras.data.spec import DatasetError
from spgnet_keras.errors import InvalidInputError, SPGNetError
from spgnet_keras.export.portable import ParityError


def run_with(monkeypatch, error):
    """`spgnet profile` whose work raises `error`."""

    def fail(args):
        raise error

    parser = cli.build_parser()
    original = parser.parse_args

    def parse(argv):
        args = original(argv)
        args.func = fail
        return args

    monkeypatch.setattr(cli, "build_parser", lambda: type("P", (), {"parse_args": staticmethod(parse)})())
    return cli.main(["profile", "--rows", "R18"])


@pytest.mark.parametrize("error", [
    InvalidInputError("num_classes must be at least 2, got 1"),
    DatasetError("mask.png: label 12 is out of range"),
    cli.CommandError("--out is a dataset folder"),
    TrainingDivergedError("loss became NaN at step 3"),
    CheckpointWriteError("disk full"),
    ParityError("agreement 98.0 %"),
    FileNotFoundError("model.keras"),
])
def test_package_errors_are_one_line_usage_errors(monkeypatch, capsys, error):
    assert isinstance(error, (SPGNetError, OSError))
    assert run_with(monkeypatch, error) == 2
    err = capsys.readouterr().err
    assert err == f"spgnet profile: error: {error}\n"


@pytest.mark.parametrize("error", [ValueError("operands could not be broadcast"), KeyError("prediction"),
                                   TypeError("unsupported operand")])
def test_a_bug_keeps_its_traceback(monkeypatch, error):
    with pytest.raises(type(error)) as raised:
        run_with(monkeypatch, error)
    assert raised.value is error


def test_invalid_input_is_still_a_value_error():
    """Code written against the built-in type keeps catching the package's errors."""
    assert issubclass(InvalidInputError, ValueError)
    assert issubclass(DatasetError, ValueError)
    with pytest.raises(ValueError, match="at least 2"):
        from spgnet_keras.classes import check_num_classes

        check_num_classes(1)
