"""Machinery the jobs (``interpfool.jobs``) share: CLI and errors, config schema, build and checks, the cached
original model, evaluation, loggers, guards, distributed launch."""
