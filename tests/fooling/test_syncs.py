"""No host-device synchronisation and no host-to-device copy inside a steady-state training step (after the
first) of every fooling x {gradcam, lrpT, simplegT, smoothgrad, ig}: forward, maps with create_graph, penalty,
theta0's maps for new images (the per-image cache), logging, backward and Adam step (``sync_harness``).

Counts on the code before this test existed (steady-state step; syncs / host-to-device copies):
location 3 / 0 (ig: 3 / 2), topk 7 / 0 (ig 7 / 4), center_mass 7 / 2 (ig 7 / 6), active 2 / 0 (ig 2 / 8) —
label range check (interpreters/base.py), float(zero_map_share), the NaN guard, boolean-mask indexing of the
theta0 map cache, IG's quadrature nodes and center-mass's grid centre copied from the host. Now 0 / 0 without
the NaN guard; the guard (``nan_check_every``) reads one flag per check, by design: it must stop before the update.
"""
import pytest

from interpfool.experiment.callbacks import StopOnNonFiniteLoss
from sync_harness import fooling_step_counts

FOOLINGS = ["location", "topk", "center_mass", "active"]
INTERPS = ["gradcam", "lrpT", "simplegT", "smoothgrad", "ig"]


@pytest.mark.parametrize("interp", INTERPS)
@pytest.mark.parametrize("fooling", FOOLINGS)
def test_steady_state_training_step_has_no_sync_and_no_host_copy(fooling, interp):
    syncs, copies = fooling_step_counts(fooling, interp)[-1]
    assert syncs == [] and copies == []


def test_nan_guard_reads_one_flag_per_check_and_nothing_between_checks():
    steps = fooling_step_counts("location", "gradcam", steps=3, callbacks=[StopOnNonFiniteLoss(every=2)])
    assert [len(s) for s, _ in steps[1:]] == [0, 1]          # step 1: skipped; step 2: checked
    assert all(c == [] for _, c in steps[1:])
