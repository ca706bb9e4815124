import pytest
import torch

# The test nets are tiny: one thread avoids OpenMP overhead, which on a shared 2-core CPU made
# them 3-20x slower with two threads. Subprocess tests set OMP_NUM_THREADS=1 for the same reason.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def compose_cfg():
    """Compose ``conf/config.yaml`` with overrides through Hydra's compose API (as train.py would)."""
    from interpfool.experiment.cli import compose_config

    def make(overrides):
        return compose_config("config", overrides)
    return make
