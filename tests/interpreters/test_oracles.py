"""Agreement with independent implementations (Captum 0.9.0, pytorch-grad-cam 1.5.7, torchvision),
float64, small random networks, predicted-class targets.

Max relative deviation := max |ours - oracle| / max |oracle| (over the whole batch), must be <= 1e-5.
``python bench/oracle_table.py`` prints the table of measured values.
"""
from __future__ import annotations

import sys
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from unittest import mock

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from interp_testnets import inputs, max_rel_dev, predicted, small_resnet, small_vgg  # noqa: E402

from interpfool import interpreters  # noqa: E402
from interpfool.interpreters.paths import gaussian_blur, make_baseline  # noqa: E402
from interpfool.models import resolve_module  # noqa: E402

TOL = 1e-5
pytestmark = pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require gradients")


@lru_cache(maxsize=None)
def _setup(arch: str):
    if arch == "vgg":
        net, x = small_vgg(), inputs(3, 32)
        producer = net.features[10]        # its output is the input of the target layer features.11
    else:
        net, x = small_resnet(), inputs(2, 64)
        producer = net.layer3              # its output is the input of layer4.0
    return net, x, predicted(net, x), producer


def _softmax_net(net):
    return lambda z: torch.softmax(net(z), dim=1)


# -- Captum ----------------------------------------------------------------------------------------
def saliency(arch="vgg", score="logit"):
    from captum.attr import Saliency
    net, x, t, _ = _setup(arch)
    ours = interpreters.build("simpleg", net, score=score).attribution(x, t)
    ref = Saliency(net if score == "logit" else _softmax_net(net)).attribute(x, target=t, abs=True)
    return max_rel_dev(ours, ref)


def input_x_gradient(arch="vgg"):
    from captum.attr import InputXGradient
    net, x, t, _ = _setup(arch)
    return max_rel_dev(interpreters.build("gradinput", net).attribution(x, t),
                       InputXGradient(net).attribute(x, target=t))


def layer_gradient(arch="vgg"):
    """simplegT: |dS/dA| at the layer input = Captum LayerGradientXActivation without the activation."""
    from captum.attr import LayerGradientXActivation
    net, x, t, _ = _setup(arch)
    layer = resolve_module(net, net.target_layer)
    ref = LayerGradientXActivation(net, layer, multiply_by_inputs=False).attribute(
        x, target=t, attribute_to_layer_input=True).abs()
    return max_rel_dev(interpreters.build("simplegT", net).attribution(x, t), ref)


def integrated_gradients(method="riemann_right", baseline="zeros", steps=16, arch="vgg"):
    from captum.attr import IntegratedGradients
    net, x, t, _ = _setup(arch)
    interp = interpreters.build("ig", net, steps=steps, method=method, baseline=baseline)
    ours = interp.attribution(x, t)
    if method == "riemann_trapezoid":   # Captum's trapezoid weights sum to (n-1)/n, see paths.quadrature
        ours = ours * (steps - 1) / steps
    ref = IntegratedGradients(net).attribute(x, baselines=make_baseline(x, baseline), target=t,
                                             n_steps=steps, method=method)
    return max_rel_dev(ours, ref)


def noise_tunnel(arch="vgg", n=6):
    """SmoothGrad vs NoiseTunnel(Saliency) fed the very noise our SmoothGrad draws (Captum's own
    noise comes from the global RNG in float32 and cannot be matched otherwise)."""
    from captum.attr import NoiseTunnel, Saliency
    net, x, t, _ = _setup(arch)
    interp = interpreters.build("smoothgrad", net, n=n, sigma=0.2, seed=3, chunk_size=4)
    ours = interp.attribution(x, t)
    noise = interp.noise(x).transpose(0, 1).reshape(-1, *x.shape[1:])    # sample-major, as Captum

    def add_our_noise(inp, stdev, nt_samples_partition):
        assert nt_samples_partition == n
        return inp.repeat_interleave(n, dim=0) + noise

    with mock.patch("captum.attr._core.noise_tunnel.NoiseTunnel._add_noise_to_input", staticmethod(add_our_noise)):
        ref = NoiseTunnel(Saliency(net)).attribute(x, nt_type="smoothgrad", nt_samples=n, stdevs=1.0, target=t)
    return max_rel_dev(ours, ref)


def captum_layer_gradcam(arch="vgg"):
    from captum.attr import LayerGradCam
    net, x, t, _ = _setup(arch)
    ref = LayerGradCam(net, resolve_module(net, net.target_layer)).attribute(
        x, target=t, attribute_to_layer_input=True, relu_attributions=True)[:, 0]
    return max_rel_dev(interpreters.build("gradcam", net, normalize="none")(x, t), ref)


def blur_baseline():
    from torchvision.transforms.functional import gaussian_blur as tv_blur
    x = inputs(2, 32)
    return max_rel_dev(gaussian_blur(x, 2.0), tv_blur(x, [13, 13], [2.0, 2.0]))


# -- pytorch-grad-cam --------------------------------------------------------------------------------
@contextmanager
def _unscaled_cams():
    """pytorch-grad-cam min-max scales and resizes in ``scale_cam_image``: make it the identity, so its
    public __call__ returns the raw ReLU(sum_k w_k A^k) at layer resolution."""
    with mock.patch("pytorch_grad_cam.base_cam.scale_cam_image", lambda cam, target_size=None: cam):
        yield


def pgc_cam(ours_name="gradcam", arch="vgg", score="logit"):
    from pytorch_grad_cam import GradCAM, GradCAMPlusPlus
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget, ClassifierOutputTarget
    net, x, t, producer = _setup(arch)
    cls = {"gradcam": GradCAM, "gradcampp": GradCAMPlusPlus}[ours_name]
    target_cls = ClassifierOutputTarget if score == "logit" else ClassifierOutputSoftmaxTarget
    ours = interpreters.build(ours_name, net, score=score, normalize="none")(x, t)
    with _unscaled_cams(), cls(model=net, target_layers=[producer]) as cam:
        ref = torch.from_numpy(cam(input_tensor=x, targets=[target_cls(int(c)) for c in t]))
    net.zero_grad(set_to_none=True)   # pytorch-grad-cam called .backward()
    return max_rel_dev(ours, ref)


# -- reference loops written from the definitions ---------------------------------------------------
def _layer_input(net, module, z):
    store = {}
    handle = module.register_forward_pre_hook(lambda _m, args: store.__setitem__("a", args[0]))
    try:
        logits = net(z)
    finally:
        handle.remove()
    return logits, store["a"]


def rsi_reference_loop(net, x, t, steps, positive_grads=False):
    """The reference notebook's algorithm (github.com/mlerma54/RSIGradCAM, RSI_GradCamModel.compute_heatmap):
    one image and one path point at a time, softmax score, black baseline, trapezoid Riemann-Stieltjes sum,
    channel weights = spatial mean; summed over channels (the notebook averages: a constant factor)."""
    layer = resolve_module(net, net.target_layer)
    base = make_baseline(x, "black")
    maps = []
    for b in range(x.shape[0]):
        acts, grads = [], []
        for a in torch.linspace(0, 1, steps + 1, dtype=x.dtype):
            z = (base[b] + a * (x[b] - base[b]))[None].requires_grad_(True)
            logits, act = _layer_input(net, layer, z)
            (g,) = torch.autograd.grad(torch.softmax(logits, 1)[0, t[b]], act)
            acts.append(act.detach())
            grads.append(torch.relu(g) if positive_grads else g)
        acts, grads = torch.stack(acts), torch.stack(grads)
        integral = ((grads[:-1] + grads[1:]) / 2 * (acts[1:] - acts[:-1])).sum(0)
        weights = integral.mean(dim=(2, 3))
        maps.append(torch.relu((weights[:, :, None, None] * acts[-1]).sum(1))[0])
    return torch.stack(maps)


def rsigradcam_reference(arch="vgg", steps=6, positive_grads=False):
    net, x, t, _ = _setup(arch)
    ours = interpreters.build("rsigradcam", net, steps=steps, normalize="none", chunk_size=4,
                              positive_grads=positive_grads)(x, t)
    return max_rel_dev(ours, rsi_reference_loop(net, x, t, steps, positive_grads))


def gradcam_pos_reference(arch="vgg"):
    """w_k = mean ReLU(dS/dA^k) (Lerma & Lucas), one image at a time."""
    net, x, t, _ = _setup(arch)
    layer = resolve_module(net, net.target_layer)
    maps = []
    for b in range(x.shape[0]):
        logits, act = _layer_input(net, layer, x[b:b + 1])
        (g,) = torch.autograd.grad(logits[0, t[b]], act)
        maps.append(torch.relu((torch.relu(g).mean(dim=(2, 3))[:, :, None, None] * act).sum(1))[0].detach())
    return max_rel_dev(interpreters.build("gradcam_pos", net, normalize="none")(x, t), torch.stack(maps))


# interpreter, oracle, thunk
CASES = [
    ("simpleg", "Captum Saliency(abs=True), small VGG", lambda: saliency("vgg")),
    ("simpleg score=prob", "Captum Saliency on softmax(net), small VGG", lambda: saliency("vgg", "prob")),
    ("simpleg", "Captum Saliency(abs=True), small ResNet", lambda: saliency("resnet")),
    ("gradinput", "Captum InputXGradient, small VGG", lambda: input_x_gradient("vgg")),
    ("gradinput", "Captum InputXGradient, small ResNet", lambda: input_x_gradient("resnet")),
    ("simplegT", "Captum LayerGradientXActivation(multiply_by_inputs=False, layer input), abs, small VGG",
     lambda: layer_gradient("vgg")),
    ("simplegT", "same, small ResNet", lambda: layer_gradient("resnet")),
    ("ig riemann_right, 16 steps, zeros", "Captum IntegratedGradients", lambda: integrated_gradients()),
    ("ig riemann_left, 16 steps, black", "Captum IntegratedGradients",
     lambda: integrated_gradients("riemann_left", "black")),
    ("ig riemann_middle, 16 steps, blur", "Captum IntegratedGradients",
     lambda: integrated_gradients("riemann_middle", "blur")),
    ("ig riemann_trapezoid, 16 steps x 15/16", "Captum IntegratedGradients",
     lambda: integrated_gradients("riemann_trapezoid", "zeros")),
    ("ig gausslegendre, 16 steps", "Captum IntegratedGradients", lambda: integrated_gradients("gausslegendre")),
    ("ig riemann_right, 8 steps, zeros", "Captum IntegratedGradients, small ResNet",
     lambda: integrated_gradients(arch="resnet", steps=8)),
    ("ig blur baseline (sigma 2)", "torchvision gaussian_blur(kernel 13)", blur_baseline),
    ("smoothgrad n=6", "Captum NoiseTunnel(Saliency), same noise", lambda: noise_tunnel()),
    ("gradcam", "pytorch-grad-cam GradCAM (unscaled), small VGG", lambda: pgc_cam("gradcam", "vgg")),
    ("gradcam", "pytorch-grad-cam GradCAM (unscaled), small ResNet", lambda: pgc_cam("gradcam", "resnet")),
    ("gradcam score=prob", "pytorch-grad-cam GradCAM + ClassifierOutputSoftmaxTarget",
     lambda: pgc_cam("gradcam", "vgg", "prob")),
    ("gradcam", "Captum LayerGradCam(layer input, relu), small VGG", lambda: captum_layer_gradcam("vgg")),
    ("gradcam", "Captum LayerGradCam(layer input, relu), small ResNet", lambda: captum_layer_gradcam("resnet")),
    ("gradcampp", "pytorch-grad-cam GradCAMPlusPlus (unscaled), small VGG", lambda: pgc_cam("gradcampp", "vgg")),
    ("gradcampp", "pytorch-grad-cam GradCAMPlusPlus (unscaled), small ResNet",
     lambda: pgc_cam("gradcampp", "resnet")),
    ("gradcam_pos", "per-image loop from the definition", lambda: gradcam_pos_reference()),
    ("rsigradcam 6 steps", "per-image, per-point loop of the reference notebook", lambda: rsigradcam_reference()),
    ("rsigradcam 6 steps positive_grads", "same loop with ReLU(g) (notebook 2023-09)",
     lambda: rsigradcam_reference(positive_grads=True)),
]


@pytest.mark.parametrize("case", range(len(CASES)), ids=[f"{i:02d}-{c[0]}" for i, c in enumerate(CASES)])
def test_oracle_agreement(case):
    interp, oracle, thunk = CASES[case]
    dev = thunk()
    print(f"{interp} | {oracle} | {dev:.2e}")
    assert dev <= TOL, f"{interp} vs {oracle}: max relative deviation {dev:.3e} > {TOL}"
