"""Hydra launcher ``hydra/launcher=local_gpus`` (conf/hydra/launcher/local_gpus.yaml): a multirun's jobs in
parallel on one machine, one per visible GPU (or block of GPUs); see ``interpfool.experiment.local_gpus``.

Hydra only instantiates launchers found under the ``hydra_plugins`` namespace package, hence this package
(no ``hydra_plugins/__init__.py``: the namespace is shared with the installed plugins)."""
