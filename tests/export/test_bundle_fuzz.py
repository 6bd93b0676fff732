"""Fuzzing the loader: hundreds of mutated bundles and crafted files, loaded under a memory cap.

From one real exported bundle, seeded random mutations of the header bytes and its declared
length, the description's JSON text and fields, the tensors' shapes, dtypes and bytes, truncation;
plus pickles that would create a marker file if unpickled, zips and random bytes. One subprocess
loads them all with `load_model` and predicts an image, its address space capped at its size + 1.5 GB
and its run time bounded: each file must load and predict, or be refused with a one-line
`PixclassError` naming it; nothing else may happen (no other exception, no MemoryError, no crash),
and the marker file must never appear.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import random
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from test_bundle import with_edited_meta
from test_bundle_meta import (
    Touch,
    description,
    drop_field,
    join_safetensors,
    set_field,
    split_safetensors,
    tensors,
    with_description_text,
    with_edited_tensors,
)

SEED = 20261125
TIMEOUT_S = 180  # the whole run takes well under a minute on 2 cores; this only stops a hang

NaN = float("nan")
# Values no field of a good description may take, except those listed in FINE_ALSO.
GENERIC = ["", "x", None, True, [], {}, [1], -1, 0, 10**18, -(10**18), 1e308, 1.5, NaN, {"a": [1, {"b": None}]}]
FINE_ALSO = {"pixclass_version": ["", "x"], "weights_source": ["", "x"], "training": [{}, {"a": [1, {"b": None}]}],
             "head.concat_pool": [True], "head.pool": [True], "head.y_range": [None], "head.ps": [0]}
FIELDS = ["format", "format_version", "arch", "head", "task", "classes", "threshold", "input_size", "resize",
          "mean", "std", "pixclass_version", "weights_source", "training", "head.n_in", "head.n_out",
          "head.hidden", "head.ps", "head.concat_pool", "head.pool", "head.y_range"]
# Hand-picked refusals: huge, negative or inconsistent values of the right type.
INVALID = {
    "format_version": [3, 10**9],
    "arch": ["resnet18", "hf-hub:someone/model", "test_efficientnet.nope"],
    "task": ["regression", "Single"],
    "classes": [["blue", "green"], ["blue", "blue", "red"], ["blue", "green", "red", "cyan"]],
    "threshold": [1, 1.000001, -0.5],
    "input_size": [15, 1025, 30000, 2**62],
    "mean": [[0.5, 0.5, 1.5], [0.5] * 4],
    "std": [[0.2, 0.2, 0.0], [0.2, 0.2, 1e-9]],
    "head.n_in": [255, 257, 65536],
    "head.n_out": [2, 4, 2_000_000, 10**9],
    "head.hidden": [0, 511, 65536],
    "head.concat_pool": [False],
    "head.pool": [False],
    "head.y_range": [[1, 0], [0, 0]],
}
# Edits a good bundle survives: it must still load and predict.
HARMLESS = [("pixclass_version", "0.0.0+edited"), ("weights_source", "somewhere else"), ("training", {}),
            ("threshold", 0.3), ("input_size", 64), ("input_size", 16), ("classes", ["cyan", "magenta", "yellow"]),
            ("mean", [0.5, 0.5, 0.5]), ("std", [0.25, 0.25, 0.25]), ("head.ps", 0.0), ("format_version", 1),
            ("head.y_range", [0, 1])]  # a classifier squashed into (0, 1): odd, not harmful

# Loads each case in turn, under the memory cap, and writes one JSON line per case as it goes.
LOADER = textwrap.dedent("""
    import json, sys, traceback
    cases, image, good, results, cap = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
    import torch
    from pixclass.errors import PixclassError
    from pixclass.export.predictor import load_model
    from test_bundle_meta import memory_cap

    load_model(good).predict(image)  # lazy initialisations (thread pools, kernels) before the cap
    with memory_cap(cap), open(results, "w") as out:
        try:
            bytearray(cap + 2**28)
            capped = False
        except MemoryError:
            capped = True
        out.write(json.dumps({"capped": capped}) + "\\n")
        for case in json.load(open(cases)):
            out.write(json.dumps({"file": case["file"], "outcome": "started"}) + "\\n")
            out.flush()
            try:
                pred = load_model(case["file"]).predict(image)
                row = {"outcome": "loaded", "label": repr(pred.label)}
            except PixclassError as err:
                row = {"outcome": "refused", "message": str(err)}
            except BaseException as err:
                row = {"outcome": "crashed", "message": traceback.format_exc()[-1500:]}
            out.write(json.dumps({"file": case["file"], **row}) + "\\n")
""")


class Cases:
    """Mutated files written to `root`, each with its expected outcome: "valid", "invalid" or "either"."""

    def __init__(self, root: Path, bundle: Path):
        self.root, self.bundle, self.raw = root, bundle, bundle.read_bytes()
        self.rows: list[dict[str, str]] = []

    def add(self, name: str, expect: str, content: bytes | Callable[[Path], Any]) -> None:
        path = self.root / f"{len(self.rows):03d}-{name}.pixclass"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            content(path)
        self.rows.append({"file": str(path), "expect": expect})

    def field(self, name: str, expect: str, field: str, value: Any) -> None:
        self.add(name, expect, lambda p: with_edited_meta(self.bundle, p, lambda m: set_field(m, field, value)))


def mutations(root: Path, bundle: Path, marker: Path) -> list[dict[str, str]]:
    rng = random.Random(SEED)
    cases = Cases(root, bundle)
    raw = cases.raw
    header, data = split_safetensors(raw)
    n = len(raw) - len(data) - 8

    # the declared header length, and the header's bytes
    for declared in [0, 1, 7, n - 1, n + 1, n + 8, len(raw) - 8, len(raw), 2**32, 2**63, 2**64 - 1,
                     rng.randrange(2**64)]:
        cases.add("header-length", "invalid", declared.to_bytes(8, "little") + raw[8:])
    for _ in range(40):
        edit = bytearray(raw)
        for _ in range(rng.randint(1, 4)):
            edit[rng.randrange(8, 8 + n)] = rng.randrange(256)
        cases.add("header-bytes", "either", bytes(edit))

    # truncation and trailing bytes
    for cut in [0, 4, 8, 9, 8 + n, 8 + n + 1, len(raw) - 1] + [rng.randrange(len(raw)) for _ in range(13)]:
        cases.add("truncated", "invalid", raw[:cut])
    for extra in [b"\0", b"\0" * 8, rng.randbytes(1000)]:
        cases.add("trailing", "invalid", raw + extra)

    # the tensor bytes: garbage weights load (or are refused as NaN); they never crash
    for _ in range(15):
        edit, start, length = bytearray(raw), rng.randrange(8 + n, len(raw) - 64), rng.randint(1, 64)
        edit[start:start + length] = rng.randbytes(length)
        cases.add("data-bytes", "either", bytes(edit))

    # the description's JSON text
    text = json.dumps(description(bundle))
    for _ in range(25):
        i, j = sorted(rng.randrange(len(text)) for _ in range(2))
        edited_text = rng.choice([text[:i] + text[j:], text[:i] + rng.choice("{}[]\",:0-e.\\ ") + text[i:],
                                  text[:i] + text[i:j] * 2 + text[j:], text[:i] + rng.randbytes(4).hex() + text[j:]])
        cases.add("json-text", "either", lambda p, t=edited_text: with_description_text(bundle, p, t))
    for crafted in ["", "null", "[]", "[1, 2]", '"pixclass"', "1", "{", "[" * 50_000, "9" * 5_000,
                    '{"format": NaN}', json.dumps({"x": text}), "\x00"]:
        cases.add("json-crafted", "invalid", lambda p, t=crafted: with_description_text(bundle, p, t))

    # the description's fields: bad types, huge and negative numbers, missing and extra keys
    generic = [(f, v) for f in FIELDS for v in GENERIC if not any(v is w or v == w for w in FINE_ALSO.get(f, []))]
    for field, value in rng.sample(generic, 90):
        cases.field(f"field-{field}", "invalid", field, value)
    for field, values in INVALID.items():
        for value in values:
            cases.field(f"bad-{field}", "invalid", field, value)
    for field in [f for f in FIELDS if f not in ("pixclass_version", "weights_source", "training")]:
        cases.add(f"missing-{field}", "invalid",
                  lambda p, f=field: with_edited_meta(bundle, p, lambda m: drop_field(m, f)))
    for field in ["extra", "head.extra"]:
        cases.field(f"extra-{field}", "invalid", field, rng.choice(GENERIC))
    for field, value in HARMLESS:
        cases.field(f"harmless-{field}", "valid", field, value)

    # the tensors: shapes, dtypes, names, values; and a header that lies about shapes and dtypes
    names = sorted(tensors(bundle))
    floats = [k for k in names if not k.endswith("num_batches_tracked")]
    for _ in range(25):
        name = rng.choice(floats)
        op = rng.choice(["flatten", "unsqueeze", "cut", "int8", "uint8", "float16", "bfloat16", "float64",
                         "int32", "bool", "drop", "extra", "rename", "nan", "inf"])
        edit = tensor_edit(name, op)
        cases.add(f"tensor-{op}", "invalid", lambda p, e=edit: with_edited_tensors(bundle, p, e))
    for _ in range(10):  # the same bytes, described as another shape or another 4-byte dtype
        lying = json.loads(json.dumps(header))
        entry = lying[rng.choice([k for k in floats if len(lying[k]["shape"]) >= 2])]
        if rng.random() < 0.5:
            shape = entry["shape"]
            entry["shape"] = shape[::-1] if len(set(shape)) > 1 else [1] + shape
        else:
            entry["dtype"] = rng.choice(["I32", "U32"])
        cases.add("header-lies", "invalid", join_safetensors(lying, data))

    # crafted files: code that would run if unpickled, zips, random bytes
    pt = io.BytesIO()
    torch.save({"state_dict": Touch(marker)}, pt)
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("data.pkl", pickle.dumps(Touch(marker)))
    for proto in (0, 2, pickle.HIGHEST_PROTOCOL):
        cases.add("pickle", "invalid", pickle.dumps(Touch(marker), protocol=proto))
    cases.add("torch-save", "invalid", pt.getvalue())
    cases.add("zip", "invalid", zipped.getvalue())
    cases.add("pickle-metadata", "invalid",
              lambda p: with_description_text(bundle, p, pickle.dumps(Touch(marker), protocol=0).decode("latin-1")))
    for size in [1, 8, 100, 4096, 100_000]:
        cases.add("random", "invalid", rng.randbytes(size))
    cases.add("html", "invalid", b"<!DOCTYPE html><html><body>404</body></html>")
    return cases.rows


def tensor_edit(name: str, op: str) -> Callable[[dict[str, torch.Tensor]], None]:
    def edit(state: dict[str, torch.Tensor]) -> None:
        t = state[name]
        if op == "flatten":
            state[name] = t.flatten().unsqueeze(0) if t.ndim == 1 else t.flatten()
        elif op == "unsqueeze":
            state[name] = t.unsqueeze(0)
        elif op == "cut":
            state[name] = t[:-1].contiguous() if len(t) > 1 else t.repeat(2, *[1] * (t.ndim - 1))
        elif op in ("drop", "rename"):
            value = state.pop(name)
            if op == "rename":
                state[name + "_"] = value
        elif op == "extra":
            state["head.extra.weight"] = torch.zeros(3)
        elif op in ("nan", "inf"):
            state[name] = t.clone().view(-1).index_fill(0, torch.tensor([0]), float(op)).view(t.shape)
        else:
            state[name] = t.to(getattr(torch, op))
    return edit


@pytest.mark.slow
def test_no_mutated_bundle_crashes_exhausts_memory_or_runs_code(bundle, image, tmp_path):
    marker = tmp_path / "pwned"
    cases_dir = tmp_path / "cases"
    cases_dir.mkdir()
    rows = mutations(cases_dir, bundle, marker)
    (tmp_path / "cases.json").write_text(json.dumps(rows))
    results = tmp_path / "results.jsonl"
    tests = Path(__file__).parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tests), str(tests.parent)]), "MALLOC_ARENA_MAX": "2"}

    run = subprocess.run([sys.executable, "-c", LOADER, str(tmp_path / "cases.json"), str(image), str(bundle),
                          str(results), str(int(1.5 * 1024**3))],
                         env=env, capture_output=True, text=True, timeout=TIMEOUT_S)

    lines = [json.loads(line) for line in results.read_text().splitlines()] if results.exists() else []
    started = [r["file"] for r in lines[1:] if r["outcome"] == "started"]
    assert run.returncode == 0, f"the loader died at {started[-1:]}: {run.stderr[-2000:]}"
    assert lines[0] == {"capped": True}  # the cap really holds: 1.75 GB more could not be mapped
    done = {r["file"]: r for r in lines[1:] if r["outcome"] != "started"}
    assert len(rows) >= 200 and len(done) == len(rows)
    allowed = {"valid": {"loaded"}, "invalid": {"refused"}, "either": {"loaded", "refused"}}
    unexpected = [(row["expect"], done[row["file"]]) for row in rows
                  if done[row["file"]]["outcome"] not in allowed[row["expect"]]]
    assert not unexpected, "\n".join(f"expected {expect}, got {result}" for expect, result in unexpected)
    refusals = [r for r in done.values() if r["outcome"] == "refused"]
    unclear = [r for r in refusals if "\n" in r["message"] or f"'{r['file']}'" not in r["message"]]
    assert not unclear, unclear
    assert not marker.exists()
