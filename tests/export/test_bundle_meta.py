"""A crafted `.pixclass` file is refused with one line: the description schema, the tensor checks, non-bundles.

Every rule of `pixclass.export.bundle_meta` and of the tensor checks in `bundle.py`, on real files
derived from one real exported bundle. Descriptions that could make the old loader allocate
gigabytes are loaded under an address-space cap, so a regression fails instead of eating memory.
"""

from __future__ import annotations

import io
import json
import pickle
import random
import re
import resource
import struct
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from imagefiles import TINY_ARCH
from pixclass import load_model
from pixclass.errors import PixclassError
from pixclass.export.bundle import read_meta, save_bundle
from pixclass.export.bundle_meta import HEAD, MAX_CLASSES, MAX_INPUT_SIZE, MAX_WIDTH, validate_meta
from pixclass.models.backbones import build_model
from pixclass.models.head import HeadConfig
from test_bundle import with_edited_meta

GB = 1024**3


# -- helpers shared with test_bundle_fuzz.py ------------------------------------------------------

def virtual_size() -> int:
    """This process's address-space size in bytes (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


@contextmanager
def memory_cap(extra: int) -> Iterator[None]:
    """Inside, this process cannot map more than `extra` bytes beyond what it maps now."""
    if not Path("/proc/self/status").exists():
        pytest.skip("the memory cap needs Linux's /proc")
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = virtual_size() + extra
    resource.setrlimit(resource.RLIMIT_AS, (cap if hard == resource.RLIM_INFINITY else min(cap, hard), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def description(path: Path) -> dict[str, Any]:
    """The JSON description of bundle `path`, read without our loader."""
    with safe_open(str(path), framework="pt") as f:
        return json.loads(f.metadata()["pixclass"])


def tensors(path: Path) -> dict[str, torch.Tensor]:
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


def with_description_text(path: Path, dest: Path, text: str) -> Path:
    """A copy of bundle `path` at `dest` whose `pixclass` metadata is `text` verbatim."""
    save_file(tensors(path), str(dest), metadata={"pixclass": text})
    return dest


def with_edited_tensors(path: Path, dest: Path, edit: Callable[[dict[str, torch.Tensor]], None]) -> Path:
    """A copy of bundle `path` at `dest` whose tensors `edit(state)` has changed (description kept)."""
    state = tensors(path)
    edit(state)
    save_file(state, str(dest), metadata={"pixclass": json.dumps(description(path))})
    return dest


def split_safetensors(raw: bytes) -> tuple[dict[str, Any], bytes]:
    """A safetensors file's header (JSON, with `__metadata__`) and its data bytes."""
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def join_safetensors(header: dict[str, Any], data: bytes, declared: int | None = None) -> bytes:
    """The bytes of a safetensors file; `declared` overrides the header length written in front."""
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text) if declared is None else declared) + text + data


def set_field(meta: dict[str, Any], field: str, value: Any) -> None:
    """`meta[field] = value`, where `field` is "name" or "head.name"."""
    *parents, key = field.split(".")
    for p in parents:
        meta = meta[p]
    meta[key] = value


def drop_field(meta: dict[str, Any], field: str) -> None:
    """`del meta[field]`, where `field` is "name" or "head.name"."""
    *parents, key = field.split(".")
    for p in parents:
        meta = meta[p]
    del meta[key]


def edited(bundle: Path, dest: Path, field: str, value: Any) -> Path:
    return with_edited_meta(bundle, dest, lambda meta: set_field(meta, field, value))


class Touch:
    """Unpickling this creates the file `path`: proof that a loader ran code from a file."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return Path.touch, (Path(self.path),)


def refusal(path: Path) -> str:
    """The message of the PixclassError that loading `path` raises (asserted to be one line)."""
    with pytest.raises(PixclassError) as err:
        load_model(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message
    return message


# -- the schema ----------------------------------------------------------------------------------

def test_the_head_schema_has_exactly_the_fields_of_head_config():
    assert set(HEAD) == {f.name for f in fields(HeadConfig)}


def test_an_exported_description_passes_the_schema_unchanged(bundle):
    meta = description(bundle)

    assert validate_meta(json.loads(json.dumps(meta)), bundle) == meta
    assert read_meta(bundle) == meta


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("format_version", "1", "field 'format_version' is \"1\", expected an integer from 1 to 2"),
    ("format_version", 0, "field 'format_version' is 0, expected an integer from 1 to 2"),
    ("format_version", True, "field 'format_version' is true, expected an integer from 1 to 2"),
    ("arch", "", "field 'arch' is \"\", expected an architecture timm"),
    ("arch", "resnet_99", "field 'arch' is \"resnet_99\", expected an architecture timm"),
    ("arch", "hf-hub:someone/model", "field 'arch' is \"hf-hub:someone/model\", expected an architecture timm"),
    ("task", "segmentation", "field 'task' is \"segmentation\", expected one of \"single\", \"multi\", \"regression\""),
    ("classes", "blue", "field 'classes' is \"blue\", expected a list of at most 200000 distinct non-empty"),
    ("classes", ["blue", "blue", "red"], "(a class is repeated)"),
    ("classes", ["blue", "", "red"], "field 'classes' is [\"blue\", \"\", \"red\"], expected a list"),
    ("classes", ["blue", "gr\neen", "red"], "field 'classes' is [\"blue\", \"gr\\neen\", \"red\"], expected a list"),
    ("classes", ["blue", 2, "red"], "expected a list of at most"),
    ("threshold", 0, "field 'threshold' is 0, expected a number in (0, 1)"),
    ("threshold", 1.0, "field 'threshold' is 1.0, expected a number in (0, 1)"),
    ("threshold", float("nan"), "field 'threshold' is NaN, expected a number in (0, 1)"),
    ("threshold", "0.5", "field 'threshold' is \"0.5\", expected a number in (0, 1)"),
    ("input_size", 15, f"field 'input_size' is 15, expected an integer from 16 to {MAX_INPUT_SIZE}"),
    ("input_size", 1025, f"field 'input_size' is 1025, expected an integer from 16 to {MAX_INPUT_SIZE}"),
    ("input_size", 224.0, "field 'input_size' is 224.0, expected an integer"),
    ("resize", "stretch", "field 'resize' is \"stretch\", expected one of \"crop\", \"pad\", \"squish\", "
                          "\"shorter-side-then-center-crop\""),
    ("mean", "0.5", "field 'mean' is \"0.5\", expected a list of 3 numbers in [0.0, 1.0]"),
    ("mean", [0.5, 0.5], "field 'mean' is [0.5, 0.5], expected a list of 3 numbers"),
    ("mean", [0.5, 0.5, float("inf")], "field 'mean' is [0.5, 0.5, Infinity], expected a list of 3 numbers"),
    ("std", [0.2, 0.0, 0.2], "field 'std' is [0.2, 0.0, 0.2], expected a list of 3 numbers in [0.001, 1.0]"),
    ("std", [0.2, -0.2, 0.2], "field 'std' is [0.2, -0.2, 0.2], expected a list of 3 numbers"),
    ("pixclass_version", 1, "field 'pixclass_version' is 1, expected a one-line string"),
    ("training", [], "field 'training' is [], expected a JSON object"),
    ("head", [], "field 'head' is [], expected a JSON object"),
    ("head.n_in", 0, f"field 'head.n_in' is 0, expected an integer from 1 to {MAX_WIDTH}"),
    ("head.n_out", -3, f"field 'head.n_out' is -3, expected an integer from 1 to {MAX_CLASSES}"),
    ("head.n_out", 3.0, "field 'head.n_out' is 3.0, expected an integer"),
    ("head.hidden", -1, f"field 'head.hidden' is -1, expected an integer from 0 to {MAX_WIDTH}"),
    ("head.hidden", 10**6, f"field 'head.hidden' is 1000000, expected an integer from 0 to {MAX_WIDTH}"),
    ("head.ps", 1.5, "field 'head.ps' is 1.5, expected a number in [0, 1]"),
    ("head.concat_pool", 1, "field 'head.concat_pool' is 1, expected true or false"),
    ("head.pool", "yes", "field 'head.pool' is \"yes\", expected true or false"),
    ("head.y_range", [1.0, 0.0], "field 'head.y_range' is [1.0, 0.0], expected null or [lo, hi] with finite lo < hi"),
    ("head.y_range", [0.0], "field 'head.y_range' is [0.0], expected null or [lo, hi]"),
])
def test_a_bad_field_is_refused_naming_the_field_and_what_was_expected(bundle, field, value, expected):
    meta = description(bundle)
    set_field(meta, field, value)

    with pytest.raises(PixclassError) as err:
        validate_meta(meta, bundle)

    message = str(err.value)
    assert message.startswith(f"'{bundle}' is not a usable pixclass model: ")
    assert expected in message and "\n" not in message
    assert message.endswith("; the file was edited or damaged: export it again")


@pytest.mark.parametrize(("field", "value"), [
    ("threshold", 0.01), ("threshold", 0.99), ("input_size", 16), ("input_size", MAX_INPUT_SIZE),
    ("mean", [0, 0, 0]), ("std", [1, 1, 1]), ("head.ps", 0), ("head.hidden", 0), ("head.y_range", [-1, 1]),
    ("pixclass_version", ""), ("weights_source", "a file of mine"), ("training", {}),
    ("classes", ["cyan", "magenta", "yellow"]), ("classes", ["1", "2", "10"]), ("arch", "resnet18.a1_in1k"),
])
def test_values_at_the_edges_of_the_schema_are_accepted(bundle, field, value):
    meta = description(bundle)
    set_field(meta, field, value)

    assert validate_meta(meta, bundle) is meta


@pytest.mark.parametrize("field", ["arch", "head", "task", "classes", "threshold", "input_size", "resize",
                                   "mean", "std", "head.n_in", "head.hidden", "head.y_range"])
def test_a_missing_field_is_named(bundle, field):
    meta = description(bundle)
    drop_field(meta, field)

    with pytest.raises(PixclassError, match=f"field '{field}' is missing from its description; the file was"):
        validate_meta(meta, bundle)


def test_the_informational_fields_may_be_missing(bundle):
    meta = description(bundle)
    for key in ("pixclass_version", "weights_source", "training"):
        del meta[key]

    assert validate_meta(meta, bundle) is meta


def test_an_unknown_field_is_refused(bundle):
    meta = description(bundle)
    meta["exec"] = "import os"

    with pytest.raises(PixclassError, match="unknown field \"exec\" in its description"):
        validate_meta(meta, bundle)


def test_the_number_of_classes_must_be_the_number_of_outputs(bundle):
    meta = description(bundle)
    meta["classes"] = ["blue", "green"]

    with pytest.raises(PixclassError, match=r"field 'head.n_out' is 3, expected 2 \(one output per class\)"):
        validate_meta(meta, bundle)


def test_a_classifier_needs_classes(bundle):
    meta = description(bundle)
    meta["classes"], meta["head"]["n_out"] = [], 1

    with pytest.raises(PixclassError, match="field 'classes' is \\[\\], expected the names of a single-label"):
        validate_meta(meta, bundle)


def test_a_regression_description_has_no_classes_and_one_output(bundle):
    meta = description(bundle)
    meta["task"] = "regression"

    with pytest.raises(PixclassError, match="a regression model has 'classes' \\[\\] and 'head.n_out' 1, "
                                            "not 3 classes and 3 outputs"):
        validate_meta(meta, bundle)
    meta["classes"], meta["head"]["n_out"] = [], 1
    assert validate_meta(meta, bundle) is meta


def test_a_description_that_is_not_an_object_says_what_it_is(bundle):
    with pytest.raises(PixclassError, match="its description is a JSON string, expected an object"):
        validate_meta("pixclass", bundle)


def test_a_description_pixclass_would_refuse_is_never_written(bundle, tmp_path):
    model, _ = build_model(TINY_ARCH, 3, pretrained=False)
    meta = {**description(bundle), "input_size": 2048}
    path = tmp_path / "big.pixclass"

    with pytest.raises(PixclassError, match="field 'input_size' is 2048, expected an integer from 16 to 1024; "
                                            "not written, as pixclass could not load it"):
        save_bundle(path, model, meta)
    assert not path.exists()


# -- the bugs of the adversarial review, through load_model on real files --------------------------

@pytest.mark.parametrize("n_out", [2_000_000, 10**9])
def test_a_head_of_millions_of_outputs_is_refused_without_allocating_it(bundle, tmp_path, n_out):
    # The old loader built this head first: 4 GB for 2e6 outputs, 2 TB for 1e9.
    path = edited(bundle, tmp_path / "wide.pixclass", "head.n_out", n_out)

    with memory_cap(1 * GB):
        message = refusal(path)

    assert f"field 'head.n_out' is {n_out}, expected an integer from 1 to {MAX_CLASSES}" in message


def test_a_head_within_bounds_but_far_larger_than_its_tensors_is_refused_without_allocating_it(bundle, tmp_path):
    # 200,000 classes behind a 65,536-wide hidden layer: a 52 GB head, every field within its bounds.
    def huge(meta):
        meta["classes"] = [f"c{i}" for i in range(MAX_CLASSES)]
        meta["head"].update(n_out=MAX_CLASSES, hidden=MAX_WIDTH)

    path = with_edited_meta(bundle, tmp_path / "huge.pixclass", huge)

    with memory_cap(1 * GB):
        message = refusal(path)

    assert "does not match its own description (0 missing, 0 unexpected, 7 of another shape)" in message


def test_a_huge_input_size_is_refused_before_any_image_is_resized(bundle, tmp_path, image):
    # The old loader accepted it; predict then allocated 2.7 GB for one image.
    path = edited(bundle, tmp_path / "huge-input.pixclass", "input_size", 30000)

    with memory_cap(1 * GB):
        message = refusal(path)

    assert f"field 'input_size' is 30000, expected an integer from 16 to {MAX_INPUT_SIZE}" in message


@pytest.mark.parametrize(("text", "expected"), [
    ("not json{", "its description is not valid JSON (Expecting value: line 1 column 1 (char 0))"),
    ("", "its description is not valid JSON (Expecting value"),
    ("[" * 100_000, "its description is not valid JSON (nested too deeply)"),
    ("1" * 5_000, "its description is not valid JSON (Exceeds the limit"),
    ('["pixclass-bundle", 1]', "its description is a JSON list, expected an object"),
    ("null", "its description is a JSON null, expected an object"),
])
def test_a_description_that_is_not_a_json_object_is_a_one_line_error(bundle, tmp_path, text, expected):
    path = with_description_text(bundle, tmp_path / "text.pixclass", text)

    assert expected in refusal(path)


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("format_version", "1", "field 'format_version' is \"1\", expected an integer from 1 to 2"),
    ("mean", "0.5", "field 'mean' is \"0.5\", expected a list of 3 numbers"),
    ("task", "detection", "field 'task' is \"detection\", expected one of"),
])
def test_a_field_of_the_wrong_type_is_a_one_line_error(bundle, tmp_path, field, value, expected):
    path = edited(bundle, tmp_path / "typed.pixclass", field, value)

    assert expected in refusal(path)


@pytest.mark.parametrize("field", ["classes", "arch"])
def test_a_bundle_without_a_required_field_is_a_one_line_error(bundle, tmp_path, field):
    path = with_edited_meta(bundle, tmp_path / "missing.pixclass", lambda meta: meta.pop(field))

    assert f"field '{field}' is missing from its description" in refusal(path)


def test_an_extra_head_field_is_a_one_line_error(bundle, tmp_path):
    path = edited(bundle, tmp_path / "extra.pixclass", "head.activation", "gelu")

    assert "unknown field \"head.activation\" in its description" in refusal(path)


def test_another_format_says_the_file_is_not_a_pixclass_bundle(bundle, tmp_path):
    path = edited(bundle, tmp_path / "other.pixclass", "format", "other-bundle")

    message = refusal(path)

    assert "is not a pixclass bundle: its format is \"other-bundle\", expected \"pixclass-bundle\"" in message
    assert "upgrade" not in message


@pytest.mark.parametrize("dtype", [torch.int8, torch.uint8])
def test_quantised_weights_are_refused(bundle, tmp_path, dtype):
    def quantise(state):
        for k, v in state.items():
            if v.is_floating_point():
                state[k] = (v * 100).clamp(-128, 127).to(dtype)

    path = with_edited_tensors(bundle, tmp_path / "int8.pixclass", quantise)

    name = {torch.int8: "I8", torch.uint8: "U8"}[dtype]
    n_float = sum(v.is_floating_point() for v in tensors(bundle).values())
    pattern = f"holds {n_float} tensor\\(s\\) of an unexpected type, e.g. '[a-z0-9_.]+' is {name}, expected F32: "
    assert re.search(pattern + "quantised or converted weights are not loaded", refusal(path))


# -- the tensors, from the header, against the model on the meta device ----------------------------

def test_half_precision_weights_are_refused_not_converted(bundle, tmp_path):
    path = with_edited_tensors(bundle, tmp_path / "half.pixclass",
                               lambda state: state.update({"head.mlp.6.weight": state["head.mlp.6.weight"].half()}))

    assert "holds 1 tensor(s) of an unexpected type, e.g. 'head.mlp.6.weight' is F16, expected F32" in refusal(path)


def test_a_header_that_lies_about_a_shape_is_refused(bundle, tmp_path):
    header, data = split_safetensors(bundle.read_bytes())
    rows, cols = header["head.mlp.6.weight"]["shape"]
    header["head.mlp.6.weight"]["shape"] = [cols, rows]  # the same bytes, read the other way round
    path = tmp_path / "transposed.pixclass"
    path.write_bytes(join_safetensors(header, data))

    assert "does not match its own description (0 missing, 0 unexpected, 1 of another shape)" in refusal(path)


def test_a_header_that_lies_about_a_dtype_is_refused(bundle, tmp_path):
    header, data = split_safetensors(bundle.read_bytes())
    header["head.mlp.6.bias"]["dtype"] = "I32"  # 4 bytes an element, like F32
    path = tmp_path / "int32.pixclass"
    path.write_bytes(join_safetensors(header, data))

    assert "e.g. 'head.mlp.6.bias' is I32, expected F32" in refusal(path)


def test_a_missing_and_an_extra_tensor_are_counted(bundle, tmp_path):
    def swap(state):
        del state["head.mlp.6.bias"]
        state["head.mlp.7.weight"] = torch.zeros(3)

    path = with_edited_tensors(bundle, tmp_path / "renamed.pixclass", swap)

    assert "does not match its own description (1 missing, 1 unexpected, 0 of another shape)" in refusal(path)


def test_nan_weights_are_refused(bundle, tmp_path):
    def poison(state):
        state["head.mlp.6.weight"][0, 0] = float("nan")

    path = with_edited_tensors(bundle, tmp_path / "nan.pixclass", poison)

    assert "holds NaN or infinite weights in 1 tensor(s), e.g. 'head.mlp.6.weight'" in refusal(path)


def test_a_head_that_does_not_pool_a_body_that_needs_it_is_refused_before_loading(bundle, tmp_path):
    # Tensors of an average-pooling head (256 features) fit pool=false too, but then the body's
    # (B, C, H, W) map reaches the head's BatchNorm1d unpooled: predict would crash.
    model, _ = build_model(TINY_ARCH, 3, pretrained=False, concat_pool=False)
    meta = description(bundle)
    meta["head"].update(concat_pool=False, pool=False)
    path = tmp_path / "unpooled.pixclass"
    save_file(model.state_dict(), str(path), metadata={"pixclass": json.dumps(meta)})

    assert "describes a model that cannot run: 'test_efficientnet' with its head does not map 32-px images " \
           "to 3 outputs" in refusal(path)


def test_a_head_width_other_than_the_bodys_features_is_refused(bundle, tmp_path):
    path = edited(bundle, tmp_path / "narrow.pixclass", "head.n_in", 100)

    assert "field 'head.n_in' is 100, expected 256 (the features of 'test_efficientnet')" in refusal(path)


def test_an_arch_with_an_unknown_pretrained_tag_is_refused(bundle, tmp_path):
    path = edited(bundle, tmp_path / "tag.pixclass", "arch", "test_efficientnet.no_such_tag")

    assert "names architecture 'test_efficientnet.no_such_tag', which timm cannot build" in refusal(path)


def test_an_edited_informational_field_still_loads_and_predicts(bundle, tmp_path, image):
    def annotate(meta):
        meta["weights_source"] = "retrained by hand"
        meta["training"] = {"note": "anything JSON"}

    predictor = load_model(with_edited_meta(bundle, tmp_path / "annotated.pixclass", annotate))

    assert predictor.predict(image).label == load_model(bundle).predict(image).label


def test_a_bundle_edited_within_the_schema_loads_and_predicts(bundle, tmp_path, image):
    def relabel(meta):
        meta.update(classes=["cyan", "magenta", "yellow"], input_size=64, threshold=0.3)

    pred = load_model(with_edited_meta(bundle, tmp_path / "relabelled.pixclass", relabel)).predict(image)

    assert pred.label in ("cyan", "magenta", "yellow")


# -- files that are not safetensors ------------------------------------------------------------------

def _non_safetensors(bundle: Path, marker: Path) -> dict[str, bytes]:
    raw = bundle.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    pt = io.BytesIO()
    torch.save({"state": Touch(marker)}, pt)
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("model.pixclass", raw[:1000])
    return {
        "empty": b"",
        "random bytes": random.Random(0).randbytes(5000),
        "a pickle": pickle.dumps(Touch(marker)),
        "a torch.save zip": pt.getvalue(),
        "a zip": zipped.getvalue(),
        "a header length of 2**63": struct.pack("<Q", 2**63) + raw[8:],
        "a header length too long": struct.pack("<Q", n + 10) + raw[8:],
        "a header length too short": struct.pack("<Q", n - 10) + raw[8:],
        "a truncated file": raw[:-100],
        "bytes after the data": raw + b"\0" * 16,
        "the header only": raw[:8 + n],
    }


@pytest.mark.parametrize("kind", ["empty", "random bytes", "a pickle", "a torch.save zip", "a zip",
                                  "a header length of 2**63", "a header length too long",
                                  "a header length too short", "a truncated file", "bytes after the data",
                                  "the header only"])
def test_a_file_that_is_not_safetensors_is_a_one_line_error_and_runs_nothing(bundle, tmp_path, kind):
    marker = tmp_path / "ran.txt"
    path = tmp_path / "model.pixclass"
    path.write_bytes(_non_safetensors(bundle, marker)[kind])

    message = refusal(path)

    assert message == f"'{path}' is not a pixclass model (not a safetensors file); export one with " \
                      "'pixclass export RUN'"
    assert not marker.exists()


def test_the_pickle_payload_of_these_tests_would_run_if_unpickled(tmp_path):
    # Proof, in a throwaway process, that "the marker file never appears" above means something.
    marker, payload = tmp_path / "ran.txt", tmp_path / "payload.pkl"
    payload.write_bytes(pickle.dumps(Touch(marker)))

    subprocess.run([sys.executable, "-c", "import pickle, sys; pickle.loads(open(sys.argv[1], 'rb').read())",
                    str(payload)], check=True, timeout=60)

    assert marker.exists()
