"""The fooling objective: exact second-order gradients, one backward, eval mode kept."""
import functools

import torch

from interpfool import interpreters, models
from interpfool.fooling import FoolingModule, LocationFooling
from interpfool.gradcheck import directional_fd_check


def _module(dtype=torch.float64):
    net = models.build("small_vgg", num_classes=5, width=4, hidden=8).to(dtype)
    return FoolingModule(net, functools.partial(interpreters.REGISTRY["gradcam"]), LocationFooling(), lam=3.0, lr=1e-3)


def test_gradcam_location_objective_matches_finite_differences():
    """d(CE + lambda * location(Grad-CAM))/dtheta by double backprop equals central differences
    (float64), for conv, BatchNorm and linear parameters."""
    module = _module()
    module.train()
    x = torch.randn(3, 3, 32, 32, dtype=torch.float64)
    y = torch.tensor([0, 3, 1])
    names = ["features.0.weight", "features.1.weight", "features.9.bias", "features.11.weight",
             "features.12.weight", "classifier.0.weight", "classifier.3.bias"]
    result = directional_fd_check(lambda: module.objective(x, y)["loss"], module.net, names)
    for name, (analytic, numeric, rel) in result.items():
        assert rel < 1e-4, (name, analytic, numeric)
    # the penalty really contributes: its gradient alone is non-zero on a BN parameter
    pen = module.objective(x, y)["penalty"]
    (g,) = torch.autograd.grad(pen, module.net.features[1].weight)
    assert g.abs().sum() > 0


def test_module_keeps_eval_mode_and_frozen_copy():
    module = _module(torch.float32)
    module.train()
    assert not module.net.training and not module.net0.training
    assert all(not p.requires_grad for p in module.net0.parameters())
    assert all(p.requires_grad for p in module.net.parameters())
    before = [p.clone() for p in module.net0.parameters()]
    opt = module.configure_optimizers()
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([0, 1])
    loss = module.training_step((x, y), 0)
    loss.backward()
    opt.step()
    assert all(torch.equal(a, b) for a, b in zip(before, module.net0.parameters()))
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.net.parameters())
    assert all(p.grad is None for p in module.net0.parameters())


def test_batchnorm_statistics_stay_frozen_through_a_real_fit():
    """Lightning restores submodule modes behind train()'s back; the module must keep eval mode,
    so BatchNorm running statistics are bit-identical after fitting."""
    import lightning as L
    from torch.utils.data import DataLoader, TensorDataset

    module = _module(torch.float32)
    stats = {k: v.clone() for k, v in module.net.state_dict().items() if "running" in k}
    data = TensorDataset(torch.randn(16, 3, 32, 32), torch.randint(0, 5, (16,)))
    trainer = L.Trainer(max_steps=4, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, inference_mode=False, val_check_interval=2,
                        check_val_every_n_epoch=None, num_sanity_val_steps=0)
    trainer.fit(module, DataLoader(data, batch_size=4), DataLoader(data, batch_size=8))
    after = module.net.state_dict()
    assert all(torch.equal(stats[k], after[k]) for k in stats)
    assert trainer.global_step == 4


def test_active_objective_ce_on_images_penalty_on_collages_matches_finite_differences():
    """Active fooling: CE on the image batch, the swap penalty on the collage batch (maps for c1 and c2
    from one forward), one loss; its double-backprop gradient equals central differences (float64)."""
    from interpfool.fooling import ActiveFooling

    net = models.build("small_vgg", num_classes=5, width=4, hidden=8).to(torch.float64)
    module = FoolingModule(net, functools.partial(interpreters.REGISTRY["gradcam"]), ActiveFooling(1, 3),
                           lam=3.0, lr=1e-3)
    module.train()                                 # eval mode, as in fitting
    with torch.no_grad():                          # move theta away from theta0: a non-zero penalty
        for p in module.net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    x, y = torch.randn(2, 3, 32, 32, dtype=torch.float64), torch.tensor([1, 3])
    xc = torch.randn(3, 3, 32, 32, dtype=torch.float64)
    out = module.objective(x, y, xc)
    assert out["maps"].shape == (3, 2, 8, 8) and out["penalty"] > 0
    names = ["features.0.weight", "features.8.weight", "features.12.weight", "classifier.3.bias"]
    result = directional_fd_check(lambda: module.objective(x, y, xc)["loss"], module.net, names)
    for name, (analytic, numeric, rel) in result.items():
        assert rel < 1e-4, (name, analytic, numeric)
    batch = {"images": (x, y, None), "collage": (xc, None)}
    assert torch.equal(module.split_batch(batch)[2], xc)
    import pytest
    with pytest.raises(ValueError, match="needs a collage batch"):
        module.objective(x, y)


def test_original_map_cache_computes_each_image_once_and_changes_no_value():
    """theta0's Top-k maps cached per dataset index: the same maps (and loss) as recomputing them, and
    theta0's interpreter runs only for images not seen before."""
    from interpfool.fooling import TopKFooling

    torch.manual_seed(0)
    net = models.build("small_vgg", num_classes=5, width=4, hidden=8).to(torch.float64).eval()   # no dropout
    make = functools.partial(interpreters.REGISTRY["gradcam"])
    cached = FoolingModule(net, make, TopKFooling(), lam=3.0, lr=1e-3, original_cache=10)
    plain = FoolingModule(net, make, TopKFooling(), lam=3.0, lr=1e-3)
    x = torch.randn(10, 3, 32, 32, dtype=torch.float64)
    y = torch.tensor([0, 3, 1, 4, 2, 0, 1, 2, 3, 4])
    seen = []
    forward = cached.interp0.forward
    cached.interp0.forward = lambda inputs: seen.append(inputs.shape[0]) or forward(inputs)
    first, second = torch.tensor([0, 1, 2, 3]), torch.tensor([2, 3, 4, 5])
    for index in (first, second, first, torch.arange(10)):
        got = cached.original_maps(x[index], y[index], index)
        assert torch.equal(got, plain.original_maps(x[index], y[index]))
    assert seen == [4, 2, 4]                       # 4 new, then 2 new (4, 5), then nothing, then 6..9
    out_cached = cached.objective(x[second], y[second], index=second)
    out_plain = plain.objective(x[second], y[second])
    assert torch.equal(out_cached["loss"], out_plain["loss"])


def test_selection_score_ranks_admissible_validations_first():
    from interpfool.fooling.module import selection_score

    t = torch.tensor
    inside = selection_score(t(0.70), t(2.9), 3.0)
    outside = selection_score(t(1.00), t(3.1), 3.0)
    assert inside > outside and outside < 0                     # 100% FSR at a 3.1-point drop loses
    assert selection_score(t(0.80), t(0.5), 3.0) > selection_score(t(0.80), t(1.5), 3.0)   # tie: smaller drop
    assert selection_score(t(0.8025), t(3.0), 3.0) > selection_score(t(0.80), t(-1.0), 3.0)  # FSR first


def test_original_map_cache_decides_on_the_host_before_the_batch_moves():
    """on_before_batch_transfer marks which images of an indexed training batch are new (on the CPU index), so
    the step reads the cache without asking the device; validation batches (3 items) pass unchanged."""
    from types import SimpleNamespace

    from interpfool.fooling import TopKFooling

    torch.manual_seed(0)
    net = models.build("small_vgg", num_classes=5, width=4, hidden=8).to(torch.float64).eval()
    module = FoolingModule(net, functools.partial(interpreters.REGISTRY["gradcam"]), TopKFooling(), lam=3.0,
                           lr=1e-3, original_cache=6)
    module._trainer = SimpleNamespace(training=True)
    x = torch.randn(4, 3, 32, 32, dtype=torch.float64)
    y, mask = torch.tensor([0, 3, 1, 4]), torch.zeros(4, 32, 32, dtype=torch.bool)
    first = module.on_before_batch_transfer([x, y, mask, torch.tensor([0, 1, 2, 3])], 0)
    second = module.on_before_batch_transfer([x, y, mask, torch.tensor([2, 3, 4, 5])], 0)
    # batch positions of the new images (an integer index: the step needs no boolean-mask indexing)
    assert first[4].tolist() == [0, 1, 2, 3] and first[5] is True
    assert second[4].tolist() == [2, 3] and second[5] is True
    again = module.on_before_batch_transfer([x, y, mask, torch.tensor([0, 1, 2, 3])], 0)
    assert again[4].tolist() == [] and again[5] is False
    assert len(module.on_before_batch_transfer([x, y, mask], 0)) == 3
    calls = []
    forward = module.interp0.forward
    module.interp0.forward = lambda inputs: calls.append(inputs.shape[0]) or forward(inputs)
    h_first = module.original_maps(x, y, first[3], (first[4], first[5]))
    h_again = module.original_maps(x, y, again[3], (again[4], again[5]))
    assert calls == [4] and torch.equal(h_first, h_again)       # the second read computed nothing


def test_checkpoints_leave_out_theta0_and_resume_with_it(tmp_path):
    """theta0 is frozen and reproducible from its cache: checkpoints hold theta* only, and loading one restores
    theta* while theta0 stays the module's own."""
    import lightning as L
    from torch.utils.data import DataLoader, TensorDataset

    from interpfool.fooling import LocationFooling

    torch.manual_seed(0)
    net = models.build("small_vgg", num_classes=3, width=4, hidden=8)
    module = FoolingModule(net, functools.partial(interpreters.REGISTRY["gradcam"]), LocationFooling(), lr=1e-2,
                           target="pred")
    trainer = L.Trainer(max_steps=2, logger=False, enable_progress_bar=False, enable_model_summary=False,
                        inference_mode=False, limit_val_batches=0, default_root_dir=str(tmp_path))
    trainer.fit(module, DataLoader(TensorDataset(torch.randn(8, 3, 32, 32), torch.randint(0, 3, (8,))), batch_size=4))
    trainer.save_checkpoint(tmp_path / "x.ckpt")
    state = torch.load(tmp_path / "x.ckpt", weights_only=False)["state_dict"]
    assert state and not any(k.startswith("net0.") for k in state)
    fresh = FoolingModule(models.build("small_vgg", num_classes=3, width=4, hidden=8),
                          functools.partial(interpreters.REGISTRY["gradcam"]), LocationFooling(), target="pred")
    theta0 = {k: v.clone() for k, v in fresh.net0.state_dict().items()}
    fresh.load_state_dict(state)
    assert all(torch.equal(fresh.net.state_dict()[k], v) for k, v in module.net.state_dict().items())
    assert all(torch.equal(fresh.net0.state_dict()[k], v) for k, v in theta0.items())


def test_fooling_adam_picks_torchs_implementation_and_all_give_the_same_update():
    """fooling.adam: auto keeps torch's default Adam on the CPU (bit for bit the numbers measured before);
    fused / foreach / for_loop are the same update to float rounding over 10 fooling steps."""
    import pytest

    x, y = torch.randn(6, 3, 32, 32), torch.tensor([0, 3, 1, 2, 4, 0])
    nets = {}
    for adam in ("auto", "fused", "foreach", "for_loop"):
        torch.manual_seed(0)
        module = _module(torch.float32)
        module.adam = adam
        opt = module.configure_optimizers()
        assert (opt.defaults["fused"], opt.defaults["foreach"]) == {
            "auto": (None, None), "fused": (True, None), "foreach": (None, True), "for_loop": (None, False)}[adam]
        module.train()
        for _ in range(10):
            opt.zero_grad()
            module.objective(x, y)["loss"].backward()
            opt.step()
        nets[adam] = module.net.state_dict()
    torch.manual_seed(0)
    start = _module(torch.float32).net.state_dict()
    assert all(torch.equal(nets["auto"][k], v) for k, v in nets["for_loop"].items())     # CPU default = for-loop
    for adam in ("fused", "foreach"):
        for k, v in nets["for_loop"].items():
            torch.testing.assert_close(nets[adam][k], v, rtol=1e-5, atol=1e-6)
    assert any(not torch.equal(nets["fused"][k], v) for k, v in start.items())          # the steps moved theta
    with pytest.raises(ValueError, match=r"^fooling.adam='fast'; allowed: auto, fused, foreach, for_loop$"):
        FoolingModule(models.build("small_vgg", num_classes=5, width=4, hidden=8),
                      functools.partial(interpreters.REGISTRY["gradcam"]), LocationFooling(), adam="fast")
