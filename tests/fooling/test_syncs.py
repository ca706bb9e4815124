"""No host-device synchronisation and no host-to-device copy inside a steady-state training step (after the
first) of every fooling x {gradcam, lrpT, simplegT, smoothgrad, ig}: forward, maps with create_graph, penalty,
theta0's maps for new images (the per-image cache), logging, backward, the NaN guard and the Adam step
(``sync_harness``).

Counts on the code before this test existed (steady-state step; syncs / host-to-device copies):
location 3 / 0 (ig: 3 / 2), topk 7 / 0 (ig 7 / 4), center_mass 7 / 2 (ig 7 / 6), active 2 / 0 (ig 2 / 8) —
label range check (interpreters/base.py), float(zero_map_share), the NaN guard, boolean-mask indexing of the
theta0 map cache, IG's quadrature nodes and center-mass's grid centre copied from the host. Then 0 / 0 without
the NaN guard and 1 / 0 with it (default ``nan_check_every=1``: one host read of the loss flag per step, every
cell). Now 0 / 0 with the guard on in every cell: the bad step is skipped on the device (fused Adam's
``found_inf``) and the host reads the guard's record through a non-blocking copy (one per check, waited for
by nothing) once its event says it has arrived.
"""
import functools

import pytest
import torch

from interpfool import interpreters, models
from interpfool.experiment.callbacks import NonFiniteLoss, StopOnNonFiniteLoss
from interpfool.experiment.cli import guarded
from interpfool.fooling import FoolingModule, LocationFooling
from sync_harness import _StubTrainer, fooling_step_counts

FOOLINGS = ["location", "topk", "center_mass", "active"]
INTERPS = ["gradcam", "lrpT", "simplegT", "smoothgrad", "ig"]


@pytest.mark.parametrize("interp", INTERPS)
@pytest.mark.parametrize("fooling", FOOLINGS)
def test_steady_state_training_step_has_no_sync_and_no_host_copy(fooling, interp):
    syncs, copies, reads = fooling_step_counts(fooling, interp)[-1]
    assert syncs == [] and copies == [] and reads == []


@pytest.mark.parametrize("interp", INTERPS)
@pytest.mark.parametrize("fooling", FOOLINGS)
def test_with_the_nan_guard_on_the_step_still_has_no_sync_and_no_host_copy(fooling, interp):
    syncs, copies, reads = fooling_step_counts(fooling, interp, callbacks=[StopOnNonFiniteLoss()])[-1]
    assert syncs == [] and copies == []
    assert len(reads) == 1 and "callbacks.py" in reads[0]    # the guard's record, non-blocking


def test_the_nan_guard_queues_one_read_per_check_and_nothing_between_checks():
    steps = fooling_step_counts("location", "gradcam", steps=4, callbacks=[StopOnNonFiniteLoss(every=2)])
    assert [len(r) for _, _, r in steps] == [1, 0, 1, 0]
    assert all(s == [] and c == [] for s, c, _ in steps[1:])


def test_a_nan_on_the_step_stops_with_exit_3_and_the_weights_unchanged(capsys):
    """The same step as the harness's, on the CPU with values: a NaN loss raises in the guard before the update,
    and the command line's guard turns it into exit code 3."""
    torch.manual_seed(0)
    net = models.build("small_vgg", num_classes=4, width=4, hidden=8)
    module = FoolingModule(net, functools.partial(interpreters.REGISTRY["gradcam"]), LocationFooling(), lam=1.0,
                           lr=1e-3)._freeze_modes()
    module.adam = "fused"                    # the accelerator's path (fused Adam's found_inf), on the CPU
    opt, trainer, guard = module.configure_optimizers(), _StubTrainer(), StopOnNonFiniteLoss()
    trainer.optimizers = [opt]
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 4, (4,))

    def step(n, spoil=False):
        trainer.global_step = n
        loss = module.objective(x, y)["loss"] * (float("nan") if spoil else 1.0)
        guard.on_before_backward(trainer, module, loss)
        loss.backward()
        guard.on_before_optimizer_step(trainer, module, opt)
        opt.step()
        opt.zero_grad()
    step(0)
    before = {k: v.clone() for k, v in module.net.state_dict().items()}
    with pytest.raises(SystemExit) as stop:
        guarded(step, 1, spoil=True)
    assert stop.value.code == 3 and "loss is nan at step 1" in capsys.readouterr().err
    assert all(torch.equal(v, before[k]) for k, v in module.net.state_dict().items())
    with pytest.raises(NonFiniteLoss):                          # and it stays stopped
        step(2)
