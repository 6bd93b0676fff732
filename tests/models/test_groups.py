"""Layer groups on a plain torch body: ordered units, balanced split, freeze_to semantics."""

from __future__ import annotations

from torch import nn

from pixclass.models.groups import body_units, freeze_to, param_groups, split_groups


def toy_body() -> nn.Module:
    body = nn.Module()
    body.stem = nn.Conv2d(3, 8, 3)
    body.blocks = nn.Sequential(*[nn.Sequential(nn.Conv2d(8, 8, 3), nn.BatchNorm2d(8)) for _ in range(4)])
    body.act = nn.ReLU()  # no parameters: not a unit
    return body


def test_body_units_expand_stage_containers_in_order():
    body = toy_body()

    assert body_units(body) == [body.stem, *body.blocks]


def test_split_groups_cuts_the_body_in_two_by_parameter_count_then_the_head():
    body, head = toy_body(), nn.Linear(8, 2)

    groups = split_groups(body, head)

    assert groups == [[body.stem, body.blocks[0], body.blocks[1]], [body.blocks[2], body.blocks[3]], [head]]


def test_freeze_to_negative_counts_from_the_end_like_a_slice():
    body, head = toy_body(), nn.Linear(8, 2)
    groups = split_groups(body, head)

    freeze_to(groups, -1, train_bn=False)

    assert [all(p.requires_grad for p in g) for g in param_groups(groups)] == [False, False, True]
    assert not any(p.requires_grad for g in param_groups(groups)[:2] for p in g)


def test_frozen_groups_keep_batchnorm_trainable_by_default():
    body, head = toy_body(), nn.Linear(8, 2)
    groups = split_groups(body, head)

    freeze_to(groups, 2)

    assert body.blocks[0][1].weight.requires_grad and not body.blocks[0][0].weight.requires_grad
