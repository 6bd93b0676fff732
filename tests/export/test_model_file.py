"""Reading what a model file says about itself without torch: bundles, ONNX files, and what `info` prints."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

from pixclass.errors import PixclassError
from pixclass.export.bundle import read_meta
from pixclass.export.model_file import MAX_CLASSES_SHOWN, info_lines, is_onnx_file, read_model_meta
from test_bundle import with_edited_meta


@pytest.fixture(scope="module")
def exported(bundle, tmp_path_factory) -> Path:
    """The shared bundle (tests/export/conftest.py) exported to ONNX."""
    from pixclass.export.onnx import export_onnx

    return export_onnx(bundle, tmp_path_factory.mktemp("model_file") / "colours.onnx")


def onnx_file(path: Path, props: dict[str, str], source: Path) -> Path:
    """The exported ONNX model `source` with its metadata properties replaced by `props`."""
    model = onnx.load(str(source))
    del model.metadata_props[:]
    for k, v in props.items():
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, str(path))
    return path


def test_a_bundles_description_is_the_one_the_loader_reads(bundle):
    assert read_model_meta(bundle) == read_meta(bundle)


def test_reading_a_description_does_not_import_torch(bundle):
    code = ("import sys; from pixclass.export.model_file import read_model_meta\n"
            f"meta = read_model_meta({str(bundle)!r})\n"
            "print(meta['arch'], 'TORCH' if 'torch' in sys.modules else 'NO-TORCH')")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.stdout.strip() == "test_efficientnet NO-TORCH", res.stderr


def test_an_onnx_files_pixclass_property_is_its_description(bundle, exported, tmp_path):
    meta = read_meta(bundle)

    path = onnx_file(tmp_path / "m.onnx", {"pixclass": json.dumps(meta), "other": "x"}, exported)

    assert read_model_meta(path) == meta


def test_an_onnx_file_without_a_description_is_one_clear_error(exported, tmp_path):
    path = onnx_file(tmp_path / "plain.onnx", {}, exported)

    with pytest.raises(PixclassError,
                       match="is an ONNX model but not a pixclass model \\(no 'pixclass' metadata\\); export one with"):
        read_model_meta(path)


def test_a_damaged_onnx_description_is_refused_like_a_bundles(bundle, exported, tmp_path):
    meta = {**read_meta(bundle), "input_size": 30000}
    path = onnx_file(tmp_path / "big.onnx", {"pixclass": json.dumps(meta)}, exported)

    with pytest.raises(PixclassError, match="field 'input_size' is 30000, expected an integer from 16 to 1024"):
        read_model_meta(path)


def test_a_file_that_is_no_onnx_model_is_one_clear_error(tmp_path):
    (tmp_path / "page.onnx").write_text("<html>not found</html>")

    with pytest.raises(PixclassError,
                       match="is not an ONNX model \\(unreadable protobuf.*; "
                       "export one with 'pixclass export RUN --onnx'"):
        read_model_meta(tmp_path / "page.onnx")


def test_a_missing_file_is_one_clear_error(tmp_path):
    with pytest.raises(PixclassError, match="model file '.*gone.onnx' does not exist"):
        read_model_meta(tmp_path / "gone.onnx")


def test_a_model_file_without_a_known_suffix_is_recognised_by_its_content(bundle, exported, tmp_path):
    shutil.copy(exported, tmp_path / "model_a")
    shutil.copy(bundle, tmp_path / "model_b")

    assert (is_onnx_file(tmp_path / "model_a"), is_onnx_file(tmp_path / "model_b")) == (True, False)
    assert read_model_meta(tmp_path / "model_a") == read_model_meta(tmp_path / "model_b")


def test_info_lists_the_first_classes_and_counts_the_rest(bundle, tmp_path):
    names = [f"class_{i:02d}" for i in range(30)]

    def many(meta):
        meta.update(classes=names)
        meta["head"]["n_out"] = 30

    meta = read_model_meta(with_edited_meta(bundle, tmp_path / "many.pixclass", many))

    line = next(x for x in info_lines(meta, tmp_path / "many.pixclass") if x.startswith("classes:"))
    assert line == f"classes: 30: {', '.join(names[:MAX_CLASSES_SHOWN])}, … and 10 more (--json lists all)"


def test_info_of_a_multi_label_model_states_its_threshold(bundle, tmp_path):
    meta = read_model_meta(with_edited_meta(bundle, tmp_path / "multi.pixclass",
                                            lambda m: m.update(task="multi", threshold=0.4)))

    lines = info_lines(meta, tmp_path / "multi.pixclass")

    assert "task: multi-label classification" in lines
    assert "threshold: 0.4 (a tag is predicted above this probability)" in lines
