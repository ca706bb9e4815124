"""backends.reuse_host_memory: glibc keeps large blocks and freed memory in its heap, so a step's big buffers are not
faulted in again every step. The setting is process-wide and cannot be undone, so the page-fault checks run in
fresh interpreters."""
import logging
import subprocess
import sys

import pytest

from interpfool.experiment import host_memory

# Minor page faults while a 128 MB tensor is allocated, written and freed, summed over rounds 6-8 of 8 (glibc keeps
# a few freed blocks before it serves the request from them: RSS grows for ~4 rounds, then stays)
FAULTS = """
import resource, sys, torch
from interpfool.experiment.host_memory import reuse_host_memory
if sys.argv[1] == "on":
    reuse_host_memory(True)
faults = []
for _ in range(8):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t = torch.empty(32 * 1024 * 1024).fill_(1.0)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    del t
print(sum(faults[5:]))
"""


def _steady_faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", FAULTS, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(host_memory._glibc() is None, reason="glibc only")
def test_freed_blocks_are_reused_without_new_page_faults():
    default, reused = _steady_faults("off"), _steady_faults("on")
    assert default >= 50                       # glibc maps the block afresh: every page (or huge page) faults again
    assert reused * 8 < default, (reused, default)


def test_without_glibc_it_says_it_does_nothing(monkeypatch):
    monkeypatch.setattr(host_memory, "_glibc", lambda: None)
    assert host_memory.reuse_host_memory(True) == ("backends.reuse_host_memory=true has no effect here: "
                                                   "the C library is not glibc")
    assert "left at its defaults" in host_memory.reuse_host_memory(False)


def test_a_refused_mallopt_is_an_error_naming_the_setting(monkeypatch):
    class Refusing:
        @staticmethod
        def mallopt(param, value):
            return 0
    monkeypatch.setattr(host_memory, "_glibc", lambda: Refusing)
    with pytest.raises(RuntimeError, match=r"^backends.reuse_host_memory=true: glibc's mallopt refused .*; "
                                           r"allowed: false$"):
        host_memory.reuse_host_memory(True)


def test_the_run_applies_the_setting_on(compose_cfg, monkeypatch, caplog):
    from interpfool.experiment import build

    calls = []
    monkeypatch.setattr(build, "reuse_host_memory", lambda enabled: calls.append(enabled) or f"reuse {enabled}")
    small = ["data.train_size=8", "data.batch_size=8", "data.val_size=8", "data.test_size=8"]
    with caplog.at_level(logging.INFO, logger="interpfool.experiment.build"):
        build.build_all(compose_cfg(small))
        build.build_all(compose_cfg(small + ["backends.reuse_host_memory=false"]))
    assert calls == [True, False]
    assert "reuse True" in caplog.text and "reuse False" in caplog.text
