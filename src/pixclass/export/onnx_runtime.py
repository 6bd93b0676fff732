"""The ONNX Runtime backend of the predictor: an exported `.onnx` file run without torch.

Owns loading an ONNX model safely and `OnnxRuntime.run` (a normalized NCHW float32 batch → raw
outputs, float32 (N, n_out)). Loading reads the bytes once and checks them before ONNX Runtime sees
them, each problem one `PixclassError` naming the file: not ONNX (random bytes, a pickle, a zip, a
`.pixclass` renamed), no `pixclass` description, a description failing `bundle_meta`, external-data
references or operators outside the standard ONNX domain (a standalone pixclass file has neither, so
no other file is read and no custom-op library is needed), a graph whose input or output disagrees
with the description. Then one image of zeros runs through it. ONNX Runtime parses protobuf and runs
standard operators only: nothing in the file can run code. Importing this module never imports torch.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pixclass.errors import PixclassError
from pixclass.export.bundle_meta import DAMAGED, decode_meta, validate_meta
from pixclass.export.model_file import META_KEY

INPUT, OUTPUT = "image", "logits"
STANDARD_DOMAINS = ("", "ai.onnx")  # the operators every ONNX runtime implements
EXPORT_HINT = "export one with 'pixclass export RUN --onnx'"


class OnnxRuntime:
    """`run(batch) -> outputs` for an ONNX model on ONNX Runtime's CPU (or CUDA) provider.

    Thread-safe: ONNX Runtime allows concurrent `run` calls on one session (the server's threads share it).
    """

    name = "onnxruntime"

    def __init__(self, session: Any, meta: dict[str, Any], device: str, threads: int):
        self._session = session
        self.device, self.threads = device, threads
        self.input_size: int = meta["input_size"]
        self.n_out: int = meta["head"]["n_out"]

    def __repr__(self) -> str:
        return f"OnnxRuntime({self.device}, {self.threads} threads)"

    @classmethod
    def from_file(cls, path: str | os.PathLike, threads: int | None = None, device: str | None = None
                  ) -> tuple[OnnxRuntime, dict[str, Any]]:
        """Load a `.onnx` file written by `pixclass export RUN --onnx`; returns the runtime and its description.

        Args:
            path: the file.
            threads: intra-op threads (default: the cores this process may use).
            device: "cpu" (default) or "cuda" / "cuda:N" (needs onnxruntime-gpu).

        Raises:
            PixclassError: one line naming the file: missing, not ONNX, not a pixclass model, damaged.
        """
        path = Path(path)
        data = _read(path)
        meta = _checked(data, path)
        return cls._load(data, meta, path, threads, device), meta

    @classmethod
    def from_bytes(cls, data: bytes, meta: dict[str, Any], threads: int | None = None, device: str | None = None,
                   name: str = "the in-memory ONNX model") -> OnnxRuntime:
        """Load serialized ONNX (e.g. `onnx.onnx_bytes` of a bundle) described by `meta`; `name` is
        what errors call it. The same checks as `from_file`, against `meta`."""
        validate_meta(meta, name, check_arch=False)
        _checked(data, name, meta)
        return cls._load(data, meta, name, threads, device)

    @classmethod
    def _load(cls, data: bytes, meta: dict[str, Any], where: str | Path, threads: int | None,
              device: str | None) -> OnnxRuntime:
        n = _threads(threads)
        dev, providers = _providers(device)
        runtime = cls(_session(data, providers, n, where), meta, dev, n)
        runtime._check_runs(where)
        return runtime

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Raw outputs (N, n_out) float32 of a normalized (N, 3, S, S) batch."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if batch.ndim != 4 or batch.shape[1:] != (3, self.input_size, self.input_size):
            raise ValueError(f"expected a batch of shape (N, 3, {self.input_size}, {self.input_size}), "
                             f"got {batch.shape}")
        if batch.shape[0] == 0:
            return np.zeros((0, self.n_out), dtype=np.float32)
        out = self._session.run([OUTPUT], {INPUT: batch})[0]
        if out.shape != (batch.shape[0], self.n_out) or out.dtype != np.float32:
            raise PixclassError(f"the ONNX model returned {out.dtype} outputs of shape {out.shape} for "
                                f"{batch.shape[0]} image(s), expected ({batch.shape[0]}, {self.n_out}); {DAMAGED}")
        return out

    def _check_runs(self, where: str | Path) -> None:
        """One image of zeros runs to (1, n_out): the declared shapes are what the graph computes."""
        try:
            self.run(np.zeros((1, 3, self.input_size, self.input_size), dtype=np.float32))
        except PixclassError as err:
            raise PixclassError(f"'{where}': {err}") from None
        except Exception as err:  # ONNX Runtime's Fail, InvalidArgument, RuntimeException...
            raise PixclassError(f"'{where}' does not run on ONNX Runtime ({_first_line(err)}); {DAMAGED}") from None


# -- reading and checking ------------------------------------------------------------------------

def read_onnx_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The validated description of a pixclass `.onnx` file, after the checks `from_file` makes
    before ONNX Runtime sees the file (no session is made)."""
    path = Path(path)
    return _checked(_read(path), path)


def _read(path: Path) -> bytes:
    if not path.is_file():
        raise PixclassError(f"model file '{path}' does not exist" if not path.exists()
                            else f"model file '{path}' is not a file")
    try:
        return path.read_bytes()
    except OSError as err:
        raise PixclassError(f"cannot read model file '{path}': {err.strerror or err}") from None


def _checked(data: bytes, where: str | Path, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """The description of serialized ONNX `data` (`meta` if given, else the file's own), after checking
    the graph against it. The parsed protobuf (a copy of the weights) is dropped on return."""
    proto = _parse(data, where)
    if meta is None:
        raw = [p.value for p in proto.metadata_props if p.key == META_KEY]
        if not raw:
            raise PixclassError(f"'{where}' is an ONNX model but not a pixclass model (no '{META_KEY}' metadata); "
                                f"{EXPORT_HINT}")
        if len(raw) > 1:
            raise PixclassError(f"'{where}' holds {len(raw)} '{META_KEY}' descriptions, expected one; {DAMAGED}")
        meta = decode_meta(raw[0], where, check_arch=False)
    _check_graph(proto, meta, where)
    return meta


def _parse(data: bytes, where: str | Path) -> Any:
    """The ModelProto of `data`; named refusals for the files people mistake for ONNX."""
    import onnx
    from google.protobuf.message import DecodeError

    kind = _sniff(data)
    if kind == "safetensors":
        raise PixclassError(f"'{where}' is a safetensors file, not an ONNX model: a .pixclass bundle? Load it "
                            "under its .pixclass name")
    if kind:
        raise PixclassError(f"'{where}' is not an ONNX model ({kind}); {EXPORT_HINT}")
    try:
        proto = onnx.load_model_from_string(data)  # protobuf only: external data is never read here
    except (KeyboardInterrupt, MemoryError):
        raise
    except (DecodeError, RecursionError, ValueError, RuntimeError, TypeError) as err:
        raise PixclassError(f"'{where}' is not an ONNX model (unreadable protobuf: {_first_line(err, 60)}); "
                            f"{EXPORT_HINT}") from None
    if proto.ir_version <= 0 or not proto.HasField("graph") or not proto.graph.node:
        raise PixclassError(f"'{where}' is not an ONNX model (no graph); {EXPORT_HINT}")
    return proto


def _sniff(data: bytes) -> str | None:
    """What a file that is not protobuf is, by its first bytes (None: maybe ONNX)."""
    if not data:
        return "the file is empty"
    if data[:4] == b"PK\x03\x04":
        return "a zip archive, e.g. a torch checkpoint"
    if data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a Python pickle"
    if len(data) >= 10 and data[8:9] == b"{" and 8 + int.from_bytes(data[:8], "little") <= len(data):
        return "safetensors"
    return None


def _check_graph(proto: Any, meta: dict[str, Any], where: str | Path) -> None:
    """External data, operator domains, and the input and output against `meta`."""
    local = {(f.domain, f.name) for f in proto.functions}  # functions defined in the file itself
    local_domains = {d for d, _ in local}
    odd = [o.domain for o in proto.opset_import if o.domain not in STANDARD_DOMAINS and o.domain not in local_domains]
    for graph in _graphs(proto):
        for node in graph.node:
            if node.domain not in STANDARD_DOMAINS and (node.domain, node.op_type) not in local:
                odd.append(node.domain)
        if any(_external(t) for t in _tensors(graph)):
            raise PixclassError(f"'{where}' refers to weights in other files (ONNX external data); a pixclass "
                                f"ONNX file holds its weights itself; {EXPORT_HINT}")
    if odd:
        raise PixclassError(f"'{where}' uses operators of the custom domain '{odd[0]}'; a pixclass ONNX file uses "
                            f"standard ONNX operators only; {EXPORT_HINT}")
    size, n_out = meta["input_size"], meta["head"]["n_out"]
    weights = {t.name for t in proto.graph.initializer}
    inputs = [v for v in proto.graph.input if v.name not in weights]
    _check_value(inputs, INPUT, [None, 3, size, size], "input", where)
    _check_value(list(proto.graph.output), OUTPUT, [None, n_out], "output", where)


def _check_value(values: list, name: str, dims: list[int | None], what: str, where: str | Path) -> None:
    import onnx

    expected = f"one {what} '{name}' float32 ({', '.join('N' if d is None else str(d) for d in dims)})"
    found = "none" if not values else ", ".join(f"'{v.name}' {_describe(v)}" for v in values[:3])
    ok = len(values) == 1 and values[0].name == name and values[0].type.HasField("tensor_type")
    if ok:
        tensor = values[0].type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
        ok = tensor.elem_type == onnx.TensorProto.FLOAT and tensor.HasField("shape") and shape == dims
    if not ok:
        raise PixclassError(f"'{where}' does not match its own description: its graph has {what} {found}, "
                            f"expected {expected}; {DAMAGED}")


def _describe(value: Any) -> str:
    """A graph value as "float32 (N, 3, 224, 224)"."""
    import onnx

    if not value.type.HasField("tensor_type"):
        return "(not a tensor)"
    tensor = value.type.tensor_type
    dims = ", ".join(str(d.dim_value) if d.HasField("dim_value") else "N" for d in tensor.shape.dim)
    names = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.DOUBLE: "float64", onnx.TensorProto.FLOAT16: "float16"}
    dtype = names.get(tensor.elem_type) or (onnx.TensorProto.DataType.Name(tensor.elem_type).lower()
                                            if tensor.elem_type in onnx.TensorProto.DataType.values() else "unknown")
    return f"{dtype} ({dims})"


def _graphs(proto: Any) -> Iterator[Any]:
    """The main graph, its subgraphs (If, Loop, Scan bodies) and the bodies of local functions."""
    stack = [proto.graph]
    stack.extend(_FunctionAsGraph(f) for f in proto.functions)
    while stack:
        graph = stack.pop()
        yield graph
        for node in graph.node:
            for attr in node.attribute:
                if attr.HasField("g"):
                    stack.append(attr.g)
                stack.extend(attr.graphs)


class _FunctionAsGraph:
    """A FunctionProto seen as a graph with nodes and no initializers."""

    def __init__(self, function: Any):
        self.node, self.initializer, self.sparse_initializer = function.node, (), ()


def _tensors(graph: Any) -> Iterator[Any]:
    """Every TensorProto a graph holds: initializers and constants in node attributes."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield from (sparse.values, sparse.indices)
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("sparse_tensor"):
                yield from (attr.sparse_tensor.values, attr.sparse_tensor.indices)
            for sparse in attr.sparse_tensors:
                yield from (sparse.values, sparse.indices)


def _external(tensor: Any) -> bool:
    import onnx

    return tensor.data_location == onnx.TensorProto.EXTERNAL or len(tensor.external_data) > 0


# -- the session ---------------------------------------------------------------------------------

def _threads(threads: int | None) -> int:
    """Intra-op threads: `threads`, or every core this process may use.

    efficientnet_lite0, 224 px, this 2-core machine, median batch 1 / batch 32: idle, 2 threads (the serving
    issue's figure) 2.5-3.3 ms; shared with other work (load 3-4), 1 thread 6.0 ms / 124 img/s and 2 threads
    6.3 ms / 102 img/s; at load ~9, 1 thread 22 ms / 27-46 img/s and 2 threads 15 ms / 45 img/s.
    Pass `threads=1` on a machine whose cores are busy with other work.
    """
    if threads is None:
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise PixclassError(f"threads must be a whole number of at least 1; got {threads!r}")
    return threads


def _providers(device: str | None) -> tuple[str, list]:
    import onnxruntime as ort

    dev = (device or "cpu").strip().lower()
    if dev == "cpu":
        return "cpu", ["CPUExecutionProvider"]
    if dev == "cuda" or (dev.startswith("cuda:") and dev[5:].isdigit()):
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise PixclassError(f"device '{device}': this onnxruntime has no CUDA provider (install "
                                "onnxruntime-gpu), or load the .pixclass bundle with runtime='torch'")
        index = int(dev[5:]) if ":" in dev else 0
        return dev, [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
    raise PixclassError(f"device '{device}': ONNX Runtime runs on 'cpu' or 'cuda'; load the .pixclass bundle "
                        "with runtime='torch' for other devices")


def _session(data: bytes, providers: list, threads: int, where: str | Path) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Idle pool threads sleep instead of spinning. lite0, batch 1, 2 threads, on this 2-core machine
    # shared with other work: spinning cost 12-14 ms of CPU per image against 6.5-7 ms sleeping, and
    # its median latency was 12.6 ms against 6.3 (load 3.5), 38 ms against 15 (load 9). The server
    # decodes and runs several batches at once: spinning threads would take their cores.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # errors only: no warnings on the user's terminal
    # The bytes were checked as ONNX protobuf: never let them be read as ORT's flatbuffer format.
    options.add_session_config_entry("session.load_model_format", "ONNX")
    try:
        return ort.InferenceSession(data, sess_options=options, providers=providers)
    except (KeyboardInterrupt, MemoryError):
        raise
    except Exception as err:  # InvalidGraph, Fail, NotImplemented (an operator this onnxruntime lacks)
        raise PixclassError(f"'{where}' cannot be loaded by ONNX Runtime {ort.__version__} "
                            f"({_first_line(err)}); {DAMAGED}") from None


def _first_line(err: BaseException, limit: int = 160) -> str:
    lines = [line for line in str(err).strip().splitlines() if line.strip()]
    text = f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__
    text = json.dumps(text, ensure_ascii=True)[1:-1]  # control characters escaped: the message stays one line
    return text if len(text) <= limit else text[:limit] + "…"
