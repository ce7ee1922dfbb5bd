"""benchmarks/_common.py's shared pieces, and benchmarks/ablation_jax.py scoring and augmenting without TensorFlow."""

import importlib.util
from pathlib import Path

import pytest

from tests.test_scoring import run_without_tensorflow

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
_spec = importlib.util.spec_from_file_location("benchmarks_common", BENCHMARKS / "_common.py")
_common = importlib.util.module_from_spec(_spec)  # loaded by path: benchmarks/ stays off sys.path
_spec.loader.exec_module(_common)


def test_parse_size():
    assert _common.parse_size("512x1024") == (512, 1024)
    assert _common.parse_size("7X9") == (7, 9)
    with pytest.raises(ValueError):
        _common.parse_size("512")


def test_publish_prints_and_writes_its_section(tmp_path, capsys):
    doc, logged = tmp_path / "bench.md", []
    _common.publish("a", "first", doc=doc)
    _common.publish("b", "second", log=logged.append, doc=doc)
    _common.publish("a", "replaced", doc=doc)
    _common.publish("c", "not written", write_doc=False, doc=doc)
    text = doc.read_text()
    assert "replaced" in text and "second" in text and "first" not in text and "not written" not in text
    assert text.index("replaced") < text.index("second")
    assert logged == [f"wrote section 'b' of {doc}"]
    assert capsys.readouterr().out.split() == ["first", "second", "replaced", "not", "written"]


def test_build_model_shared_and_script_models():
    model = _common.build_model("spgnet_r18x1_128", 64, 64)
    assert model.name == "spgnet_r18x1_128" and tuple(model.output.shape) == (None, 64, 64, _common.NUM_CLASSES)
    built = []
    assert _common.build_model("mine", 32, 48, {"mine": built.append}) is None and built == [(32, 48, 3)]
    with pytest.raises(ValueError, match=r"Unknown model 'nope'; expected one of \['resnet50', 'spgnet_r18x1_128'"):
        _common.build_model("nope", 32, 32, {"mine": built.append})


def test_speed_scripts_share_the_model_names():
    result = run_without_tensorflow("""
        sys.path.insert(0, "benchmarks")
        import _common, gpu_speed

        assert gpu_speed.SPGNET_MODELS == _common.SPGNET_MODELS
        assert all(gpu_speed.LABELS[name] == label for name, label in _common.MODEL_LABELS.items())
        try:
            gpu_speed.build_model("nope", 32, 32)
        except ValueError as error:
            assert "deeplabv3plus_r101_os16" in str(error) and "deeplabv3plus_r101_os8" in str(error), error
        assert sys.modules["tensorflow"] is None
        print("ok")
    """)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]


def test_ablation_jax_augments_and_scores_without_tensorflow():
    result = run_without_tensorflow("""
        import numpy as np
        sys.path.insert(0, "benchmarks")
        import ablation_jax as a

        rng = np.random.default_rng(0)
        image = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
        label = rng.integers(0, 5, (30, 40)).astype(np.uint8)
        batches = a.TrainBatches(np.stack([image] * 3), np.stack([label] * 3), 2, (48, 64), [1.25], seed=0)
        x, y = batches(1)
        assert x.shape == (2, 48, 64, 3) and x.dtype == np.float32 and y.shape == (2, 48, 64)
        assert (y[:, 38:] == 255).all() and (y[:, :, 50:] == 255).all() and (y[:, :38, :50] < 5).all()  # 30x40 * 1.25
        assert all(np.array_equal(p, q) for p, q in zip(batches(1), a.TrainBatches(
            np.stack([image] * 3), np.stack([label] * 3), 2, (48, 64), [1.25], seed=0)(1)))  # a function of (seed, k)

        class Model:
            output = {"prediction": None}

            def predict_on_batch(self, batch):
                wrong = np.where(label == 4, 3, label)  # class 4 never predicted
                return {"prediction": np.eye(5)[wrong][None].repeat(len(batch), 0)}

        labels = np.stack([label] * 3)
        labels[0, :3] = 255
        iou, miou, accuracy = a.score(Model(), np.stack([image] * 3), labels, 5)["prediction"]
        assert iou[:3].tolist() == [1.0, 1.0, 1.0] and iou[4] == 0.0 and 0 < iou[3] < 1
        kept = labels != 255
        assert accuracy == np.mean(labels[kept] != 4)
        assert miou == np.mean(iou)
        assert sys.modules["tensorflow"] is None
        print("ok")
    """)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]


def test_ablation_jax_reinitialise_equals_a_fresh_build_of_the_seed():
    """One compile per variant (`ablation_jax.reinitialise`) starts seed 1 where a fresh seed-1 model starts."""
    import os
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import sys
        import keras
        import numpy as np
        sys.path.insert(0, "benchmarks")
        import ablation_jax as a
        from spgnet_keras.config import paper_ohem_loss

        x = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
        y = np.random.default_rng(1).integers(0, 5, (2, 64, 64)).astype("uint8")
        keras.utils.set_random_seed(0)
        model = a.build_model("no_spg", 5, 8)
        a.compile_recipe(model, 0.02, 4, paper_ohem_loss((64, 64)))
        model.fit(x, {k: y for k in model.output}, epochs=1, verbose=0)
        before = model.get_weights()
        a.reinitialise(model, "no_spg", 1, 5, 8)
        keras.utils.set_random_seed(1)
        fresh = a.build_model("no_spg", 5, 8)
        assert any(np.abs(p - q).max() > 0 for p, q in zip(before, model.get_weights()))
        assert all(np.array_equal(p, q) for p, q in zip(model.get_weights(), fresh.get_weights()))
        assert int(model.optimizer.iterations.numpy()) == 0
        assert all(not np.asarray(v).any() for v in model.optimizer.variables)
        a.compile_recipe(fresh, 0.02, 4, paper_ohem_loss((64, 64)))
        reused = model.fit(x, {k: y for k in model.output}, epochs=1, verbose=0, shuffle=False).history["loss"]
        first = fresh.fit(x, {k: y for k in fresh.output}, epochs=1, verbose=0, shuffle=False).history["loss"]
        assert np.allclose(reused, first, rtol=1e-6), (reused, first)
        print("ok")
    """)
    repo = BENCHMARKS.parent
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(repo)}
    result = subprocess.run([sys.executable, "-c", code], cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]
