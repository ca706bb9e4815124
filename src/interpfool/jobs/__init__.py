"""One module per Hydra job, picked by the config's ``job:`` key (``train.py``) or by its entry point (``eval.py``).

Each module holds its whole job; the machinery they share (CLI and errors, config schema, build and checks,
loggers, guards, the theta0 cache) lives in ``interpfool.experiment``.
"""
JOBS = {
    "fool": "interpfool.jobs.train",    # fine-tune theta0 so that its explanations are fooled (Heo et al. 2019)
    "lerma": "interpfool.jobs.lerma",   # measure the pre-softmax manipulation (Lerma & Lucas 2023), no training
    "attacks": "interpfool.jobs.attacks",   # input attacks on theta0 (FGSM, BIM / PGD, explanation attacks)
    "adv_fooling": "interpfool.jobs.adv_fooling",   # free adversarial training, then fooling with it kept (Heo Fig. 4c)
}
