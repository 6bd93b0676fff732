"""ONNX export and the torch-free ONNX Runtime backend: torch's logits, the description inside, crafted files refused.

A real bundle (timm's tiny test model trained 2 epochs on colour classes, 32 px) is converted once;
real photos (scikit-learn's sample photos, elpv solar cells) are the inputs. Crafted files are made
from the real `.onnx` with the `onnx` package, each refused with one line that names the file.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from PIL import Image, ImageOps

from imagefiles import SIZE, TINY_ARCH, write_class_folders
from pixclass.errors import PixclassError
from pixclass.export.bundle import load_bundle, read_meta
from pixclass.export.onnx import export_onnx, onnx_bytes, save_onnx
from pixclass.export.onnx_runtime import OnnxRuntime
from pixclass.models.backbones import build_model
from pixclass.train.runfolder import RunLock

TINY_TRAIN = ["--arch", TINY_ARCH, "--no-pretrained", "--size", str(SIZE), "--bs", "8", "--workers", "0",
              "--epochs", "1", "--unfreeze-epochs", "0"]


# -- fixtures ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def onnx_file(bundle: Path) -> Path:
    return export_onnx(bundle)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list[Path]:
    """Six real photos as JPEG files: four crops of scikit-learn's china/flower pictures, two elpv cells."""
    from elpv_dataset.utils import load_dataset
    from sklearn.datasets import load_sample_images

    root = tmp_path_factory.mktemp("photos")
    paths = []
    for name, img in zip(("china", "flower"), load_sample_images().images):
        for k, (top, left) in enumerate(((0, 0), (150, 300))):
            paths.append(root / f"{name}_{k}.jpg")
            Image.fromarray(img[top:top + 260, left:left + 300]).save(paths[-1], quality=92)
    cells = load_dataset()[0]
    for i in (0, 1000):
        paths.append(root / f"cell_{i}.png")
        Image.fromarray(cells[i]).convert("RGB").save(paths[-1])
    return paths


def photo_batch(paths: list[Path], meta: dict) -> np.ndarray:
    """The photos as a normalized float32 (N, 3, S, S) batch (shorter side resized, center crop)."""
    size = meta["input_size"]
    rows = []
    for p in paths:
        with Image.open(p) as img:
            arr = np.asarray(ImageOps.fit(img.convert("RGB"), (size, size)), dtype=np.float32) / 255
        rows.append(((arr - meta["mean"]) / meta["std"]).transpose(2, 0, 1))
    return np.stack(rows).astype(np.float32)


@torch.inference_mode()
def torch_logits(model: torch.nn.Module, batch: np.ndarray) -> np.ndarray:
    return model.eval()(torch.from_numpy(batch)).numpy()


def one_line_error(call: Callable[[], object], *fragments: str) -> str:
    with pytest.raises(PixclassError) as err:
        call()
    message = str(err.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    return message


def edited(onnx_file: Path, dest: Path, edit: Callable[[onnx.ModelProto], None]) -> Path:
    """A copy of `onnx_file` at `dest` whose ModelProto `edit` has changed."""
    proto = onnx.load_model_from_string(onnx_file.read_bytes())
    edit(proto)
    dest.write_bytes(proto.SerializeToString())
    return dest


def description(proto: onnx.ModelProto) -> dict:
    return json.loads(next(p.value for p in proto.metadata_props if p.key == "pixclass"))


def set_description(proto: onnx.ModelProto, meta: dict) -> None:
    next(p for p in proto.metadata_props if p.key == "pixclass").value = json.dumps(meta)


# -- same outputs as torch -----------------------------------------------------------------------

def test_the_onnx_files_logits_on_real_photos_agree_with_the_torch_model_within_1e_4(bundle, onnx_file, photos):
    model, meta = load_bundle(bundle)
    batch = photo_batch(photos, meta)

    runtime, _ = OnnxRuntime.from_file(onnx_file)

    assert np.abs(runtime.run(batch) - torch_logits(model, batch)).max() < 1e-4


def test_efficientnet_lite0_at_224_px_agrees_with_torch_within_1e_4_on_real_photos(photos, tmp_path):
    torch.manual_seed(0)
    model, info = build_model("efficientnet_lite0", 4, pretrained=True)  # ImageNet body from the PyPI package
    meta = {"arch": "efficientnet_lite0", "head": model.head.cfg.to_dict(), "task": "single",
            "classes": ["a", "b", "c", "d"], "threshold": 0.5, "input_size": 224,
            "resize": "shorter-side-then-center-crop", "mean": list(info.mean), "std": list(info.std)}
    batch = photo_batch(photos, meta)

    runtime, _ = OnnxRuntime.from_file(save_onnx(tmp_path / "lite0.onnx", model, meta))

    expected = torch_logits(model, batch)
    assert np.abs(runtime.run(batch) - expected).max() < 1e-4
    assert np.abs(expected).max() > 0.1  # real logits, not a degenerate model


def test_the_torch_export_based_exporter_gives_the_same_contract_and_logits(bundle, photos):
    model, meta = load_bundle(bundle)
    batch = photo_batch(photos, meta)

    runtime = OnnxRuntime.from_bytes(onnx_bytes(model, meta, exporter="dynamo"), meta)

    assert np.abs(runtime.run(batch) - torch_logits(model, batch)).max() < 1e-4


def test_the_batch_is_dynamic_a_batch_of_five_gives_the_rows_of_five_batches_of_one(bundle, onnx_file, photos):
    runtime, meta = OnnxRuntime.from_file(onnx_file)
    batch = photo_batch(photos[:5], meta)

    together = runtime.run(batch)
    alone = np.concatenate([runtime.run(batch[i:i + 1]) for i in range(5)])

    assert together.shape == (5, 3) and together.dtype == np.float32
    assert np.abs(together - alone).max() < 1e-5


def test_threads_sharing_one_runtime_get_the_same_outputs_as_one_thread(onnx_file, photos):
    runtime, meta = OnnxRuntime.from_file(onnx_file)
    batches = [photo_batch(photos[i:i + 2], meta) for i in range(4)]
    expected = [runtime.run(b) for b in batches]
    results: dict[int, list[np.ndarray]] = {}

    def work(k: int) -> None:
        results[k] = [runtime.run(b) for b in batches for _ in range(5)][::5]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert sorted(results) == [0, 1, 2, 3]
    for outs in results.values():
        assert all(np.array_equal(o, e) for o, e in zip(outs, expected))


def test_an_empty_batch_gives_no_rows(onnx_file):
    runtime, _ = OnnxRuntime.from_file(onnx_file)

    assert runtime.run(np.zeros((0, 3, SIZE, SIZE), np.float32)).shape == (0, 3)


# -- the file ------------------------------------------------------------------------------------

def test_the_description_round_trips_through_the_onnx_metadata(bundle, onnx_file):
    _, meta = OnnxRuntime.from_file(onnx_file)

    assert meta == read_meta(bundle)
    assert meta["format"] == "pixclass-bundle" and meta["classes"] == ["blue", "green", "red"]


def test_the_graph_takes_image_n_3_s_s_float32_and_gives_logits_n_classes(onnx_file):
    graph = onnx.load_model_from_string(onnx_file.read_bytes()).graph

    def dims(value):
        return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in value.type.tensor_type.shape.dim]

    assert [(v.name, v.type.tensor_type.elem_type, dims(v)) for v in graph.input] == \
        [("image", onnx.TensorProto.FLOAT, ["batch", 3, SIZE, SIZE])]
    assert [(v.name, v.type.tensor_type.elem_type, dims(v)) for v in graph.output] == \
        [("logits", onnx.TensorProto.FLOAT, ["batch", 3])]


def test_exporting_leaves_the_model_in_its_own_modes_and_dtype(bundle):
    model, meta = load_bundle(bundle)
    model.train()
    model.body.eval()  # a frozen body in eval mode while the head trains
    modes = [m.training for m in model.modules()]

    onnx_bytes(model, meta)

    assert [m.training for m in model.modules()] == modes
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_a_description_that_load_would_refuse_is_never_written(bundle, tmp_path):
    model, meta = load_bundle(bundle)

    one_line_error(lambda: save_onnx(tmp_path / "bad.onnx", model, {**meta, "task": "dance"}),
                   "field 'task' is \"dance\"", "not exported")
    assert not (tmp_path / "bad.onnx").exists()


def test_a_run_folder_without_a_bundle_says_to_export_it_first(tmp_path):
    one_line_error(lambda: export_onnx(tmp_path), "has no model.pixclass to convert", "pixclass export")


def test_loading_and_running_an_onnx_file_never_imports_torch(onnx_file):
    code = f"""
import sys
import numpy as np
from pixclass.export.onnx_runtime import OnnxRuntime
runtime, meta = OnnxRuntime.from_file({str(onnx_file)!r})
out = runtime.run(np.zeros((2, 3, meta["input_size"], meta["input_size"]), np.float32))
assert out.shape == (2, 3), out.shape
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "timm", "torchvision"))
assert not heavy, heavy
print("ok")
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)

    assert res.returncode == 0 and res.stdout == "ok\n", res.stderr


# -- crafted files -------------------------------------------------------------------------------

class _MakesAFolder:
    """Unpickling this creates `marker`: a pickle that would run code if anything unpickled it."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


def _pickle(path: Path, marker: Path) -> None:
    path.write_bytes(pickle.dumps(_MakesAFolder(marker), protocol=4))


def _zip(path: Path, marker: Path) -> None:  # laid out like torch.save's zip
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps(_MakesAFolder(marker), protocol=2))
        z.writestr("archive/version", "3\n")


CRAFTED_BYTES = {
    "random bytes": (lambda p, m, good: p.write_bytes(np.random.default_rng(0).bytes(4096)), "is not an ONNX model"),
    "a pickle": (lambda p, m, good: _pickle(p, m), "is not an ONNX model (a Python pickle)"),
    "a zip": (lambda p, m, good: _zip(p, m), "is not an ONNX model (a zip archive"),
    "an empty file": (lambda p, m, good: p.write_bytes(b""), "is not an ONNX model (the file is empty)"),
    "a truncated onnx file": (lambda p, m, good: p.write_bytes(good.read_bytes()[:50_000]), "is not an ONNX model"),
    "a renamed bundle": (lambda p, m, good: p.write_bytes(good.with_suffix(".pixclass").read_bytes()),
                         "is a safetensors file, not an ONNX model"),
    "an html page": (lambda p, m, good: p.write_text("<!DOCTYPE html><html><body>404</body></html>\n"),
                     "is not an ONNX model"),
}


@pytest.mark.parametrize("kind", list(CRAFTED_BYTES))
def test_a_file_that_is_not_onnx_is_refused_with_one_line_and_runs_no_code(kind, onnx_file, tmp_path):
    make, expected = CRAFTED_BYTES[kind]
    path, marker = tmp_path / "model.onnx", tmp_path / "code-ran"
    make(path, marker, onnx_file)

    one_line_error(lambda: OnnxRuntime.from_file(path), f"'{path}'", expected)
    assert not marker.exists()


def _drop_description(proto):
    del proto.metadata_props[:]


def _bad_field(proto):
    set_description(proto, {**description(proto), "input_size": 30000})


def _not_json(proto):
    next(p for p in proto.metadata_props if p.key == "pixclass").value = "{not json"


def _other_size(proto):  # a valid description, but the graph takes 32-px images
    set_description(proto, {**description(proto), "input_size": 64})


def _other_classes(proto):  # a valid description of 2 classes; the graph gives 3 outputs
    meta = description(proto)
    set_description(proto, {**meta, "classes": meta["classes"][:2], "head": {**meta["head"], "n_out": 2}})


def _custom_op(proto):
    proto.graph.node[0].domain = "com.example.evil"
    proto.opset_import.add(domain="com.example.evil", version=1)


def _external_data(proto):
    weight = proto.graph.initializer[0]
    weight.ClearField("raw_data")
    weight.data_location = onnx.TensorProto.EXTERNAL
    weight.external_data.add(key="location", value="/etc/passwd")


def _renamed_input(proto):
    proto.graph.input[0].name = "pixels"


def _fixed_batch(proto):
    dim = proto.graph.input[0].type.tensor_type.shape.dim[0]
    dim.dim_value = 1


def _double_input(proto):
    proto.graph.input[0].type.tensor_type.elem_type = onnx.TensorProto.DOUBLE


def _second_description(proto):
    proto.metadata_props.add(key="pixclass", value=json.dumps(description(proto)))


CRAFTED_ONNX = {
    "no pixclass description": (_drop_description, "is an ONNX model but not a pixclass model", "--onnx"),
    "an edited description": (_bad_field, "field 'input_size' is 30000, expected an integer from 16 to 1024"),
    "a description that is not json": (_not_json, "its description is not valid JSON"),
    "two descriptions": (_second_description, "holds 2 'pixclass' descriptions"),
    "an input size other than the description's": (_other_size, "does not match its own description",
                                                   f"input 'image' float32 (N, 3, {SIZE}, {SIZE})",
                                                   "expected one input 'image' float32 (N, 3, 64, 64)"),
    "fewer outputs than the graph's": (_other_classes, "does not match its own description", "(N, 2)"),
    "a custom-op domain": (_custom_op, "uses operators of the custom domain 'com.example.evil'"),
    "external data": (_external_data, "refers to weights in other files (ONNX external data)"),
    "a renamed input": (_renamed_input, "input 'pixels'"),
    "a fixed batch size": (_fixed_batch, "input 'image' float32 (1, 3,"),
    "a float64 input": (_double_input, "input 'image' float64"),
}


@pytest.mark.parametrize("kind", list(CRAFTED_ONNX))
def test_a_crafted_onnx_file_is_refused_with_one_line_naming_it(kind, onnx_file, tmp_path):
    edit, *expected = CRAFTED_ONNX[kind]
    path = edited(onnx_file, tmp_path / "crafted.onnx", edit)

    one_line_error(lambda: OnnxRuntime.from_file(path), f"'{path}'", *expected)


def test_a_missing_file_and_a_folder_are_clear_errors(tmp_path):
    one_line_error(lambda: OnnxRuntime.from_file(tmp_path / "none.onnx"), "model file", "does not exist")
    one_line_error(lambda: OnnxRuntime.from_file(tmp_path), "is not a file")


def test_unknown_devices_and_bad_thread_counts_are_clear_errors(onnx_file):
    one_line_error(lambda: OnnxRuntime.from_file(onnx_file, device="mps"), "ONNX Runtime runs on 'cpu' or 'cuda'")
    one_line_error(lambda: OnnxRuntime.from_file(onnx_file, threads=0), "threads must be a whole number")


def test_in_memory_bytes_of_a_bundle_load_like_the_file(bundle, onnx_file, photos):
    model, meta = load_bundle(bundle)
    batch = photo_batch(photos, meta)

    runtime = OnnxRuntime.from_bytes(onnx_bytes(model, meta), meta, threads=1)

    assert runtime.threads == 1
    assert np.array_equal(runtime.run(batch), OnnxRuntime.from_file(onnx_file, threads=1)[0].run(batch))


# -- the command ---------------------------------------------------------------------------------

def pixclass_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pixclass", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    run = root / "run"
    res = pixclass_cli("train", str(write_class_folders(root / "colours")), *TINY_TRAIN, "--out", str(run))
    assert res.returncode == 0, res.stderr
    return run


@pytest.mark.slow  # two tiny trainings and an export in subprocesses: 20-70 s
def test_training_afresh_with_overwrite_removes_the_old_runs_onnx_file(tmp_path):
    run = tmp_path / "run"
    res = pixclass_cli("train", str(write_class_folders(tmp_path / "colours")), *TINY_TRAIN, "--out", str(run))
    assert res.returncode == 0, res.stderr
    assert pixclass_cli("export", str(run), "--onnx").returncode == 0

    res = pixclass_cli("train", str(tmp_path / "colours"), *TINY_TRAIN, "--out", str(run), "--overwrite")

    assert res.returncode == 0, res.stderr
    assert (run / "model.pixclass").is_file() and not (run / "model.onnx").exists()  # never a stale model beside it


def test_export_with_onnx_writes_model_onnx_beside_the_runs_bundle(run_folder):
    res = pixclass_cli("export", str(run_folder), "--onnx")

    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].startswith(f"model: {run_folder / 'model.pixclass'} (") and lines[0].endswith(", as it was)")
    assert lines[1].startswith(f"onnx: {run_folder / 'model.onnx'} (") and lines[1].endswith(" MB)")
    _, meta = OnnxRuntime.from_file(run_folder / "model.onnx")
    assert meta == read_meta(run_folder / "model.pixclass")


def test_export_with_onnx_of_a_bundle_file_writes_the_onnx_file_beside_it(run_folder, tmp_path):
    bundle = tmp_path / "colours.pixclass"
    bundle.write_bytes((run_folder / "model.pixclass").read_bytes())

    res = pixclass_cli("export", str(bundle), "--onnx")

    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(f"onnx: {tmp_path / 'colours.onnx'} (")
    assert OnnxRuntime.from_file(tmp_path / "colours.onnx")[1]["classes"] == ["blue", "green", "red"]


def test_export_with_onnx_of_a_run_in_use_is_refused_and_writes_nothing(run_folder):
    (run_folder / "model.onnx").unlink(missing_ok=True)

    with RunLock(run_folder):
        res = pixclass_cli("export", str(run_folder), "--onnx")

    assert res.returncode == 1 and "is in use by another pixclass process" in res.stderr
    assert res.stderr.count("\n") == 1 and not (run_folder / "model.onnx").exists()


def test_export_refuses_an_out_ending_in_onnx_which_names_the_bundle(run_folder, tmp_path):
    res = pixclass_cli("export", str(run_folder), "--onnx", "--out", str(tmp_path / "model.onnx"))

    assert res.returncode == 1 and "--out names the .pixclass bundle" in res.stderr
    assert not (tmp_path / "model.onnx").exists()
