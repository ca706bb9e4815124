"""Orchestration: config checks, the cached original model, the train/eval pipelines, logging."""
