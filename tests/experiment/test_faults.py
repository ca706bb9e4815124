"""Faults that keep their one line (issue 14 item 3): a checkpoint that is not one or is of another model, a run
folder that cannot be written, a full disk while saving, a damaged theta0 cache. Each ends with one ``error:``
line on stderr (no traceback) and a non-zero exit code, or (the theta0 cache) is retrained; nothing written
before is changed."""
import errno
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from interpfool.experiment.cli import BadInput, WriteFailed, guarded, preflight
from interpfool.models.small_vgg import SmallVGG
from run_env import train_env
from tiny_run import TINY

ROOT = Path(__file__).resolve().parents[2]
ARGS = TINY + ["logger=csv", "checkpoint_every=1"]

# Loaded by every train.py process of these tests (PYTHONPATH): with INTERPFOOL_TEST_ENOSPC=<text>, a torch.save to a
# path containing <text> writes a few bytes (a full disk leaves a partial file) and raises ENOSPC.
ENOSPC_HOOK = '''
import os
if os.environ.get("INTERPFOOL_TEST_ENOSPC"):
    import errno
    import torch
    _save, _match = torch.save, os.environ["INTERPFOOL_TEST_ENOSPC"]
    def save(obj, f, *args, **kwargs):
        if isinstance(f, (str, os.PathLike)) and _match in os.fspath(f):
            with open(f, "wb") as out:
                out.write(b"half a file")
            raise OSError(errno.ENOSPC, "No space left on device")
        return _save(obj, f, *args, **kwargs)
    torch.save = save
'''


def _run(tmp_path: Path, script: str, *args: str, cache: Path, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / script), *args], cwd=tmp_path, capture_output=True, text=True,
                          env=train_env(tmp_path, ENOSPC_HOOK, INTERPFOOL_CACHE=str(cache), **env), timeout=300)


def _snapshot(*roots: Path) -> dict[str, bytes]:
    """Every file under ``roots`` (Hydra's own .hydra/ and train.log, rewritten at each start, left out)."""
    files = {}
    for root in roots:
        for p in sorted(root.rglob("*")) if root.is_dir() else [root]:
            if p.is_file() and ".hydra" not in p.parts and p.name != "train.log":
                files[str(p)] = p.read_bytes()
    return files


def _one_error_line(proc: subprocess.CompletedProcess, code: int, expected: str, only_line: bool = True) -> str:
    """The run ended with ``code`` and ONE ``error:`` line holding ``expected``, the last line of stderr; no
    traceback. ``only_line``: nothing else on stderr either (a failure before training started)."""
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert proc.returncode == code, proc.stderr[-3000:]
    assert len(errors) == 1 and errors[0] == lines[-1] and expected in errors[0], proc.stderr[-3000:]
    assert not only_line or len(lines) == 1, proc.stderr[-3000:]
    return errors[0]


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    """A finished tiny run of train.py (checkpoints every step, report.json, fooled.pt) and its theta0 cache."""
    root = tmp_path_factory.mktemp("done")
    proc = _run(root, "train.py", *ARGS, f"hydra.run.dir={root / 'run'}", cache=root / "cache")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (original,) = (root / "cache" / "originals").glob("*.pt")
    return {"run": root / "run", "cache": root / "cache", "original": original}


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _width8(path: Path) -> Path:
    torch.save(SmallVGG(num_classes=8, width=8).state_dict(), path)   # a state dict of another model
    return path


# -- a full disk while saving -------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["fooled.pt", "last.ckpt"])
def test_full_disk_while_a_resumed_run_saves(done, tmp_path, target):
    """Resuming a finished run for one more step: the save of theta* (fooled.pt) or of the checkpoint fails.
    One line, exit 4; the earlier fooled.pt and report.json (and, when the checkpoint failed, the checkpoints) are
    unchanged; no temp file is left. (When fooled.pt fails, step 3's checkpoints were written before it, as they
    should be.)"""
    run = _copy(done["run"], tmp_path / "run")
    keep = [run / "fooled.pt", run / "report.json", run / "test_losses.csv"]
    keep += [run / "checkpoints"] if target == "last.ckpt" else []
    before = _snapshot(*keep)
    proc = _run(tmp_path, "train.py", *[a for a in ARGS if not a.startswith("trainer.max_steps")],
                "trainer.max_steps=3", f"hydra.run.dir={run}", "ckpt_path=last", cache=done["cache"],
                INTERPFOOL_TEST_ENOSPC=target)
    path = run / "fooled.pt" if target == "fooled.pt" else run / "checkpoints" / "last.ckpt"
    _one_error_line(proc, 4, f"error: no space left on device while writing {path} (nothing was replaced", False)
    assert _snapshot(*keep) == before
    assert not [p for p in run.rglob("*.tmp")]


@pytest.mark.parametrize("fault, expected", [
    (OSError(errno.ENOSPC, "No space left on device"), "no space left on device while writing"),
    (RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598"),   # torch.save's own
     "no space left on device while writing"),
    (OSError(errno.EACCES, "Permission denied"), "permission denied while writing"),
], ids=["ENOSPC", "torch_writer", "EACCES"])
def test_atomic_save_that_fails_keeps_the_earlier_file(tmp_path, monkeypatch, fault, expected):
    from interpfool.experiment import original

    path = tmp_path / "fooled.pt"
    path.write_bytes(b"the earlier file")

    def failing_save(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"half")
        raise fault
    monkeypatch.setattr(torch, "save", failing_save)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(100, 100, 0))   # a full disk
    with pytest.raises(WriteFailed) as err:
        original.atomic_save({"w": torch.zeros(2)}, path)
    assert str(err.value) == f"{expected} {path} (nothing was replaced: an earlier file there is unchanged)"
    assert path.read_bytes() == b"the earlier file" and [p.name for p in tmp_path.iterdir()] == ["fooled.pt"]


def test_atomic_writes_are_readable_like_plain_ones(tmp_path):
    """mkstemp creates 0600 files: the rename would make run files and a shared theta0 cache private."""
    from interpfool.experiment.original import atomic_save, atomic_write_text

    mask = os.umask(0o022)
    try:
        atomic_write_text("{}", tmp_path / "report.json")
        atomic_save({"w": torch.zeros(1)}, tmp_path / "fooled.pt")
    finally:
        os.umask(mask)
    assert {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()} == {"report.json": 0o644,
                                                                              "fooled.pt": 0o644}


def test_guarded_gives_one_line_and_exit_4_for_a_failed_write(capsys):
    def raises(err):
        raise err
    for err, expected in ((WriteFailed("no space left on device while writing /x/fooled.pt"),
                           "error: no space left on device while writing /x/fooled.pt"),
                          (OSError(errno.ENOSPC, "No space left on device", "/x/figure.pt"),
                           "error: no space left on device while writing /x/figure.pt")):
        with pytest.raises(SystemExit) as exit_info:
            guarded(raises, err)
        assert exit_info.value.code == 4 and capsys.readouterr().err == expected + "\n"
    with pytest.raises(FileNotFoundError):        # not a write failure: not turned into one
        guarded(raises, FileNotFoundError(errno.ENOENT, "No such file or directory"))


# -- ckpt_path: not a checkpoint, or a checkpoint of another model --------------------------------------------


@pytest.mark.parametrize("kind, expected", [
    ("text", "is not a readable checkpoint (truncated, or not a torch file: UnpicklingError"),
    ("truncated", "is not a readable checkpoint (truncated, or not a torch file:"),
    ("fooled.pt", "is not a Lightning checkpoint (a plain state dict such as fooled.pt"),
], ids=["text", "truncated", "fooled.pt"])
def test_ckpt_path_that_is_not_a_checkpoint(done, tmp_path, kind, expected):
    bad = tmp_path / "bad.ckpt"
    if kind == "text":
        bad.write_text("hello, not a checkpoint\n")
    elif kind == "truncated":
        bad.write_bytes((done["run"] / "checkpoints" / "last.ckpt").read_bytes()[:5000])
    else:
        shutil.copy(done["run"] / "fooled.pt", bad)
    before = _snapshot(bad, done["run"], done["cache"])
    proc = _run(tmp_path, "train.py", *ARGS, f"hydra.run.dir={tmp_path / 'run'}", f"ckpt_path={bad}",
                cache=done["cache"])
    line = _one_error_line(proc, 2, expected)
    assert line.startswith(f"error: ckpt_path='{bad}'") and "allowed: null, last, or a .ckpt file" in line
    assert _snapshot(bad, done["run"], done["cache"]) == before
    assert not (tmp_path / "run" / "config.yaml").exists() and not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize("override, expected", [
    ("model.width=8", "size mismatch for net.features.0.weight: the file has [4, 3, 3, 3], this model [8, 3, 3, 3]"),
    ("data.num_classes=4", "size mismatch for net.classifier.3.weight: the file has [8, 128], this model [4, 128]"),
    ("model=small_resnet", "missing key net.conv1.weight"),
], ids=["width", "num_classes", "model"])
def test_ckpt_path_of_another_model(done, tmp_path, override, expected):
    """Refused before anything trains: no theta0 is trained for the new model config (the cache is unchanged)."""
    ckpt = done["run"] / "checkpoints" / "last.ckpt"
    before = _snapshot(done["run"], done["cache"])
    proc = _run(tmp_path, "train.py", *ARGS, override, f"hydra.run.dir={tmp_path / 'run'}", f"ckpt_path={ckpt}",
                cache=done["cache"])
    line = _one_error_line(proc, 2, expected)
    assert line.startswith(f"error: ckpt_path='{ckpt}' is a checkpoint of another model: ") and "allowed:" in line
    assert _snapshot(done["run"], done["cache"]) == before


def test_resume_from_a_truncated_last_ckpt(done, tmp_path):
    run = _copy(done["run"], tmp_path / "run")
    last = run / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:5000])
    before = _snapshot(run, done["cache"])
    proc = _run(tmp_path, "train.py", *ARGS, f"hydra.run.dir={run}", "ckpt_path=last", cache=done["cache"])
    _one_error_line(proc, 2, f"error: ckpt_path=last ({last}) is not a readable checkpoint (truncated")
    assert _snapshot(run, done["cache"]) == before


def test_eval_of_a_fooled_pt_or_original_of_another_model(done, tmp_path):
    """eval.py: ckpt= / original_ckpt= a state dict of another model (width 8): one line each, exit 2."""
    run = _copy(done["run"], tmp_path / "other")
    _width8(run / "fooled.pt")
    wrong = _width8(tmp_path / "wrong_original.pt")
    before = _snapshot(done["run"], run, wrong, done["cache"])
    for args, expected in (([f"ckpt={run}"], f"error: ckpt='{run / 'fooled.pt'}' does not fit SmallVGG: size mismatch"),
                           ([f"ckpt={done['run']}", f"original_ckpt={wrong}"],
                            f"error: original_ckpt='{wrong}' does not fit SmallVGG: size mismatch")):
        proc = _run(tmp_path, "eval.py", *args, f"hydra.run.dir={tmp_path / 'out'}", cache=done["cache"])
        _one_error_line(proc, 2, expected)
    assert _snapshot(done["run"], run, wrong, done["cache"]) == before


# -- a damaged theta0 cache ----------------------------------------------------------------------------------------


def _original_cfg(compose_cfg, cache: Path):
    return compose_cfg(TINY + [f"cache_dir={cache}", "logger=csv"])


@pytest.fixture(scope="module")
def theta0(tmp_path_factory):
    """The tiny config's theta0 as trained into a fresh cache: (its state dict, the cache file's name)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from interpfool.experiment.build import checked_build
    from interpfool.experiment.cli import CONF_DIR
    from interpfool.experiment.original import obtain_original

    cache = tmp_path_factory.mktemp("theta0")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=TINY + [f"cache_dir={cache}"])
    GlobalHydra.instance().clear()
    net, info = obtain_original(cfg, checked_build(cfg), "cpu")
    assert info["status"] == "trained"
    return {k: v.clone() for k, v in net.state_dict().items()}, Path(info["path"]).name


def _damage(path: Path, kind: str, good: dict) -> None:
    if kind == "truncated":
        torch.save(good, path)
        path.write_bytes(path.read_bytes()[:2000])
    elif kind == "garbage":
        path.write_text("not a state dict")
    elif kind == "other_shapes":          # same keys, another width: load_state_dict would copy some, then raise
        torch.save(SmallVGG(num_classes=8, width=8).state_dict(), path)
    elif kind == "other_keys":
        torch.save({f"module.{k}": v for k, v in good.items()}, path)
    elif kind == "not_a_dict":
        torch.save([torch.zeros(1)], path)


@pytest.mark.parametrize("kind, expected", [
    ("truncated", "is unreadable (RuntimeError: PytorchStreamReader failed reading zip archive"),
    ("garbage", "is unreadable (UnpicklingError"),
    ("other_shapes", "is not a state dict of this model (SmallVGG: size mismatch for features.0.weight: the file has "
                     "[8, 3, 3, 3], this model [4, 3, 3, 3]"),
    ("other_keys", "is not a state dict of this model (SmallVGG: missing key features.0.weight"),
    ("not_a_dict", "is not a state dict of tensors (a list)"),
], ids=["truncated", "garbage", "other_shapes", "other_keys", "not_a_dict"])
def test_a_damaged_cached_theta0_is_retrained_and_replaced(compose_cfg, tmp_path, capsys, theta0, kind, expected):
    from interpfool.experiment.build import checked_build
    from interpfool.experiment.original import obtain_original, read_cached_original

    good, name = theta0
    path = tmp_path / "originals" / name
    path.parent.mkdir()
    _damage(path, kind, good)
    cfg = _original_cfg(compose_cfg, tmp_path)
    built = checked_build(cfg)
    untouched = {k: v.clone() for k, v in built.net.state_dict().items()}
    assert read_cached_original(built.net, path) is not None        # refused without loading any of it
    assert all(torch.equal(v, built.net.state_dict()[k]) for k, v in untouched.items())
    net, info = obtain_original(cfg, built, "cpu")
    out = capsys.readouterr().out
    assert f"original model: cached {path} {expected}" in out and "training it again" in out
    assert info["status"] == "trained" and expected.removeprefix("is ") in info["replaced_cache"]
    fresh = torch.load(path, weights_only=True)          # replaced by a complete, loadable file: the same theta0
    assert all(torch.equal(fresh[k], v) and torch.equal(net.state_dict()[k], v) for k, v in good.items())
    assert [p.name for p in path.parent.iterdir()] == [name]


def test_other_ranks_wait_for_rank_0_to_replace_a_damaged_theta0(compose_cfg, tmp_path, monkeypatch, theta0):
    """torchrun / SLURM: a rank > 0 that finds the cached file unreadable waits for rank 0's new one, then loads it
    (it never trains, never loads half of the damaged one)."""
    from interpfool.experiment import distributed as dist_env
    from interpfool.experiment.build import checked_build
    from interpfool.experiment.original import atomic_save, obtain_original

    good, name = theta0
    path = tmp_path / "originals" / name
    path.parent.mkdir()
    _damage(path, "truncated", good)
    monkeypatch.setattr(dist_env, "is_rank_zero", lambda: False)
    monkeypatch.setenv("INTERPFOOL_DIST_WAIT_S", "60")
    rank0 = threading.Timer(1.0, lambda: atomic_save(good, path))
    rank0.start()
    start = time.monotonic()
    try:
        cfg = _original_cfg(compose_cfg, tmp_path)
        net, info = obtain_original(cfg, checked_build(cfg), "cpu")
    finally:
        rank0.join()
    assert time.monotonic() - start >= 1.0 and info["status"] == "reused"
    assert all(torch.equal(net.state_dict()[k], v) for k, v in good.items())

    _damage(path, "garbage", good)                      # rank 0 wrote something unusable: one line, no retry loop
    rank0 = threading.Timer(0.5, lambda: atomic_save([torch.zeros(1)], path))
    rank0.start()
    try:
        with pytest.raises(BadInput, match="written by rank 0 is not a state dict of tensors"):
            obtain_original(cfg, checked_build(cfg), "cpu")
    finally:
        rank0.join()


def test_full_disk_while_replacing_a_damaged_theta0(done, tmp_path):
    """The cached theta0 is truncated: it is retrained, and writing the new one fails. The damaged file is left as
    it was (replaced only by a complete new one), no temp file is left, one line, exit 4."""
    cache = _copy(done["cache"], tmp_path / "cache")
    original = cache / "originals" / done["original"].name
    original.write_bytes(original.read_bytes()[:2000])
    before = _snapshot(cache)
    proc = _run(tmp_path, "train.py", *ARGS, f"hydra.run.dir={tmp_path / 'run'}", cache=cache,
                INTERPFOOL_TEST_ENOSPC="/originals/")
    _one_error_line(proc, 4, f"error: no space left on device while writing {original} (nothing was replaced", False)
    assert "is unreadable (" in proc.stdout and "training it again" in proc.stdout
    assert _snapshot(cache) == before and not list(cache.rglob("*.tmp"))


# -- a run folder that cannot be written -------------------------------------------------------------------------


@pytest.mark.parametrize("script", ["train.py", "eval.py"])
def test_run_dir_under_a_file(tmp_path, script):
    blocker = tmp_path / "afile"
    blocker.write_text("keep me\n")
    proc = _run(tmp_path, script, f"hydra.run.dir={blocker / 'run'}", *(["ckpt=x"] if script == "eval.py" else []),
                cache=tmp_path / "cache")
    _one_error_line(proc, 2, f"error: hydra.run.dir='{blocker / 'run'}' cannot be created or written: {blocker} is a "
                             f"file, not a folder; allowed: a folder this user can create and write")
    assert blocker.read_text() == "keep me\n" and not (tmp_path / "cache").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_run_dir_under_a_read_only_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        proc = _run(tmp_path, "train.py", f"hydra.run.dir={ro / 'run'}", cache=tmp_path / "cache")
    finally:
        ro.chmod(0o755)
    _one_error_line(proc, 2, f"{ro} is not writable")


def test_preflight_checks_the_run_dir(tmp_path, monkeypatch, capsys):
    """Read-only (os.access says so, as it would for a non-root user), an interpolated path (its fixed part is
    checked), a writable path (nothing created), a multirun (left to Hydra, like every sweep override)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == ro else real_access(p, mode))
    for value in (f"{ro}/run", f"{ro}/run/" + "${now:%H-%M-%S}"):
        with pytest.raises(SystemExit) as exit_info:
            preflight("config", [f"hydra.run.dir={value}"])
        err = capsys.readouterr().err.strip()
        assert exit_info.value.code == 2 and len(err.splitlines()) == 1, err
        assert err == (f"error: hydra.run.dir={value!r} cannot be created or written: {ro} is not writable; "
                       f"allowed: a folder this user can create and write")
    preflight("config", [f"hydra.run.dir={tmp_path}/new/run"])
    preflight("config", ["-m", "seed=0,1", f"hydra.sweep.dir={ro}/sweep"])
    assert not (tmp_path / "new").exists() and capsys.readouterr().err == ""
