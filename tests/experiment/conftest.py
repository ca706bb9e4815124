import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from interpfool.experiment.cli import CONF_DIR

# A run small enough for the test suite: tiny data, one epoch of original training, 2 fooling steps.
TINY = ["data.train_size=48", "data.val_size=16", "data.test_size=8", "data.eval_batch_size=16", "data.batch_size=8",
        "original.epochs=1", "original.batch_size=16", "trainer.max_steps=2", "trainer.val_check_interval=1",
        "eval.figure_images=2", "model.width=4"]


@pytest.fixture
def compose_cfg():
    def make(overrides):
        GlobalHydra.instance().clear()
        try:
            with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
                return compose(config_name="config", overrides=overrides)
        finally:
            GlobalHydra.instance().clear()
    return make
