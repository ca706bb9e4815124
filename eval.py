"""Evaluate fooled models: `python eval.py ckpt=path/to/run_or_fooled.pt [key=value ...]`.

Computes accuracy, FSR of every interpreter in eval.interpreters (the transfer row), localisation,
per-image test losses (CSV), AOPC curves, parameter-noise robustness and explanation-time defenses
(eval.defenses); writes report.json and the figures into the output folder and logs them (W&B offline by
default). `ckpt=[runA,runB]` with models of one fooling also writes the transfer matrix.

`python eval.py audit ckpt=... [audit.reference=original]`: evidence that the model's explanations were
manipulated (src/interpfool/jobs/audit.py), written to audit.json. Bad input: one line on stderr, exit code 2.
"""
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from interpfool.experiment.cli import guarded, preflight


@hydra.main(config_path="conf", config_name="eval", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from interpfool.jobs.eval import run_eval
    hc = HydraConfig.get()
    guarded(run_eval, cfg, Path(hc.runtime.output_dir), list(hc.overrides.task))


@hydra.main(config_path="conf", config_name="audit", version_base="1.3")
def audit(cfg: DictConfig) -> None:
    from interpfool.jobs.audit import run_audit
    hc = HydraConfig.get()
    guarded(run_audit, cfg, Path(hc.runtime.output_dir), list(hc.overrides.task))


if __name__ == "__main__":
    if sys.argv[1:2] == ["audit"]:
        del sys.argv[1]
        preflight("audit", sys.argv[1:])
        audit()
    else:
        preflight("eval", sys.argv[1:])
        main()
