"""The head: concat pooling, the BatchNorm/Dropout/Linear stack, y_range, and its stored config."""

from __future__ import annotations

import torch
from torch import nn

from pixclass.models.head import ConcatPool, Head, HeadConfig


def test_concat_pool_doubles_the_channels():
    x = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).view(2, 3, 2, 2)

    out = ConcatPool()(x)

    assert out.shape == (2, 6)
    assert out[0].tolist() == [1.5, 5.5, 9.5, 3.0, 7.0, 11.0]  # averages, then maxima


def test_average_only_pooling_keeps_the_channels():
    assert ConcatPool(concat=False)(torch.ones(2, 3, 2, 2)).shape == (2, 3)


def test_head_layers_follow_fastai():
    head = Head(HeadConfig(n_in=8, n_out=3, hidden=4, ps=0.4))

    kinds = [type(m) for m in head.mlp]

    assert kinds == [nn.BatchNorm1d, nn.Dropout, nn.Linear, nn.ReLU, nn.BatchNorm1d, nn.Dropout, nn.Linear]
    assert head.mlp[1].p == 0.2 and head.mlp[5].p == 0.4
    assert head.mlp[0].num_features == 16 and head.mlp[-1].out_features == 3


def test_head_without_hidden_layer_is_a_single_linear_layer():
    head = Head(HeadConfig(n_in=8, n_out=3, hidden=0))

    assert [type(m) for m in head.mlp] == [nn.BatchNorm1d, nn.Dropout, nn.Linear]


def test_head_for_pooled_bodies_does_not_pool():
    head = Head(HeadConfig(n_in=8, n_out=2, pool=False)).eval()

    assert head(torch.randn(3, 8)).shape == (3, 2)


def test_y_range_squashes_outputs_into_the_range():
    torch.manual_seed(0)
    head = Head(HeadConfig(n_in=4, n_out=1, hidden=0, y_range=(-1.0, 2.0))).eval()
    with torch.no_grad():
        head.mlp[-2].weight.mul_(1000)

    out = head(torch.randn(64, 4, 2, 2))

    assert out.min() >= -1.0 and out.max() <= 2.0
    assert out.min() < -0.9 and out.max() > 1.9  # the range is actually reached


def test_head_config_round_trips_through_a_dict():
    cfg = HeadConfig(n_in=8, n_out=1, y_range=(0.0, 1.0))

    assert HeadConfig.from_dict(cfg.to_dict()) == cfg
