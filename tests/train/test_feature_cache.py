"""FeatureCache on its narrow inputs (a body-features module, a batch factory, an input size,
device settings): no Learner, no images; and recalibrate_batchnorm's exact statistics."""

from __future__ import annotations

import torch
from torch import nn

from pixclass.train.features import FeatureCache, FeatureDevice, recalibrate_batchnorm

CPU = torch.device("cpu")


class Factory:
    """Batches per split (x (N, 4), y (N,)) in two batches, counting how often each split is asked for."""

    def __init__(self, n: int = 6):
        torch.manual_seed(0)
        self.data = {split: (torch.randn(n, 4), torch.arange(n)) for split in ("train", "valid")}
        self.calls: list[str] = []

    def __call__(self, split: str):
        self.calls.append(split)
        x, y = self.data[split]
        half = len(x) // 2
        return [(x[:half], y[:half]), (x[half:], y[half:])], 2


class ModeSpy(nn.Module):
    """Identity that records whether it ran in training mode."""

    def __init__(self):
        super().__init__()
        self.seen: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(self.training)
        return x


def make_cache(body: nn.Module, factory: Factory, size: list[int],
               train_amp: torch.dtype | None = None) -> FeatureCache:
    return FeatureCache(body, factory, lambda: size[0], FeatureDevice(CPU, train_amp, channels_last=False))


def test_features_are_computed_once_per_split_and_input_size_and_again_after_clear():
    factory, size = Factory(), [32]
    cache = make_cache(nn.Linear(4, 3), factory, size)

    cache.get("train"), cache.get("train"), cache.get("valid")
    size[0] = 64
    cache.get("train")
    cache.clear()
    cache.get("train")

    assert factory.calls == ["train", "valid", "train", "train"]


def test_features_and_targets_are_the_bodys_outputs_in_order():
    factory = Factory()
    body = nn.Linear(4, 3)

    x, y = make_cache(body, factory, [32]).get("valid")

    with torch.no_grad():
        expected = body(factory.data["valid"][0])
    assert torch.equal(x, expected) and torch.equal(y, factory.data["valid"][1])
    assert not x.requires_grad


def test_the_body_runs_in_eval_mode_and_every_module_keeps_its_own_mode_afterwards():
    spy, norm = ModeSpy(), nn.BatchNorm1d(4)
    body = nn.Sequential(spy, norm)
    body.train()
    norm.eval()  # a mixed state, as BatchNorm layers kept in eval while fine-tuning

    make_cache(body, Factory(), [32]).get("train")

    assert spy.seen == [False, False]
    assert (body.training, spy.training, norm.training) == (True, True, False)


def test_only_the_training_split_uses_the_training_autocast():
    factory = Factory()
    body = nn.Linear(4, 3)
    cache = make_cache(body, factory, [32], train_amp=torch.bfloat16)

    train, _ = cache.get("train")
    valid, _ = cache.get("valid")

    with torch.no_grad():
        exact_train, exact_valid = body(factory.data["train"][0]), body(factory.data["valid"][0])
    assert train.dtype == valid.dtype == torch.float32
    assert torch.equal(valid, exact_valid)
    assert not torch.equal(train, exact_train)  # bf16 keeps ~3 significant digits
    assert torch.allclose(train, exact_train, rtol=2e-2, atol=2e-2)


def test_recalibrated_batchnorm_holds_the_exact_statistics_of_all_features():
    torch.manual_seed(1)
    x = torch.randn(50, 3) * 2 + 5
    head = nn.Sequential(nn.BatchNorm1d(3), nn.Dropout(0.5), nn.Linear(3, 2))
    head.eval()

    recalibrate_batchnorm(head, x)

    norm = head[0]
    assert torch.allclose(norm.running_mean, x.mean(0), atol=1e-6)
    assert torch.allclose(norm.running_var, x.var(0, unbiased=True), atol=1e-5)
    assert norm.momentum == 0.1 and not head.training and not norm.training
