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
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from interpfool.experiment.cli import CONF_DIR

    def make(overrides):
        GlobalHydra.instance().clear()
        try:
            with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
                return compose(config_name="config", overrides=overrides)
        finally:
            GlobalHydra.instance().clear()
    return make
