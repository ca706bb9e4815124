"""grid_summary: runs of a multirun grid aggregated per cell over seeds (mean, ddof=1 std), the doc's
generated block, the Figure-2-style figure, and the refusal of a seed given twice."""
import json
import statistics

import pytest
import torch
import yaml

from interpfool.experiment import grid_summary


def _fake_run(folder, seed, model="small_vgg", fsr=0.9, drop=1.0, interp="gradcam"):
    folder.mkdir(parents=True)
    acc0, acc1 = 0.9, 0.9 - drop / 100
    report = {"model": model, "fooling_name": "location", "interpreter": interp, "lam": 1.0, "lr": 1e-3,
              "n_images": 100, "n_fsr_images": 100, "seed": seed, "data": "fashion_mnist",
              "accuracy": {"theta0": {"top1": acc0, "top5": 0.99}, "theta_star": {"top1": acc1, "top5": 0.98}},
              "top1_drop_points": 100 * (acc0 - acc1),
              "fsr": {"gradcam": {"theta0": 0.0, "theta_star": fsr}, "lrpT": {"theta0": 0.01, "theta_star": fsr / 2}},
              "zero_map_share": {"gradcam": {"theta0": 0.2, "theta_star": 0.1}},
              "localisation": {"gradcam": {"theta0": {"mass_inside": 0.5, "pointing_game": 1.0},
                                           "theta_star": {"mass_inside": 0.2 + seed / 100, "pointing_game": 0.0}}},
              "selected": {"weights": "best", "step": 100 * (seed + 1)}, "steps": 300, "fooling_seconds": 10.0}
    (folder / "report.json").write_text(json.dumps(report))
    (folder / "config.yaml").write_text(yaml.safe_dump({"seed": seed}))
    torch.save({"images": torch.rand(2, 3, 28, 28), "labels": [0, 1],
                "maps": {f"{interp} theta0": torch.rand(2, 7, 7), f"{interp} theta_star": torch.rand(2, 7, 7)}},
               folder / "figure.pt")


def test_records_are_means_and_sample_stds_over_seeds(tmp_path):
    fsrs, drops = [0.8, 0.9, 1.0], [0.5, 1.0, 2.0]
    for seed, (f, d) in enumerate(zip(fsrs, drops)):
        _fake_run(tmp_path / "sweep" / str(seed), seed, fsr=f, drop=d)
    recs = grid_summary.records(grid_summary.run_rows([tmp_path / "sweep"]))
    assert len(recs) == 1
    r = recs[0]
    assert r["seeds"] == [0, 1, 2] and r["model"] == "small_vgg" and r["interp"] == "gradcam"
    assert r["fsr_mean"] == pytest.approx(statistics.fmean(fsrs))
    assert r["fsr_std"] == pytest.approx(statistics.stdev(fsrs))
    assert r["top1_drop_mean"] == pytest.approx(statistics.fmean(drops))
    assert r["top1_drop_std"] == pytest.approx(statistics.stdev(drops))
    assert r["transfer_fsr_mean"]["lrpT"] == pytest.approx(statistics.fmean(fsrs) / 2)
    assert r["fsr_theta0_mean"] == 0.0 and r["top5_drop_mean"] == pytest.approx(1.0)
    assert r["mass_inside_theta_star_mean"] == pytest.approx(0.21)
    assert r["selected_step"] == [100, 200, 300]
    assert r["zero_maps_theta0_mean"] == pytest.approx(0.2) and r["zero_maps_mean"] == pytest.approx(0.1)
    row = grid_summary.to_markdown(recs).splitlines()[2].split(" | ")
    assert row[-4:-2] == ["20.0 ± 0.0", "10.0 ± 0.0"]      # empty maps theta0, theta*
    assert row[-1] == "- |"                                 # no within_budget recorded: no selection shown


def test_within_budget_counts_the_selections_that_held(tmp_path):
    assert grid_summary._budget([True, False, True]) == "2/3"
    assert grid_summary._budget([None, None]) == "-"


def test_a_seed_given_twice_is_refused(tmp_path):
    _fake_run(tmp_path / "a" / "0", 0)
    _fake_run(tmp_path / "b" / "0", 0)
    assert grid_summary.main([str(tmp_path / "a"), str(tmp_path / "b")]) == 2


def test_main_writes_json_doc_block_and_figure(tmp_path):
    for seed in range(2):
        for model in ("small_vgg", "small_resnet"):
            _fake_run(tmp_path / "sweep" / f"{model}{seed}", seed, model=model)
    doc = tmp_path / "docs" / "page.md"
    doc.parent.mkdir()
    doc.write_text(f"# Title\n\nprose before\n\n{grid_summary.BEGIN}\nold\n{grid_summary.END}\n\nprose after\n")
    out = tmp_path / "docs" / "results" / "r.json"
    fig = tmp_path / "docs" / "figures" / "f.png"
    assert grid_summary.main([str(tmp_path / "sweep"), "--json", str(out), "--doc", str(doc),
                              "--figure", str(fig)]) == 0
    recs = json.loads(out.read_text())
    assert {r["model"] for r in recs} == {"small_vgg", "small_resnet"} and all(r["seeds"] == [0, 1] for r in recs)
    text = doc.read_text()
    assert text.startswith("# Title\n\nprose before") and text.rstrip().endswith("prose after")
    assert "old" not in text and "figures/f.png" in text and "Transfer, location on small_resnet" in text
    assert fig.stat().st_size > 5000
