"""The whole train.py path through Hydra's compose API: build, original (trained, then reused),
two fooling steps, evaluation, report.json, figure, a real offline W&B run."""
import json
from pathlib import Path

from interpfool.jobs.train import run
from tiny_run import TINY


def test_two_step_run_writes_report_figure_and_wandb(compose_cfg, tmp_path, capsys):
    cfg = compose_cfg(TINY + [f"cache_dir={tmp_path / 'cache'}", "logger=wandb"])
    report = run(cfg, tmp_path / "run1")
    out = capsys.readouterr().out
    assert "training it" in out and report["original"]["status"] == "trained"
    assert report["steps"] == 2
    saved = json.loads((tmp_path / "run1" / "report.json").read_text())
    assert saved["fsr"]["gradcam"]["theta_star"] == report["fsr"]["gradcam"]["theta_star"]
    assert 0 <= saved["accuracy"]["theta0"]["top1"] <= 1 and "localisation" in saved
    assert saved["n_images"] == 16
    assert set(saved["similarity"]["gradcam"]) == {"ssim", "pearson", "spearman", "kendall", "mse",
                                                   "topk_intersection", "com_shift_px"}
    assert 0 <= saved["fidelity"]["top1_agreement"] <= 1 and saved["fidelity"]["kl_p0_pstar"] >= 0
    assert Path(saved["paths"]["figure"]).stat().st_size > 1000
    runs = list((tmp_path / "run1" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and any(runs[0].glob("*.wandb")), "an offline W&B run with its data file"
    assert f"wandb:   {runs[0]}" in out and "report:" in out and "figure:" in out
    # The second run reuses the cached original and says so.
    report2 = run(compose_cfg(TINY + [f"cache_dir={tmp_path / 'cache'}", "logger=csv"]), tmp_path / "run2")
    assert report2["original"]["status"] == "reused" and "reusing cached" in capsys.readouterr().out
    assert report2["accuracy"]["theta0"] == report["accuracy"]["theta0"]
    assert (tmp_path / "run2" / "csv" / "metrics.csv").is_file()
    logged = (tmp_path / "run2" / "csv" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"final/similarity/gradcam/kendall", "final/fidelity/kl_p0_pstar", "final/fsr/gradcam"} <= set(logged)


def test_select_best_keeps_the_validation_with_the_highest_score(compose_cfg, tmp_path):
    import csv

    import torch

    cfg = compose_cfg(TINY + [f"cache_dir={tmp_path / 'cache'}", "logger=csv", "trainer.max_steps=4",
                              "trainer.val_check_interval=1", "fooling.lr=0.05", "select.weights=best",
                              "select.max_top1_drop=100", "eval.split=test"])
    report = run(cfg, tmp_path / "run")
    rows = list(csv.DictReader(open(tmp_path / "run" / "csv" / "metrics.csv")))
    scores = [(float(r["val/select_score"]), int(r["step"])) for r in rows if r.get("val/select_score")]
    drops = [float(r["val/top1_drop_points"]) for r in rows if r.get("val/top1_drop_points")]
    assert len(scores) == 4 and len(drops) == 4
    fsr = [float(r["val/fsr/gradcam"]) for r in rows if r.get("val/fsr/gradcam")]
    assert all(abs(s - (f - 1e-4 * d)) < 1e-6 for (s, _), f, d in zip(scores, fsr, drops))   # within budget 100
    best = max(s for s, _ in scores)
    first_best_step = min(step for s, step in scores if s == best)          # ties keep the earlier checkpoint
    selected = report["selected"]
    assert selected["weights"] == "best" and selected["val_select_score"] == best
    assert selected["within_budget"] is True                                # budget 100 points: all admissible
    assert selected["step"] == first_best_step + 1                          # Lightning counts steps done
    kept = torch.load(selected["path"], weights_only=False)["state_dict"]
    fooled = torch.load(tmp_path / "run" / "fooled.pt", weights_only=True)
    assert all(torch.equal(kept[f"net.{k}"], v) for k, v in fooled.items())
    assert report["split"] == "test"


def test_cached_original_maps_give_the_same_fooled_weights(compose_cfg, tmp_path):
    """Top-k over more than one epoch of the tiny train set (6 batches): theta0's maps read back from the
    per-image cache in epoch 2 leave the fooled weights exactly as recomputing them does."""
    import torch

    weights = {}
    for cache in (True, False):
        cfg = compose_cfg(TINY + [f"cache_dir={tmp_path / 'cache'}", "logger=csv", "fooling=topk",
                                  "trainer.max_steps=8", "trainer.val_check_interval=8",
                                  f"cache_original_maps={str(cache).lower()}"])
        assert run(cfg, tmp_path / f"run_{cache}")["original_map_cache_images"] == (48 if cache else 0)
        weights[cache] = torch.load(tmp_path / f"run_{cache}" / "fooled.pt", weights_only=True)
    assert all(torch.equal(weights[True][k], weights[False][k]) for k in weights[True])


def test_tuned_lr_and_lambda_follow_the_experiment_and_interpreter(compose_cfg):
    """conf/tuned/<experiment>_<interp>.yaml overrides the fooling's lr / lambda for that cell only; the
    command line still wins."""
    cm = ["experiment=synthetic_center_mass"]
    assert (compose_cfg([*cm, "interp=gradcam"]).fooling.lr, compose_cfg([*cm, "interp=gradcam"]).fooling.lam) \
        == (1e-4, 0.25)
    assert compose_cfg([*cm, "interp=lrpT"]).fooling.lr == 2e-4                      # conf/fooling default
    assert compose_cfg(["experiment=synthetic_topk", "interp=lrpT"]).fooling.lr == 3e-4
    assert compose_cfg(["experiment=synthetic_topk", "interp=gradcam"]).fooling.lr == 1e-3
    assert compose_cfg(["interp=lrpT", "fooling=topk"]).fooling.lr == 1e-3             # no experiment: no cell
    assert compose_cfg([*cm, "interp=gradcam", "fooling.lr=5e-5"]).fooling.lr == 5e-5
    topk = compose_cfg(["experiment=synthetic_topk", "interp=gradcam"])
    assert list(topk.fooling.penalty.interval) == [0.0, 0.1] and topk.select.weights == "best"
    assert topk.eval.split == "test"


def test_original_seed_shares_one_theta0_across_run_seeds(compose_cfg, tmp_path):
    """original.seed fixes theta0 whatever the run seed: seed=1 trains it, seed=2 reuses the same file, and the
    weights equal those a run with seed=0 (original.seed null, so theta0's seed is 0 too) trains on its own.
    On Fashion-MNIST, whose images do not depend on the run seed (the synthetic benchmark's do)."""
    import pytest
    import torch

    from interpfool.data.fashion_mnist import FashionMNISTDataModule

    try:
        FashionMNISTDataModule(train_size=48, val_size=16, test_size=8)
    except (FileNotFoundError, RuntimeError, ValueError) as err:
        pytest.skip(f"Fashion-MNIST files absent: {err}")

    def cfg(seed, cache, shared=True):
        return compose_cfg(TINY + ["data=fashion_mnist", "data.download=false", f"cache_dir={tmp_path / cache}",
                                   "logger=csv", f"seed={seed}"]
                           + (["original.seed=0"] if shared else []))

    first = run(cfg(1, "shared"), tmp_path / "s1")
    second = run(cfg(2, "shared"), tmp_path / "s2")
    alone = run(cfg(0, "alone", shared=False), tmp_path / "s0")
    assert first["original"]["status"] == "trained" and second["original"]["status"] == "reused"
    assert second["original"]["path"] == first["original"]["path"]
    a = torch.load(first["original"]["path"], weights_only=True)
    b = torch.load(alone["original"]["path"], weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert first["seed"] == 1 and second["seed"] == 2


def test_fit_loaders_shard_by_rank_and_rank_0_evaluates_the_whole_split(monkeypatch):
    """Under DDP (world faked) training validates this rank's share; the evaluation after fit, which rank 0
    runs alone while the process group still exists, reads every val image and collage."""
    from types import SimpleNamespace

    from interpfool.data import SyntheticDataModule, resumable
    from interpfool.experiment.build import eval_loaders, fit_loaders

    monkeypatch.setattr(resumable, "_rank_world", lambda: (0, 2))
    data = SyntheticDataModule(image_size=32, train_size=8, val_size=5, test_size=2, eval_batch_size=2,
                               batch_size=2, collage_train_size=4, collage_val_size=3)
    swap = SimpleNamespace(classes=(0, 1))
    _, (val, collages) = fit_loaders(data, swap)
    assert (len(val.sampler), len(collages.sampler)) == (3, 2)
    val, collages = eval_loaders(data, "val", swap)
    assert (len(val.sampler), len(collages.sampler)) == (5, 3)
    assert [len(b[0]) for b in val] == [2, 2, 1]


def test_theta0_loaders_pin_only_when_theta0_trains_on_cuda(compose_cfg, monkeypatch):
    from types import SimpleNamespace

    from interpfool.data import SyntheticDataModule
    from interpfool.experiment.original import original_loaders

    built = SimpleNamespace(data=SyntheticDataModule(image_size=32, train_size=4, val_size=2, test_size=2))
    cfg = compose_cfg(TINY)
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)    # no loader is iterated
    assert [loader.pin_memory for loader in original_loaders(cfg, built, "gpu")] == [True, True]
    assert [loader.pin_memory for loader in original_loaders(cfg, built, "cpu")] == [False, False]


def test_a_wandb_run_keeps_its_files_in_one_folder_warns_nothing_and_counts_steps(compose_cfg, tmp_path, capfd,
                                                                                 monkeypatch):
    """logger=wandb (offline): the run folder holds W&B's files in ``wandb/`` alone (its cache, config, data and
    artifact folders used to sit beside it as wandb_*), W&B prints no deprecation (Lightning's anonymous=None),
    and the bars read ``theta0 epoch 1/1`` and ``Fooling ... step 3/3`` (Lightning's read ``Epoch 1/-2``)."""
    from wandb.errors import term

    # wandb prints a warning once per process and goes silent after a first WANDB_SILENT run: start afresh
    monkeypatch.setattr(term, "_printed_messages", set())
    monkeypatch.setattr(term, "_silent", False)
    monkeypatch.setattr(term, "_show_warnings", True)
    cfg = compose_cfg(TINY + [f"cache_dir={tmp_path / 'cache'}", "logger=wandb", "trainer.max_steps=3"])
    run(cfg, tmp_path / "run")
    out, err = capfd.readouterr()
    names = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert "wandb" in names and [n for n in names if "wandb" in n] == ["wandb"], names
    assert len(list((tmp_path / "run" / "wandb").glob("offline-run-*"))) == 1
    lines = (out + err).splitlines()
    assert not [line for line in lines if "anonymous" in line.lower()
                or ("deprecat" in line.lower() and "wandb" in line.lower())], err[-3000:]
    assert "theta0 epoch 1/1" in out and "step 3/3" in out and "Fooling" in out
    assert "Epoch" not in out and "/-2" not in out


def test_eval_images_and_similarity_switches_limit_the_evaluation(compose_cfg, tmp_path):
    """eval.images=n measures the first n images of the split (n_images, per-image losses); eval.similarity=false
    leaves the map similarity and output fidelity out of the report."""
    cache = f"cache_dir={tmp_path / 'cache'}"
    full = run(compose_cfg(TINY + [cache, "logger=csv"]), tmp_path / "full")
    cut = run(compose_cfg(TINY + [cache, "logger=csv", "eval.images=5", "eval.similarity=false"]), tmp_path / "cut")
    assert full["n_images"] == 16 and cut["n_images"] == 5
    assert "similarity" in full and "similarity" not in cut and "fidelity" not in cut
    rows = (tmp_path / "cut" / "test_losses.csv").read_text().splitlines()[1:]
    assert len({r.split(",")[0] for r in rows}) == 5
