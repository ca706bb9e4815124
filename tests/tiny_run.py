# A run small enough for the test suite: tiny data, one epoch of original training, 2 fooling steps.
# (The compose_cfg fixture lives in tests/conftest.py.) Import it as `from tiny_run import TINY`.
TINY = ["data.train_size=48", "data.val_size=16", "data.test_size=8", "data.eval_batch_size=16", "data.batch_size=8",
        "original.epochs=1", "original.batch_size=16", "trainer.max_steps=2", "trainer.val_check_interval=1",
        "eval.figure_images=2", "model.width=4", "eval.split=val"]


def compose(name: str, overrides: list[str]):
    """Compose ``conf/<name>.yaml`` with ``overrides`` through Hydra's compose API (as the entry points would)."""
    from interpfool.experiment.cli import compose_config
    return compose_config(name, overrides)
