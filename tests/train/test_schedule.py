"""Learning rates: discriminative LRs per layer group, the one-cycle schedule, and the LR finder."""

from __future__ import annotations

import math

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from pixclass.errors import PixclassError
from pixclass.train.schedule import LRFind, exp_lrs, one_cycle, spread_lr


@pytest.fixture
def optimizer_steps():
    """Records, at every optimizer step, each torch param group's (lr, momentum) as used by that step."""
    steps: list[list[tuple[float, float]]] = []
    handle = register_optimizer_step_pre_hook(
        lambda opt, args, kwargs: steps.append([(g["lr"], g["betas"][0]) for g in opt.param_groups]))
    yield steps
    handle.remove()


# ----- spread_lr -------------------------------------------------------------------------------
def test_slice_spreads_geometrically_from_first_group_to_head():
    assert spread_lr(slice(1e-5, 1e-3), 3) == pytest.approx([1e-5, 1e-4, 1e-3])


def test_slice_with_only_a_maximum_gives_the_body_a_tenth():
    assert spread_lr(slice(1e-3), 3) == pytest.approx([1e-4, 1e-4, 1e-3])


def test_a_float_lr_applies_to_every_group():
    assert spread_lr(3e-3, 3) == [3e-3, 3e-3, 3e-3]


def test_bad_lrs_are_errors():
    with pytest.raises(PixclassError, match="learning rate must be a positive number; got -0.1"):
        spread_lr(-0.1, 3)
    with pytest.raises(PixclassError, match="needs an upper bound"):
        spread_lr(slice(1e-5, None), 3)


# ----- schedules in a real fit -----------------------------------------------------------------
def test_fit_one_cycle_with_a_slice_gives_each_layer_group_its_lr(colour_data, make_learner, optimizer_steps):
    learn = make_learner(colour_data.with_size(32, bs=3))  # 6 steps: the peak falls on step 3
    learn.unfreeze()

    learn.fit_one_cycle(1, lr=slice(1e-5, 1e-3), pct_start=0.5)

    # Two torch groups (decay / no decay) per layer group; at the peak they carry the slice's LRs.
    peak = max(optimizer_steps, key=lambda groups: groups[-1][0])
    assert [lr for lr, _ in peak] == pytest.approx([1e-5, 1e-5, 1e-4, 1e-4, 1e-3, 1e-3])
    for groups in optimizer_steps:  # and keep those ratios at every step of the schedule
        head_lr = groups[-1][0]
        assert [lr / head_lr for lr, _ in groups] == pytest.approx([0.01, 0.01, 0.1, 0.1, 1, 1])


def test_one_cycle_warms_up_to_the_max_at_pct_start_then_anneals(colour_data, make_learner):
    learn = make_learner(colour_data)

    learn.fit_one_cycle(4, lr=1e-2, pct_start=0.25, div=25.0, div_final=1e5)

    lrs = learn.recorder.lrs  # the head group's LR used by each batch
    assert len(lrs) == 4 * 3  # 18 training images in batches of 6
    peak = lrs.index(max(lrs))
    assert peak == round(0.25 * len(lrs)) - 1
    assert max(lrs) == pytest.approx(1e-2)
    assert lrs[0] == pytest.approx(1e-2 / 25)
    assert lrs[-1] == pytest.approx(1e-2 / 25 / 1e5)
    assert all(a < b for a, b in zip(lrs[:peak], lrs[1:peak + 1]))
    assert all(a > b for a, b in zip(lrs[peak:], lrs[peak + 1:]))


def test_one_cycle_moves_momentum_inversely_to_the_lr(colour_data, make_learner, optimizer_steps):
    learn = make_learner(colour_data)

    learn.fit_one_cycle(4, lr=1e-2, pct_start=0.25)

    lrs = [groups[-1][0] for groups in optimizer_steps]
    moms = [groups[-1][1] for groups in optimizer_steps]
    assert lrs == pytest.approx(learn.recorder.lrs)
    assert moms[0] == pytest.approx(0.95) and min(moms) == pytest.approx(0.85)
    assert moms.index(min(moms)) == lrs.index(max(lrs))
    for (lr_a, m_a), (lr_b, m_b) in zip(zip(lrs, moms), zip(lrs[1:], moms[1:])):
        assert (lr_b - lr_a) * (m_b - m_a) <= 0


# ----- lr_find ---------------------------------------------------------------------------------
def test_lr_find_tries_increasing_lrs_and_restores_the_weights_exactly(colour_data, make_learner):
    learn = make_learner(colour_data)
    before = {k: v.clone() for k, v in learn.model.state_dict().items()}

    result = learn.lr_find(start_lr=1e-6, end_lr=1.0, num_it=40, stop_div=False)

    assert len(result.lrs) == len(result.losses) == 40
    assert result.lrs[0] == pytest.approx(1e-6) and result.lrs[-1] == pytest.approx(1.0)
    assert all(a < b for a, b in zip(result.lrs, result.lrs[1:]))
    after = learn.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_lr_find_stops_when_the_loss_diverges(colour_data, make_learner):
    learn = make_learner(colour_data)

    result = learn.lr_find(start_lr=1e-4, end_lr=1e4, num_it=100)

    assert 5 < len(result.lrs) < 100
    assert result.lrs[-1] < 1e4


def test_lr_find_suggestion_is_within_the_tried_range_and_plots(colour_data, make_learner, tmp_path):
    learn = make_learner(colour_data)

    result = learn.lr_find(num_it=60)

    assert result.lrs[0] <= result.suggestion <= result.lrs[-1]
    fig = result.plot(tmp_path / "lr.png")
    assert (tmp_path / "lr.png").stat().st_size > 0
    assert fig.axes[0].get_xscale() == "log"


def test_lr_find_on_the_unfrozen_model_also_restores_the_weights(colour_data, make_learner):
    learn = make_learner(colour_data)
    learn.unfreeze()
    before = {k: v.clone() for k, v in learn.model.state_dict().items()}

    learn.lr_find(num_it=8, stop_div=False)

    after = learn.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_suggestion_is_before_the_minimum_where_the_loss_falls_fastest():
    lrs = exp_lrs(1e-6, 1.0, 61)
    # Flat, then a steep fall centred on 1e-3, a minimum at 1e-2, then a blow-up.
    losses = [2.0 - 1.5 / (1 + math.exp(-4 * (math.log10(lr) + 3))) + (0 if lr < 1e-2 else 50 * (lr - 1e-2))
              for lr in lrs]

    s = LRFind(lrs, losses).suggestion

    assert 1e-4 < s < 1e-2


def test_suggestion_needs_a_few_steps():
    with pytest.raises(PixclassError, match="too few steps"):
        LRFind([1e-3, 1e-2], [1.0, 0.9]).suggestion


@pytest.mark.parametrize("total_steps", [1, 2, 3, 4, 5, 8])
def test_one_cycle_runs_every_step_of_a_tiny_schedule(total_steps):
    # 4 steps at pct_start 0.25 is a one-step warm-up, where torch's OneCycleLR divided by zero.
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = one_cycle(opt, [0.1], total_steps, pct_start=0.25)
    lrs = [opt.param_groups[0]["lr"]]
    for _ in range(total_steps - 1):
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert len(lrs) == total_steps and all(0 < lr <= 0.1 + 1e-12 for lr in lrs)
