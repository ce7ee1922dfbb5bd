"""Every example notebook runs top to bottom in smoke mode (SPGNET_NOTEBOOK_SMOKE=1)."""

import time

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient

from tests.examples.example_helpers import EXAMPLES, example_environment

CELL_TIMEOUT_S = 600
NOTEBOOKS = ["finetune_custom_dataset.ipynb", "guided_attention.ipynb"]


def run_notebook(name, kernel_name, tmp_path, monkeypatch, **env):
    """Executes examples/<name> with cwd examples/; raises CellExecutionError on a failing cell."""
    for key, value in example_environment(tmp_path, SPGNET_NOTEBOOK_SMOKE=1,
                                          SPGNET_NOTEBOOK_OUT=tmp_path / "runs", **env).items():
        monkeypatch.setenv(key, value)  # the kernel inherits this process's environment
    notebook = nbformat.read(EXAMPLES / name, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_S,
        kernel_name=kernel_name,
        resources={"metadata": {"path": str(EXAMPLES)}},
        allow_errors=False,
    )
    started = time.time()
    client.execute()
    return notebook, time.time() - started


def outputs_text(notebook):
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts.append(str(output.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


def test_kernel_runs_this_interpreter(python3_kernel):
    import sys

    spec = KernelSpecManager().get_kernel_spec(python3_kernel)
    assert spec.argv[0] == sys.executable


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_notebook_has_no_outputs(name):
    notebook = nbformat.read(EXAMPLES / name, as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{name}: clear the outputs before committing"


@pytest.mark.slow
def test_finetune_custom_dataset_notebook(python3_kernel, tmp_path, monkeypatch):
    notebook, seconds = run_notebook("finetune_custom_dataset.ipynb", python3_kernel, tmp_path, monkeypatch)
    text = outputs_text(notebook)
    out = tmp_path / "runs" / "finetune_custom_dataset"
    assert "smoke mode" in text
    assert "Could not load ImageNet weights" in text or "ImageNet weights loaded" in text
    assert "SavedModel vs. Keras model" in text and "mIoU" in text
    # The three layouts are read in place, the suffix error names the option, the classes travel.
    assert "end in '_mask.png': pass --mask-suffix _mask.png" in text
    assert "with mask_suffix='_mask.png': 8 pairs" in text
    assert "VOC: 8 training and 2 validation pairs" in text and "masks: index (palette PNGs)" in text
    assert "8 training pairs, 2 validation pairs" in text and "classes (classes file" in text
    assert "classes of the new model: Sky, Building" in text
    assert "class names for clients (assets.extra/spgnet_export.json): ['Sky', 'Building'" in text
    for name in ("training_curves.png", "confusion_matrix.png", "overlays.png"):
        assert (out / "figures" / name).is_file()
    assert (out / "export" / "spgnet" / "1" / "saved_model.pb").is_file()
    assert (out / "request.json").read_text().startswith('{"instances": [{"b64": ')
    print(f"finetune_custom_dataset.ipynb: {seconds:.0f} s")


@pytest.mark.slow
def test_guided_attention_notebook(python3_kernel, tmp_path, monkeypatch):
    # CamVid is what the finetune notebook runs on; this one exercises the SYNTHETIC fallback.
    notebook, seconds = run_notebook("guided_attention.ipynb", python3_kernel, tmp_path, monkeypatch,
                                     SPGNET_NOTEBOOK_DATASET="synthetic")
    text = outputs_text(notebook)
    out = tmp_path / "runs" / "guided_attention"
    assert "smoke mode" in text and "SYNTHETIC" in text
    assert (out / "figures" / "guided_attention.png").is_file()
    print(f"guided_attention.ipynb: {seconds:.0f} s")
