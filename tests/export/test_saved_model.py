"""The TF Serving SavedModel: signatures, parity with Keras from Python-without-Keras and from
TensorFlow's C API, graph contents, and rejection of bad input.

One small 2-stage model is exported once for the whole module.
"""

import os
import re
import shutil
import struct
import subprocess
import sys
import types
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from spgnet_keras import SPGNet
from spgnet_keras.export import DEFAULT_MAX_PIXELS, PAD_CLASS, export_saved_model, fold_batchnorm
from spgnet_keras.export.serving import (
    CHANNELS_MESSAGE,
    EMPTY_BATCH_MESSAGE,
    EMPTY_IMAGE_MESSAGE,
    NOT_AN_IMAGE_MESSAGE,
    NOT_FINITE_MESSAGE,
    TOO_LARGE_MESSAGE,
)
from tests.export.reference import (
    encode,
    jpeg_with_header_size,
    keras_classes,
    keras_logits,
    png_with_header_size,
    smooth_image,
    softmax,
)

HERE = Path(__file__).parent
NUM_CLASSES = 5
ODD = (97, 131)  # not multiples of 32: padded to 128 x 160 inside the graph
SMALL = (40, 50)
# The inputs take any rank: the graph checks it and names the expected shape (row R1 of the
# export catalogue: [B] strings, [B, H, W, C] tensors).
SIGNATURES = {
    "serving_default": ("DT_STRING", "unknown_rank"),
    "predict_images": ("DT_UINT8", "unknown_rank"),
    "predict_images_float": ("DT_FLOAT", "unknown_rank"),
}
OUTPUTS = {
    "classes": ("DT_INT32", "(-1, -1, -1)"),
    "image_sizes": ("DT_INT32", "(-1, 2)"),
    "probabilities": ("DT_FLOAT", f"(-1, -1, -1, {NUM_CLASSES})"),
}
# The compact answer for REST clients: encoded images in, one PNG class map per image out.
PNG_SIGNATURE = ("predict_classes_png", ("DT_STRING", "unknown_rank"))
PNG_OUTPUTS = {
    "classes_png_bytes": ("DT_STRING", "(-1)"),
    "image_sizes": ("DT_INT32", "(-1, 2)"),
}


def _start_c_compile(out_dir):
    """Starts compiling the C API runner (gcc, ~10 s) so it overlaps with the export."""
    import tensorflow as tensorflow_package

    gcc = shutil.which("gcc")
    assert gcc, "gcc is needed to compile the C API test program (apt-get install gcc)"
    tf_dir = Path(tensorflow_package.__file__).parent
    assert (tf_dir / "include" / "tensorflow" / "c" / "c_api.h").is_file(), f"no C API headers under {tf_dir}"
    runner = out_dir / "tf_c_runner"
    command = [gcc, "-O1", "-o", str(runner), str(HERE / "tf_c_runner.c"), f"-I{tf_dir / 'include'}", f"-L{tf_dir}",
               "-l:libtensorflow_cc.so.2", "-l:libtensorflow_framework.so.2", f"-Wl,-rpath,{tf_dir}"]
    return runner, subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _start_no_keras_run(export_dir, requests, result_path):
    command = [sys.executable, str(HERE / "load_without_keras.py"), str(export_dir), str(requests), str(result_path)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    base = tmp_path_factory.mktemp("serving")
    runner, compile_process = _start_c_compile(base)
    keras.utils.set_random_seed(7)
    model = SPGNet(NUM_CLASSES, backbones=("resnet18",), decoder_channels=16)
    export_dir = export_saved_model(model, base / "spgnet" / "1", include_probabilities=True)
    image = smooth_image(*ODD, seed=1)
    small = smooth_image(*SMALL, seed=2)
    png, jpeg, small_png = encode(image, "PNG"), encode(image, "JPEG", quality=90), encode(small, "PNG")
    requests = base / "requests"
    requests.mkdir()
    (requests / "image.png").write_bytes(png)
    (requests / "image.jpg").write_bytes(jpeg)
    (requests / "small.png").write_bytes(small_png)
    np.save(requests / "image.npy", image)
    # The Python-without-Keras run goes on in the background while the references are computed.
    no_keras_result = base / "no_keras.npz"
    no_keras_process = _start_no_keras_run(export_dir, requests, no_keras_result)
    saved_model_cli = subprocess.Popen(
        [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", "show", "--all", "--dir", str(export_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    jpeg_decoded = tf.io.decode_jpeg(jpeg, channels=3).numpy()  # the same libjpeg decode as the graph
    namespace = types.SimpleNamespace(
        model=model,
        export_dir=export_dir,
        base=base,
        requests=requests,
        image=image,
        small=small,
        png=png,
        jpeg=jpeg,
        small_png=small_png,
        expected=keras_classes(model, image[None]),
        expected_small=keras_classes(model, small[None]),
        expected_jpeg=keras_classes(model, jpeg_decoded[None]),
        logits=keras_logits(model, image[None]),
        c_runner=runner,
        c_compile=compile_process,
        no_keras=(no_keras_process, no_keras_result),
        saved_model_cli=saved_model_cli,
    )
    yield namespace
    for process in (compile_process, no_keras_process, saved_model_cli):
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def served(exported):
    return tf.saved_model.load(str(exported.export_dir))


def test_layout_is_tf_serving(exported):
    """<base>/<model_name>/<version>/saved_model.pb + variables/, no leftover temporary folder."""
    assert exported.export_dir.name == "1"
    assert (exported.export_dir / "saved_model.pb").is_file()
    assert (exported.export_dir / "variables" / "variables.index").is_file()
    assert (exported.export_dir / "assets.extra" / "spgnet_export.json").is_file()
    assert sorted(p.name for p in exported.export_dir.parent.iterdir()) == ["1"]
    # Every weight of the served (BatchNorm-folded) network is stored once (tracking the model
    # in the ExportArchive would add a copy).
    saved = tf.train.load_checkpoint(str(exported.export_dir / "variables" / "variables")).get_variable_to_shape_map()
    served_weights = fold_batchnorm(exported.model).weights
    assert len([name for name in saved if name != "_CHECKPOINTABLE_OBJECT_GRAPH"]) == len(served_weights)


def test_saved_model_cli_lists_signatures(exported):
    """`saved_model_cli show --all` (run in the background since the export) lists the
    documented signatures, input dtype/shape and outputs."""
    process = exported.saved_model_cli
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-3000:]
    blocks = re.split(r"\nsignature_def\['", stdout)
    found = {block.split("'")[0]: block for block in blocks[1:]}
    expected = [(name, spec, OUTPUTS) for name, spec in SIGNATURES.items()] + [(*PNG_SIGNATURE, PNG_OUTPUTS)]
    assert {name for name, _, _ in expected} <= set(found), sorted(found)
    for name, (dtype, shape), outputs in expected:
        block = found[name]
        assert re.search(rf"inputs\['images'\] tensor_info:\s+dtype: {dtype}\s+shape: {re.escape(shape)}", block), block
        for output, (out_dtype, out_shape) in outputs.items():
            pattern = rf"outputs\['{output}'\] tensor_info:\s+dtype: {out_dtype}\s+shape: {re.escape(out_shape)}"
            assert re.search(pattern, block), (name, output, block)
        assert len(re.findall(r"outputs\['", block)) == len(outputs), (name, block)
        assert "Method name is: tensorflow/serving/predict" in block


def test_loads_without_keras_and_matches_keras(exported):
    """A fresh interpreter with Keras and spgnet_keras blocked runs every signature; the class
    maps equal the Keras model's argmax on the same (padded) image exactly."""
    process, result_path = exported.no_keras
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stdout[-2000:] + stderr[-4000:]
    assert "LOADED WITHOUT KERAS" in stdout
    out = np.load(result_path)
    for key in ("png", "uint8", "float"):
        assert out[f"{key}_classes"].dtype == np.int32
        np.testing.assert_array_equal(out[f"{key}_classes"], exported.expected, err_msg=key)
        np.testing.assert_array_equal(out[f"{key}_image_sizes"], [list(ODD)])
    np.testing.assert_array_equal(out["jpeg_classes"], exported.expected_jpeg)
    np.testing.assert_allclose(out["png_probabilities"], softmax(exported.logits), atol=1e-5)

    # A batch of two sizes: padded to the largest with -1, sizes reported.
    classes = out["batch_classes"]
    assert classes.shape == (2, *ODD)
    np.testing.assert_array_equal(out["batch_image_sizes"], [list(ODD), list(SMALL)])
    np.testing.assert_array_equal(classes[0], exported.expected[0])
    np.testing.assert_array_equal(classes[1, : SMALL[0], : SMALL[1]], exported.expected_small[0])
    assert np.all(classes[1, SMALL[0] :, :] == PAD_CLASS) and np.all(classes[1, :, SMALL[1] :] == PAD_CLASS)
    probabilities = out["batch_probabilities"]
    np.testing.assert_allclose(probabilities[1, : SMALL[0], : SMALL[1]].sum(-1), 1.0, atol=1e-5)
    assert np.all(probabilities[1, SMALL[0] :] == 0)

    # predict_classes_png: each image's class map at its own size, an 8-bit grayscale PNG.
    np.testing.assert_array_equal(out["classes_png_image_sizes"], [list(ODD), list(SMALL)])
    for index, expected in enumerate((exported.expected[0], exported.expected_small[0])):
        decoded = out[f"classes_png_{index}"]
        assert decoded.shape == (*expected.shape, 1)
        np.testing.assert_array_equal(decoded[..., 0], expected, err_msg=f"classes_png_{index}")


def _signature_tensors(export_dir):
    """{signature: (input tensor name, [output tensor names in OUTPUTS order])} from saved_model.pb."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((Path(export_dir) / "saved_model.pb").read_bytes())
    (meta_graph,) = saved_model.meta_graphs
    assert list(meta_graph.meta_info_def.tags) == ["serve"]
    tensors = {}
    for name, outputs in [(name, OUTPUTS) for name in SIGNATURES] + [(PNG_SIGNATURE[0], PNG_OUTPUTS)]:
        signature = meta_graph.signature_def[name]
        tensors[name] = (
            signature.inputs["images"].name,
            [signature.outputs[output].name for output in outputs],
        )
    return tensors


def _write_strings(path, strings):
    with open(path, "wb") as f:
        f.write(struct.pack("<q", len(strings)))
        for s in strings:
            f.write(struct.pack("<q", len(s)) + s)


def _write_array(path, array):
    with open(path, "wb") as f:
        f.write(struct.pack("<q", array.ndim) + struct.pack(f"<{array.ndim}q", *array.shape))
        f.write(np.ascontiguousarray(array).tobytes())


def _read_output(path):
    data = Path(path).read_bytes()
    dtype, ndims = struct.unpack("<iq", data[:12])
    dims = struct.unpack(f"<{ndims}q", data[12 : 12 + 8 * ndims])
    body = data[12 + 8 * ndims :]
    if dtype == 7:  # TF_STRING: (int64 length, bytes) records
        strings = []
        while body:
            (length,) = struct.unpack("<q", body[:8])
            strings.append(body[8 : 8 + length])
            body = body[8 + length :]
        assert len(strings) == int(np.prod(dims)), (dims, len(strings))
        return strings
    np_dtype = {3: np.int32, 1: np.float32}[dtype]  # TF_INT32 = 3, TF_FLOAT = 1
    return np.frombuffer(body, np_dtype).reshape(dims)


def test_c_api_loader_matches_keras(exported, tmp_path):
    """TF_LoadSessionFromSavedModel (tag "serve", TF Serving's C++ loader) runs every
    signature; the session survives a bad request (InvalidArgument = code 3)."""
    _, compile_errors = exported.c_compile.communicate(timeout=300)
    assert exported.c_compile.returncode == 0, compile_errors[-3000:]
    runner = exported.c_runner

    tensors = _signature_tensors(exported.export_dir)
    _write_strings(tmp_path / "png.req", [exported.png])
    _write_strings(tmp_path / "batch.req", [exported.png, exported.small_png, exported.jpeg])
    _write_strings(tmp_path / "bad.req", [b"GIF89a not supported"])
    _write_strings(tmp_path / "pngs.req", [exported.png, exported.small_png, exported.jpeg])
    _write_array(tmp_path / "uint8.req", exported.image[None])
    _write_array(tmp_path / "float.req", exported.image[None].astype("float32"))
    lines = []
    for label, signature, kind in (
        ("png", "serving_default", "string"),
        ("bad", "serving_default", "string"),
        ("batch", "serving_default", "string"),
        ("uint8", "predict_images", "uint8"),
        ("float", "predict_images_float", "float"),
        ("pngs", PNG_SIGNATURE[0], "string"),
    ):
        input_name, output_names = tensors[signature]
        lines.append(f"{input_name} {kind} {tmp_path / (label + '.req')} {','.join(output_names)} {tmp_path / label}")
    (tmp_path / "spec.txt").write_text("\n".join(lines) + "\n")
    result = subprocess.run(
        [str(runner), str(exported.export_dir), str(tmp_path / "spec.txt")],
        capture_output=True, text=True, timeout=180, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    status = result.stdout.splitlines()
    assert status[0] == "LOADED"
    assert status[1] == "OK" and status[3] == "OK" and status[4] == "OK" and status[5] == "OK", status
    assert status[6] == "OK", status
    assert status[2].startswith("ERROR 3 ") and NOT_AN_IMAGE_MESSAGE in status[2], status[2]

    for label in ("png", "uint8", "float"):
        np.testing.assert_array_equal(_read_output(tmp_path / f"{label}.0"), exported.expected, err_msg=label)
        np.testing.assert_array_equal(_read_output(tmp_path / f"{label}.1"), [list(ODD)])
    np.testing.assert_allclose(_read_output(tmp_path / "png.2"), softmax(exported.logits), atol=1e-5)
    batch = _read_output(tmp_path / "batch.0")
    np.testing.assert_array_equal(batch[0], exported.expected[0])
    np.testing.assert_array_equal(batch[1, : SMALL[0], : SMALL[1]], exported.expected_small[0])
    assert np.all(batch[1, SMALL[0] :] == PAD_CLASS)
    np.testing.assert_array_equal(batch[2], exported.expected_jpeg[0])
    # The PNG answer through the C API: each map at its own size, equal to `classes`.
    pngs = _read_output(tmp_path / "pngs.0")
    np.testing.assert_array_equal(_read_output(tmp_path / "pngs.1"), [list(ODD), list(SMALL), list(ODD)])
    for data, expected in zip(pngs, (exported.expected[0], exported.expected_small[0], exported.expected_jpeg[0])):
        assert data.startswith(b"\x89PNG")
        np.testing.assert_array_equal(tf.io.decode_png(data).numpy()[..., 0], expected)


def test_no_pyfunc_ops_in_any_graph(exported):
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((exported.export_dir / "saved_model.pb").read_bytes())
    ops = set()
    for meta_graph in saved_model.meta_graphs:
        ops.update(node.op for node in meta_graph.graph_def.node)
        for function in meta_graph.graph_def.library.function:
            ops.update(node.op for node in function.node_def)
    assert not ops & {"PyFunc", "PyFuncStateless", "EagerPyFunc"}, sorted(ops)
    # The walk reaches the nested map_fn / cond bodies: decoding and header parsing are there.
    assert {"DecodeImage", "ExtractJpegShape", "DecodeRaw", "Assert", "Conv2D"} <= ops, sorted(ops)


def test_probabilities_and_classes_agree(served, exported):
    out = served.signatures["predict_images"](images=tf.constant(exported.image[None]))
    probabilities = out["probabilities"].numpy()
    assert probabilities.shape == (1, *ODD, NUM_CLASSES)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(out["classes"].numpy(), exported.expected)


def test_gray_and_alpha_are_converted(served, exported):
    """Documented handling: gray -> RGB (replicated), alpha dropped; tensors and PNGs alike."""
    gray = exported.image[..., 0]
    rgba = np.concatenate([exported.image, np.full((*ODD, 1), 77, np.uint8)], axis=-1)
    gray_rgb = np.repeat(gray[..., None], 3, axis=-1)
    expected_gray = keras_classes(exported.model, gray_rgb[None])
    encoded = served.signatures["serving_default"]
    tensor = served.signatures["predict_images"]
    np.testing.assert_array_equal(encoded(images=tf.constant([encode(gray, "PNG")]))["classes"], expected_gray)
    np.testing.assert_array_equal(encoded(images=tf.constant([encode(rgba, "PNG")]))["classes"], exported.expected)
    np.testing.assert_array_equal(tensor(images=tf.constant(gray[None, ..., None]))["classes"], expected_gray)
    np.testing.assert_array_equal(tensor(images=tf.constant(rgba[None]))["classes"], exported.expected)


def _bad_requests(exported):
    png, jpeg = exported.png, exported.jpeg
    float_nan = exported.image[None].astype("float32")
    float_nan[0, 3, 4, 1] = np.nan
    return [
        ("not an image", "serving_default", tf.constant([b"this is not an image"]), NOT_AN_IMAGE_MESSAGE),
        ("empty string", "serving_default", tf.constant([b""]), NOT_AN_IMAGE_MESSAGE),
        ("one bad of two", "serving_default", tf.constant([png, b"GIF89a"]), NOT_AN_IMAGE_MESSAGE),
        ("empty batch", "serving_default", tf.constant([], tf.string), EMPTY_BATCH_MESSAGE),
        ("empty tensor batch", "predict_images", tf.zeros([0, 32, 32, 3], tf.uint8), EMPTY_BATCH_MESSAGE),
        ("zero-width PNG", "serving_default", tf.constant([png_with_header_size(png, 0, 97)]), EMPTY_IMAGE_MESSAGE),
        ("zero-width tensor", "predict_images", tf.zeros([1, 32, 0, 3], tf.uint8), EMPTY_IMAGE_MESSAGE),
        # Headers declaring 50000 x 50000 (2.5 Gpx, ~7.5 GB decoded): rejected from the
        # header (the pixel data behind it is a 97x131 image, so decoding would fail otherwise).
        ("huge PNG", "serving_default", tf.constant([png_with_header_size(png, 50000, 50000)]), TOO_LARGE_MESSAGE),
        ("huge JPEG", "serving_default", tf.constant([jpeg_with_header_size(jpeg, 50000, 50000)]), TOO_LARGE_MESSAGE),
        ("huge tensor", "predict_images", tf.zeros([1, 1, DEFAULT_MAX_PIXELS + 1, 3], tf.uint8), TOO_LARGE_MESSAGE),
        ("5 channels", "predict_images", tf.zeros([1, 32, 32, 5], tf.uint8), CHANNELS_MESSAGE),
        ("NaN", "predict_images_float", tf.constant(float_nan), NOT_FINITE_MESSAGE),
        ("truncated PNG", "serving_default", tf.constant([png[: len(png) // 2]]), None),
        ("corrupt JPEG header", "serving_default", tf.constant([jpeg[:20]]), None),
    ]


def test_bad_inputs_raise_invalid_argument(served, exported):
    """Each bad request fails with InvalidArgument and the documented message (decoder errors
    for corrupt data behind a valid header); the loaded model keeps working after each."""
    good = tf.constant([exported.small_png])
    for label, signature, images, message in _bad_requests(exported):
        with pytest.raises(tf.errors.InvalidArgumentError) as error:
            served.signatures[signature](images=images)
        if message is not None:
            assert message in str(error.value), (label, str(error.value)[:2000])
        out = served.signatures["serving_default"](images=good)
        np.testing.assert_array_equal(out["classes"], exported.expected_small, err_msg=f"after {label}")


def _json_value(name, value):
    """One output of one image as TF Serving's REST API writes it: a string output whose
    name ends in `_bytes` as {"b64": standard base64}, anything else as (nested) lists."""
    import base64

    if name.endswith("_bytes"):
        return {"b64": base64.b64encode(value).decode("ascii")}
    return value.tolist()


def _fake_tf_serving(served):
    """A stand-in for TF Serving's REST predict endpoint (row format), backed by the loaded
    SavedModel: enough to check the example client's request and response handling."""
    import base64
    import http.server
    import json
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            match = re.fullmatch(r"/v1/models/spgnet(/versions/1)?:predict", self.path)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            try:
                assert match, f"unknown path {self.path}"
                images = [base64.b64decode(instance["b64"]) for instance in body["instances"]]
                outputs = served.signatures[body.get("signature_name", "serving_default")](images=tf.constant(images))
                rows = [{k: _json_value(k, v.numpy()[i]) for k, v in outputs.items()} for i in range(len(images))]
                status, payload = 200, {"predictions": rows}
            except (tf.errors.InvalidArgumentError, AssertionError) as error:
                status, payload = 400, {"error": getattr(error, "message", str(error))}
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_example_client_against_rest_stand_in(served, exported, tmp_path, capsys):
    import importlib.util

    from PIL import Image

    spec = importlib.util.spec_from_file_location("serving_client", HERE.parents[1] / "examples" / "serving_client.py")
    client = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(client)
    server = _fake_tf_serving(served)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        request = client.build_request([exported.png])
        assert request["instances"][0].keys() == {"b64"} and request["signature_name"] == "serving_default"
        results = client.predict(url, "spgnet", [exported.png, exported.small_png], version=1)
        np.testing.assert_array_equal(results[0]["classes"], exported.expected[0])
        np.testing.assert_array_equal(results[1]["classes"], exported.expected_small[0])  # padding cropped
        assert tuple(results[1]["image_size"]) == SMALL
        with pytest.raises(client.ServingError, match=re.escape(NOT_AN_IMAGE_MESSAGE)):
            client.predict(url, "spgnet", [b"not an image"])

        (tmp_path / "a.png").write_bytes(exported.png)
        assert client.main([str(tmp_path / "a.png"), "--server", url, "--out", str(tmp_path / "maps")]) == 0
        assert f"{ODD[0]}x{ODD[1]}" in capsys.readouterr().out
        saved = np.array(Image.open(tmp_path / "maps" / "a_classes.png"))
        np.testing.assert_array_equal(saved, exported.expected[0])
    finally:
        server.shutdown()


def test_png_answer_over_rest_decodes_to_the_class_map(served, exported):
    """`predict_classes_png` over the REST stand-in: the JSON answer holds one base64 PNG per
    image (no list of numbers), which decodes, as the serving guide shows, to exactly the
    class map `serving_default` answers for the same images."""
    import base64
    import io
    import json
    import urllib.request

    from PIL import Image

    server = _fake_tf_serving(served)
    url = f"http://127.0.0.1:{server.server_address[1]}/v1/models/spgnet:predict"
    images = [exported.png, exported.small_png]
    body = {"signature_name": "predict_classes_png",
            "instances": [{"b64": base64.b64encode(data).decode("ascii")} for data in images]}
    try:
        request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as response:
            predictions = json.load(response)["predictions"]
    finally:
        server.shutdown()
    assert [sorted(p) for p in predictions] == [["classes_png_bytes", "image_sizes"]] * 2
    for prediction, expected in zip(predictions, (exported.expected[0], exported.expected_small[0])):
        class_map = np.array(Image.open(io.BytesIO(base64.b64decode(prediction["classes_png_bytes"]["b64"]))))
        assert class_map.dtype == np.uint8 and list(class_map.shape) == prediction["image_sizes"]
        np.testing.assert_array_equal(class_map, expected)


def test_class_maps_of_more_than_256_classes_are_16_bit_pngs():
    from spgnet_keras.export.serving import class_map_png_dtype, encode_class_maps

    classes = np.array([[[0, 255, 256], [299, 1, 3]], [[7, -1, -1], [-1, -1, -1]]], np.int32)
    sizes = tf.constant([[2, 3], [1, 1]])
    assert class_map_png_dtype(256) == tf.uint8 and class_map_png_dtype(300) == tf.uint16
    pngs = encode_class_maps(tf.constant(classes), sizes, class_map_png_dtype(300)).numpy()
    first = tf.io.decode_png(pngs[0], dtype=tf.uint16).numpy()[..., 0]
    np.testing.assert_array_equal(first, classes[0])
    np.testing.assert_array_equal(tf.io.decode_png(pngs[1], dtype=tf.uint16).numpy(), [[[7]]])


def test_camvid_png_classes_agree_across_keras_and_serving(camvid_root, tmp_path):
    """One input convention end to end: on a real CamVid val PNG (240x180, not a multiple of
    32), `model.predict` on the uint8 image, `model.predict` on the same image as float32
    0-255, and the exported SavedModel's `serving_default` on the PNG bytes give the same
    class map (the model normalises and pads its own input; the served graph decodes the
    bytes and feeds the 0-255 pixels)."""
    from PIL import Image

    png_path = sorted((Path(camvid_root) / "val" / "images").glob("*.png"))[0]
    image = np.array(Image.open(png_path).convert("RGB"))
    assert image.dtype == np.uint8 and image.shape == (180, 240, 3)
    keras.utils.set_random_seed(21)
    model = SPGNet(11, backbones=("resnet18",), decoder_channels=8)
    # Moving statistics away from their initial 0 / 1 so the class map is not trivial.
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            size = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0, 0.5, size).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, size).astype("float32"))

    from_uint8 = model.predict(image[None], verbose=0)["prediction"].argmax(-1)
    from_float = model.predict(image[None].astype("float32"), verbose=0)["prediction"].argmax(-1)
    export_dir = export_saved_model(model, tmp_path / "spgnet" / "1")
    served = tf.saved_model.load(str(export_dir))
    out = served.signatures["serving_default"](images=tf.constant([Path(png_path).read_bytes()]))
    from_png = out["classes"].numpy()

    assert from_uint8.shape == from_float.shape == from_png.shape == (1, 180, 240)
    assert len(np.unique(from_uint8)) >= 3, np.bincount(from_uint8.ravel())  # a non-trivial map
    np.testing.assert_array_equal(out["image_sizes"].numpy(), [[180, 240]])
    for label, classes in (("float32 0-255", from_float), ("SavedModel serving_default on the PNG", from_png)):
        agreement = float(np.mean(classes == from_uint8))
        print(f"{png_path.name}: {label} vs model.predict(uint8): {100 * agreement:.4f}% of pixels agree")
        assert agreement >= 0.9999, (label, agreement)
