"""Body + head models by timm name: head shape, layer groups, freezing.

Uses timm's tiny random-weight test models, so nothing is downloaded.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pixclass.errors import PixclassError
from pixclass.models.backbones import build_model, create_body
from pixclass.models.groups import _BN


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    model, _ = build_model("test_efficientnet", n_out=3, pretrained=False)
    return model


def trainable(module: nn.Module) -> list[str]:
    return [name for name, p in module.named_parameters() if p.requires_grad]


def norm_params(module: nn.Module) -> set[str]:
    return {f"{mname}.{pname}" if mname else pname
            for mname, m in module.named_modules() if isinstance(m, _BN)
            for pname, _ in m.named_parameters(recurse=False)}


def test_create_body_describes_the_body():
    body, info = create_body("test_resnet", pretrained=False)

    assert info.arch == "test_resnet" and info.weights_source == "random init"
    assert info.n_features == 96 and not info.pooled
    assert body.eval()(torch.zeros(1, 3, 64, 64)).shape == (1, 96, 2, 2)  # a feature map, no classifier


def test_unknown_architecture_is_an_error_with_suggestions():
    with pytest.raises(PixclassError, match="unknown architecture 'resnet_99'.*similar names: .*resnet"):
        create_body("resnet_99", pretrained=False)


def test_model_maps_images_to_one_output_per_class(model):
    model.eval()

    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 3)


def test_head_pools_average_and_max_side_by_side(model):
    head = model.head
    features = torch.randn(2, 256, 4, 4)

    pooled = head.pool(features)

    assert pooled.shape == (2, 512)  # 2 × the body's 256 features
    assert torch.equal(pooled[:, :256], features.mean(dim=(2, 3)))
    assert torch.equal(pooled[:, 256:], features.amax(dim=(2, 3)))
    assert head.mlp[0].num_features == 512


def test_model_has_three_layer_groups_two_body_parts_and_the_head(model):
    assert len(model.groups) == 3
    assert model.groups[-1] == [model.head]
    body_params = sum(p.numel() for p in model.body.parameters())
    group_params = [sum(p.numel() for p in ps) for ps in model.param_groups()]
    assert sum(group_params[:2]) == body_params
    assert group_params[2] == sum(p.numel() for p in model.head.parameters())


def test_param_groups_cover_every_parameter_once(model):
    ids = [id(p) for group in model.param_groups() for p in group]

    assert len(ids) == len(set(ids)) == len(list(model.parameters()))


def test_a_new_model_starts_frozen(model):
    model.freeze()

    assert model.is_frozen and model.frozen_groups == 2


def test_freeze_leaves_only_the_head_and_batchnorm_trainable(model):
    model.freeze()

    body_trainable = set(trainable(model.body))
    assert body_trainable == norm_params(model.body) and body_trainable
    assert set(trainable(model.head)) == {name for name, _ in model.head.named_parameters()}


def test_freeze_to_one_freezes_only_the_first_group(model):
    model.freeze_to(1)

    first = {id(p) for p in model.param_groups()[0]}
    for group in model.param_groups()[1:]:
        assert all(p.requires_grad for p in group)
    frozen = [p for p in model.parameters() if not p.requires_grad]
    assert frozen and all(id(p) in first for p in frozen)
    assert not model.is_frozen


def test_unfreeze_makes_everything_trainable(model):
    model.freeze()
    model.unfreeze()

    assert all(p.requires_grad for p in model.parameters())
    assert model.frozen_groups == 0 and not model.is_frozen


def test_freeze_without_train_bn_freezes_batchnorm_too(model):
    model.freeze_to(-1, train_bn=False)

    assert trainable(model.body) == []
    model.freeze()


def test_resnet_also_splits_into_three_groups():
    model, _ = build_model("test_resnet", n_out=2, pretrained=False)

    assert len(model.groups) == 3
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 2)
