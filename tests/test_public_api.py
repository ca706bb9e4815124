"""DESIGN.md section 3's public API stays importable and callable as written there, whatever the layout inside."""
import subprocess
import sys

import torch

DESIGN_SNIPPET = '''
from interpfool import interpreters, models
net = models.build("small_vgg", num_classes=8, width=4).eval()
assert isinstance(net.target_layer, str)
x, y = torch.rand(2, 3, 64, 64), torch.tensor([1, 2])
for name in ("gradcam", "lrpT", "lrp", "simpleg", "simplegT", "gradinput", "smoothgrad", "ig", "gradcampp",
             "gradcam_pos", "rsigradcam"):
    h = interpreters.build(name, net)(x, y)
    assert h.ndim == 3 and h.shape[0] == 2 and torch.isfinite(h).all(), (name, h.shape)   # [B, H, W] (T layer: its grid)
h = interpreters.build("gradcam", net, layer=net.target_layer, score="prob")(x, "pred", create_graph=True)
assert h.requires_grad
shifted = models.presoftmax_shift(net.eval(), k=10.0, position=(0, 0))
assert torch.allclose(shifted(x).softmax(1).float(), net(x).softmax(1), atol=1e-6)   # logits in float64 by default
'''


def test_design_api_runs_in_a_fresh_process():
    """A fresh interpreter: the names must come from the package's own imports, not from what tests loaded."""
    proc = subprocess.run([sys.executable, "-c", "import torch\ntorch.manual_seed(0)\n" + DESIGN_SNIPPET],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_jobs_are_one_module_each():
    from interpfool.jobs import JOBS
    import importlib
    for job, module in JOBS.items():
        assert callable(importlib.import_module(module).run), job
    import interpfool.jobs.eval as eval_job
    assert callable(eval_job.run_eval)
