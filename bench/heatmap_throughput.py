"""(b) Heatmap throughput (images/s) against the peer libraries, same model, batch and device,
with the maximum deviation between the maps (max |ours - peer| / max |peer|, maps compared at
the layer's native resolution, un-normalised).

Pairs: gradcam vs pytorch-grad-cam GradCAM and Captum LayerGradCam; lrp vs Zennit EpsilonPlus
(epsilon 0.01, our `zennit_epsilon_plus` composite); ig (50 steps, riemann_right) vs Captum
IntegratedGradients; smoothgrad (n=8) vs Captum NoiseTunnel(Saliency), both fed our seeded noise (Captum's
noise hook patched to draw it on each call, as ours does), so the maps must agree.

    python bench/heatmap_throughput.py --device cuda --model vgg19 --batch 32
    python bench/heatmap_throughput.py --device cpu --model vgg19 --batch 4 --size 112 --reps 3
"""
from __future__ import annotations

import argparse
import warnings
from unittest import mock

import _common
import torch

from interpfool import interpreters
from interpfool.models import resolve_module

warnings.filterwarnings("ignore")


def max_rel_dev(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double().cpu(), b.detach().double().cpu()     # pytorch-grad-cam returns host arrays
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--model", default="vgg19", choices=["vgg19", "resnet50"])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--ig-steps", type=int, default=50)
    p.add_argument("--sg-samples", type=int, default=8)
    p.add_argument("--only", default="gradcam,lrp,ig,smoothgrad")
    p.add_argument("--no-tf32", action="store_true", help="TF32 off for cuDNN convolutions too (torch's default is on)")
    p.add_argument("--glibc-malloc", action="store_true",
                   help="leave glibc malloc at its defaults (runs set backends.reuse_host_memory=true; both sides of "
                        "every pair share the process, so the setting is the same for both)")
    p.add_argument("--no-record", action="store_true")
    args = p.parse_args()
    device = torch.device(args.device)
    from interpfool.experiment.host_memory import reuse_host_memory
    allocator = reuse_host_memory(not args.glibc_malloc)
    if args.no_tf32:
        from interpfool.models.determinism import apply_backends
        apply_backends(allow_tf32=False)
    net, x = _common.random_model_and_batch(args.model, args.batch, args.size, device)
    with torch.no_grad():
        target = net(x).argmax(1)
    layer = resolve_module(net, net.target_layer)
    rows = []

    def compare(ours_name, ours, peer_name, peer, ours_map=None):
        a, b = ours(), peer()
        t = _common.interleaved_medians({"ours": ours, "peer": peer}, device, reps=args.reps, warmup=1)
        rows.append([ours_name, peer_name, args.batch / t["ours"], args.batch / t["peer"], t["peer"] / t["ours"],
                     max_rel_dev(a, b)])
        print(rows[-1], flush=True)

    only = args.only.split(",")
    if "gradcam" in only:
        ours = interpreters.build("gradcam", net, normalize="none")
        from captum.attr import LayerGradCam
        from pytorch_grad_cam import GradCAM
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        # pytorch-grad-cam hooks a module's output: the target is the input of `layer`, i.e. the output of
        # the module just before it (VGG19 features.33, ResNet50 layer4.1).
        before = {"vgg19": "features.33", "resnet50": "layer4.1"}[args.model]
        pgc = GradCAM(model=net, target_layers=[resolve_module(net, before)])
        targets = [ClassifierOutputTarget(int(c)) for c in target]

        def pgc_map():
            with mock.patch("pytorch_grad_cam.base_cam.scale_cam_image", lambda cam, target_size=None: cam):
                return torch.as_tensor(pgc(input_tensor=x, targets=targets))
        compare("gradcam", lambda: ours(x, target), "pytorch-grad-cam GradCAM", pgc_map)
        lgc = LayerGradCam(net, layer)
        compare("gradcam", lambda: ours(x, target), "Captum LayerGradCam",
                lambda: torch.relu(lgc.attribute(x, target=target, attribute_to_layer_input=True)[:, 0]))
    if "lrp" in only:
        ours = interpreters.build("lrp", net, composite="zennit_epsilon_plus", normalize="none")
        from zennit.attribution import Gradient
        from zennit.composites import EpsilonPlus

        from interpfool.lrp.zennit_oracle import canonizers_for

        def zennit_map():
            composite = EpsilonPlus(epsilon=0.01, canonizers=canonizers_for(net))
            with Gradient(model=net, composite=composite) as attributor:
                # relevance starts from the target logit, as ours does
                _, rel = attributor(x, lambda out: torch.nn.functional.one_hot(target, out.shape[1]).to(out.dtype) * out)
            return rel.sum(1)
        compare("lrp", lambda: ours(x, target), "Zennit EpsilonPlus", zennit_map)
    if "ig" in only:
        # the same batching on both sides: 10 path points of the whole batch per forward (Captum counts images)
        ours = interpreters.build("ig", net, steps=args.ig_steps, method="riemann_right", baseline="zeros",
                                  chunk_size=10)
        from captum.attr import IntegratedGradients
        ig = IntegratedGradients(net)
        compare(f"ig ({args.ig_steps} steps)", lambda: ours.attribution(x, target).sum(1), "Captum IntegratedGradients",
                lambda: ig.attribute(x, target=target, n_steps=args.ig_steps, method="riemann_right",
                                     internal_batch_size=args.batch * 10).sum(1))
    if "smoothgrad" in only:
        # Both sides add the very same noise (ours, seeded: the portable stream), fed to Captum through its
        # noise hook as the oracle test does, so the maps must agree. The hook draws it on every call, as ours
        # does, so both sides pay the same draw (the portable stream costs more than torch.randn: see the notes).
        ours = interpreters.build("smoothgrad", net, n=args.sg_samples, sigma=0.15, seed=0, normalize="none")
        from captum.attr import NoiseTunnel, Saliency
        nt = NoiseTunnel(Saliency(net))

        def add_our_noise(inp, stdev, nt_samples_partition):
            noise = ours.noise(x).transpose(0, 1).reshape(-1, *x.shape[1:])     # sample-major, as Captum stacks
            return inp.repeat_interleave(args.sg_samples, dim=0) + noise

        def captum_map():
            with mock.patch("captum.attr._core.noise_tunnel.NoiseTunnel._add_noise_to_input",
                            staticmethod(add_our_noise)):
                return nt.attribute(x, nt_type="smoothgrad", nt_samples=args.sg_samples, stdevs=1.0,
                                    target=target).sum(1)
        compare(f"smoothgrad (n={args.sg_samples})", lambda: ours(x, target), "Captum NoiseTunnel(Saliency), same noise",
                captum_map)
    table = _common.markdown_table(["ours", "peer", "ours (img/s)", "peer (img/s)", "speed-up (x)",
                                    "max rel. deviation"], rows)
    notes = (f"{args.model}, batch {args.batch}, {args.size}x{args.size}, float32, median of {args.reps}, "
             f"cuDNN TF32 {'off' if args.no_tf32 else 'on (torch default)'}; {allocator}")
    _common.record("Heatmap throughput vs peers (b)", table, device, notes, print_only=args.no_record)


if __name__ == "__main__":
    main()
