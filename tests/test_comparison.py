"""`vampkeras compare` without training: the grid and its names, the validation of options, the refusal of
changed grids and foreign cell folders, and the numbers collected from cells built by hand (the learning-rate
choice, the paired statistics, the records and the page). The end-to-end runs are tests/e2e/test_compare.py."""

import csv
import json

import numpy as np
import pytest

from vampkeras.comparison import grid, results, statistics
from vampkeras.comparison.api import build_comparison
from vampkeras.comparison.grid import ComparisonConfig, cell_name, format_lr
from vampkeras.comparison.runner import check_folder
from vampkeras.comparison.worker import PER_IMAGE_FILE, SCORE_FILE
from vampkeras.config import RunConfig
from vampkeras.errors import ConfigError, VampkerasError
from vampkeras.run_folder import RunFolder


def test_cell_names_are_those_of_reproduce_sh():
    assert [format_lr(lr) for lr in (1e-4, 5e-4, 2.5e-4, 1e-3)] == ["1e-4", "5e-4", "2.5e-4", "1e-3"]
    assert cell_name("hvae", "vampprior", 5e-4, 14) == "hvae-vampprior-lr5e-4-seed14"
    # benchmarks/reproduce.sh is a comparison per dataset in OUT/<dataset>
    script = open("benchmarks/reproduce.sh").read()
    assert '"$VAMPKERAS" compare' in script and 'COMPARISON="$OUT/$DATASET"' in script


def test_the_protocols_and_the_grid(tmp_path):
    paper = build_comparison("caltech101", ["vae", "hvae"], ["standard", "vampprior"], [14, 69, 420], tmp_path,
                             protocol="paper", jobs=2)
    assert paper.learning_rates == [1e-4, 5e-4] and len(paper.cells()) == 2 * 2 * 2 * 3
    config = paper.run_config(paper.cells()[0])
    assert (config.epochs, config.warmup, config.patience, config.lr, config.seed) == (2000, 100, 50, 1e-4, 14)
    assert config.run_dir == str(tmp_path / "vae-standard-lr1e-4-seed14")
    assert config.export_dir == str(tmp_path / "saved_models" / "vae-standard-lr1e-4-seed14")
    short = build_comparison("mnist5k", ["vae", "hvae"], ["vampprior"], 2, tmp_path, train_options={"warmup": 3})
    assert short.seeds == [0, 1] and short.learning_rates == [5e-4]
    epochs = {cell.model: short.run_config(cell).epochs for cell in short.cells()}
    assert epochs == {"vae": 50, "hvae": 30} and short.run_config(short.cells()[0]).warmup == 3     # given wins
    assert not tmp_path.joinpath("comparison-config.json").exists()     # validation creates nothing


@pytest.mark.parametrize("change, message", [
    (dict(models=["vae", "gan"]), "unknown --model value 'gan'"),
    (dict(priors=["vampprior", "vampprior"]), "names a value twice"),
    (dict(seeds=[1, 1]), "names a seed twice"),
    (dict(seeds=0), "at least one seed"),
    (dict(lrs=[5e-4, 0.0005]), "names a learning rate twice"),
    (dict(lrs=[-1.0]), "learning rates above 0"),
    (dict(protocol="long"), "unknown --protocol"),
    (dict(samples=0), "--samples must be at least 1"),
    (dict(jobs=0), "--jobs must be at least 1"),
    (dict(train_options={"seed": 3}), "belong to compare itself"),
    (dict(train_options={"run_dir": "x"}), "belong to compare itself"),
    (dict(train_options={"epochs": 0}), "--epochs must be at least 1"),
    (dict(train_options={"colour": 1}), "unknown train option"),
    (dict(dataset="no-such-data"), "unknown dataset"),
])
def test_bad_options_are_refused(tmp_path, change, message):
    options = dict(dataset="mnist5k", models=["vae"], priors=["standard", "vampprior"], seeds=2, out=tmp_path / "c")
    options.update(change)
    with pytest.raises(VampkerasError, match=message):
        build_comparison(**options)
    assert not (tmp_path / "c").exists()


def test_a_changed_grid_and_a_foreign_cell_are_refused(tmp_path):
    out = tmp_path / "c"
    comparison = build_comparison("mnist5k", ["vae"], ["standard", "vampprior"], 2, out, train_options={"epochs": 2})
    out.mkdir()
    (out / grid.CONFIG_FILE).write_text(comparison.to_json())
    assert check_folder(comparison, restart=False) is not None           # the same comparison: continued
    other = build_comparison("mnist5k", ["vae"], ["standard", "vampprior"], 2, out, train_options={"epochs": 3},
                             jobs=7)
    with pytest.raises(ConfigError, match=r"train option epochs: saved 2, given 3"):
        check_folder(other, restart=False)
    assert check_folder(build_comparison("mnist5k", ["vae"], ["standard", "vampprior"], 2, out,
                                         train_options={"epochs": 2}, jobs=5), restart=False)   # --jobs may change
    # a cell folder holding a run with another configuration is refused, naming the field
    (out / grid.CONFIG_FILE).unlink()
    cell = comparison.cells()[0]
    foreign = comparison.run_config(cell)
    foreign.lr = 1e-3
    RunFolder(foreign.run_dir).path.mkdir(parents=True)
    RunFolder(foreign.run_dir).write_config(foreign.with_default_paths())
    with pytest.raises(ConfigError, match=r"lr: the folder's run has 0.001, the comparison asks for 0.0005"):
        check_folder(comparison, restart=False)
    # the same run (as `train` or benchmarks/reproduce.sh made it) is adopted
    adopted = comparison.run_config(cell).with_default_paths()
    adopted.num_components = 500                # resolved from the dataset by the run; the cell leaves it None
    RunFolder(foreign.run_dir).write_config(adopted)
    assert check_folder(comparison, restart=False) is None
    (out / comparison.cells()[1].name).mkdir()
    (out / comparison.cells()[1].name / "notes.txt").write_text("mine")
    with pytest.raises(VampkerasError, match="is not empty and holds no run"):
        check_folder(comparison, restart=False)


def fake_scored_cell(comparison: ComparisonConfig, cell, val_losses, log_likelihoods):
    """A scored cell as the worker leaves it, with the given validation losses and per-image LLs (also used by
    tests/test_results_table.py)."""
    config = comparison.run_config(cell).with_default_paths()
    run = RunFolder(config.run_dir)
    run.path.mkdir(parents=True)
    run.write_config(config)
    run.write_history([{"epoch": e + 1, "loss": v + 1, "reconstruction": v, "kl": 1.0, "val_loss": v,
                        "val_reconstruction": v, "val_kl": 1.0, "beta": 1.0, "learning_rate": cell.lr,
                        "seconds": 2.0, "examples_per_second": 1.0} for e, v in enumerate(val_losses)])
    values = np.asarray(log_likelihoods, np.float64)
    np.savez(run.path / PER_IMAGE_FILE, log_likelihood=values, elbo=values - 5, kl=np.full_like(values, 3.0))
    best = int(np.argmin(val_losses))
    record = {"cell": cell.name, "samples": comparison.samples, "max_examples": comparison.max_examples,
              "evaluation": {"log_likelihood": float(values.mean()), "elbo": float(values.mean() - 5), "kl": 3.0,
                             "reconstruction": float(values.mean() - 2), "num_examples": len(values),
                             "num_samples": comparison.samples, "active_units": {"z1": 7}, "seconds": 1.5},
              "surgery": {"average_kl": 2.0, "mutual_information": 1.25, "marginal_kl": 0.75,
                          "mutual_information_bound": float(np.log(len(values)))},
              "training": {"epochs": len(val_losses), "best_epoch": best + 1, "best_val_loss": val_losses[best],
                           "seconds": 2.0 * len(val_losses)}}
    (run.path / SCORE_FILE).write_text(json.dumps(record))


def test_collect_keeps_the_learning_rate_with_the_lower_mean_validation_loss(tmp_path):
    comparison = build_comparison("mnist5k", ["vae"], ["standard", "vampprior"], [3, 5], tmp_path,
                                  lrs=[1e-4, 5e-4], samples=7)
    generator = np.random.default_rng(0)
    base = generator.normal(-100, 5, size=40)
    arrays = {}
    # standard: 1e-4 has the lower validation loss at seed 3, 5e-4 at seed 5, but 5e-4 the lower mean
    losses = {("standard", 1e-4, 3): [110, 100], ("standard", 1e-4, 5): [110, 104],
              ("standard", 5e-4, 3): [101, 103], ("standard", 5e-4, 5): [99, 100],
              ("vampprior", 1e-4, 3): [98, 97], ("vampprior", 1e-4, 5): [99, 96],
              ("vampprior", 5e-4, 3): [100, 101], ("vampprior", 5e-4, 5): [97, 98]}
    for cell in comparison.cells():
        shift = 1.0 if cell.prior == "vampprior" else 0.0
        arrays[cell.name] = base + shift + generator.normal(0, 0.5, size=40) + (0.3 if cell.seed == 5 else 0)
        fake_scored_cell(comparison, cell, losses[(cell.prior, cell.lr, cell.seed)], arrays[cell.name])
    summary = results.collect(comparison)
    assert {(k["prior"], k["lr"]) for k in summary["kept_learning_rates"]} == {("standard", "5e-4"),
                                                                             ("vampprior", "1e-4")}
    group = next(g for g in summary["groups"] if (g["prior"], g["lr"]) == ("standard", "5e-4"))
    assert group["kept"] and group["best_val_loss"]["mean"] == pytest.approx(100.0)     # (101 + 99) / 2
    assert group["best_val_loss"]["std"] == pytest.approx(np.std([101, 99], ddof=1))
    assert group["log_likelihood"]["mean"] == pytest.approx(np.mean(
        [arrays["vae-standard-lr5e-4-seed3"].mean(), arrays["vae-standard-lr5e-4-seed5"].mean()]))
    # the pair compares VampPrior at 1e-4 with standard at 5e-4, image by image and seed by seed
    (pair,) = summary["pairs"]
    assert (pair["prior_a"], pair["prior_b"], pair["lr_a"], pair["lr_b"]) == ("vampprior", "standard", "1e-4", "5e-4")
    expected = statistics.compare_priors({seed: (arrays[f"vae-vampprior-lr1e-4-seed{seed}"],
                                                 arrays[f"vae-standard-lr5e-4-seed{seed}"]) for seed in (3, 5)})
    assert pair["interval"] == expected.to_json()["interval"]
    assert pair["seeds_a_better"] == 2 and "beats the standard prior" in pair["sentence"]
    # the records: comparison.json holds exactly what collect returned; one CSV row per cell; the Markdown table
    paths = results.write(comparison, summary)
    assert json.loads(paths[0].read_text()) == json.loads(json.dumps(summary))
    rows = list(csv.DictReader(paths[1].open()))
    assert len(rows) == 8 and {row["cell"] for row in rows} == {cell.name for cell in comparison.cells()}
    assert float(rows[0]["log_likelihood"]) == pytest.approx(arrays[rows[0]["cell"]].mean())
    markdown = paths[2].read_text()
    assert "| VAE | standard | 5e-4 * |" in markdown and "| VAE | standard | 1e-4 |" in markdown
    assert pair["sentence"] in markdown
    assert f"cannot exceed log N = {np.log(40):.2f}" in markdown          # 40 test images
    from vampkeras.comparison import page
    html = page.render(comparison, summary)
    import html as html_module
    assert html_module.escape(pair["sentence"]) in html and html.count("data:image/png;base64,") == 2    # curves and histograms
    assert "http://" not in html and "https://" not in html


def test_the_seeds_option():
    from vampkeras_cli.compare_command import Seeds

    seeds = Seeds()
    assert seeds.convert("3", None, None) == [0, 1, 2]
    assert seeds.convert("14,69,420", None, None) == [14, 69, 420]
    assert seeds.convert("14,", None, None) == [14]
    import click
    for bad in ("0", "a", "1,,2", "-1,2"):
        with pytest.raises(click.BadParameter):
            seeds.convert(bad, None, None)


def test_the_hvae_has_its_z1_conditional_kl_as_its_own_number(tmp_path):
    comparison = build_comparison("mnist5k", ["hvae"], ["vampprior"], [0], tmp_path, samples=3)
    (cell,) = comparison.cells()
    fake_scored_cell(comparison, cell, [100.0, 99.0], np.linspace(-90, -80, 10))
    summary = results.collect(comparison)
    (row,) = summary["cells"]
    # the cell's KL term (3.0) minus the surgery's average KL of z2 (2.0)
    assert row["conditional_kl_z1"] == pytest.approx(1.0) and summary["pairs"] == []
    (group,) = summary["groups"]
    assert group["conditional_kl_z1"] == {"mean": 1.0, "std": None, "values": [1.0]}


@pytest.mark.parametrize("edit, message", [
    (lambda v: v.update(seeds=["0"]), "'seeds' must be a list of int"),
    (lambda v: v.update(models="vae"), "'models' must be a list of str"),
    (lambda v: v.update(samples=True), "'samples' must be int"),
    (lambda v: v["train_options"].update(epochs="many"), "'epochs' must be int"),
    (lambda v: v.update(colour=1), "unknown configuration keys: colour"),
    (lambda v: v.pop("priors"), "no priors"),
    (lambda v: v.update(protocol="long"), "unknown --protocol"),
])
def test_a_hand_edited_comparison_config_is_one_config_error(tmp_path, edit, message):
    from vampkeras.comparison.worker import read_comparison_config

    comparison = build_comparison("mnist5k", ["vae"], ["standard", "vampprior"], 2, tmp_path,
                                  train_options={"epochs": 2})
    values = json.loads(comparison.to_json())
    edit(values)
    (tmp_path / grid.CONFIG_FILE).write_text(json.dumps(values))
    with pytest.raises(ConfigError, match=message):
        read_comparison_config(tmp_path)
    (tmp_path / grid.CONFIG_FILE).write_text("[1, 2]")
    with pytest.raises(ConfigError, match="not a JSON object"):
        read_comparison_config(tmp_path)


def test_a_damaged_or_foreign_score_record_is_not_taken_for_a_score(tmp_path):
    from vampkeras.comparison.worker import read_per_image, read_score

    comparison = build_comparison("mnist5k", ["vae"], ["standard"], [0], tmp_path, samples=3)
    (cell,) = comparison.cells()
    fake_scored_cell(comparison, cell, [100.0, 99.0], np.linspace(-90, -80, 10))
    run = RunFolder(tmp_path / cell.name)
    assert read_score(run)["evaluation"]["log_likelihood"] == pytest.approx(-85.0)
    record = json.loads((run.path / SCORE_FILE).read_text())
    for damage in ("{", "[]", json.dumps({**record, "surgery": {}}),
                   json.dumps({**record, "evaluation": {**record["evaluation"], "elbo": "high"}})):
        (run.path / SCORE_FILE).write_text(damage)
        assert read_score(run) is None                   # the cell is scored again, nothing raises
    (run.path / PER_IMAGE_FILE).write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(VampkerasError, match="cannot read the cell's per-image values"):
        read_per_image(run)
    np.savez(run.path / PER_IMAGE_FILE, log_likelihood=np.array([1.0, np.nan]), elbo=np.zeros(2), kl=np.zeros(2))
    with pytest.raises(VampkerasError, match="finite per-image values"):
        read_per_image(run)


def test_adoption_matches_none_only_for_what_the_dataset_resolves(tmp_path):
    comparison = build_comparison("mnist5k", ["vae"], ["vampprior"], [0], tmp_path)
    (cell,) = comparison.cells()
    saved = comparison.run_config(cell).with_default_paths()
    saved.num_components, saved.likelihood = 500, "bernoulli"        # resolved by the run: adopted
    assert grid.adoption_differences(saved, comparison.run_config(cell)) == []
    saved.max_examples = 500                                         # a run on a subset is not "all the data"
    (difference,) = grid.adoption_differences(saved, comparison.run_config(cell))
    assert difference.startswith("max_examples: the folder's run has 500, the comparison asks for None")


def test_a_moved_comparison_continues_where_it_is_now(tmp_path):
    from vampkeras.comparison.runner import run_grid
    from vampkeras.comparison.worker import read_comparison_config

    first = build_comparison("mnist5k", ["vae"], ["standard", "vampprior"], [0], tmp_path / "A", samples=3, jobs=1)
    for cell in first.cells():
        fake_scored_cell(first, cell, [100.0, 99.0], np.linspace(-90, -80, 10))
    run_grid(first)                                    # every cell scored: nothing to run, the grid saved
    (tmp_path / "A").rename(tmp_path / "B")
    moved = build_comparison("mnist5k", ["vae"], ["standard", "vampprior"], [0], tmp_path / "B", samples=3, jobs=2)
    run_grid(moved)
    saved = read_comparison_config(tmp_path / "B")
    assert saved.out == str(tmp_path / "B") and saved.jobs == 2     # the cells' processes would read these
    assert results.collect(moved)["cells"][0]["cell"] == "vae-standard-lr5e-4-seed0"


def test_restart_never_moves_a_comparison_in_use(tmp_path, monkeypatch):
    from vampkeras.comparison import runner
    from vampkeras.comparison.runner import run_grid

    comparison = build_comparison("mnist5k", ["vae"], ["standard"], [0], tmp_path / "C", samples=3)
    (cell,) = comparison.cells()
    fake_scored_cell(comparison, cell, [100.0], np.linspace(-90, -80, 10))
    (tmp_path / "C" / grid.CONFIG_FILE).write_text(comparison.to_json())
    holder = RunFolder(tmp_path / "C").lock()           # another comparison runs in C
    try:
        with pytest.raises(VampkerasError, match="in use by another process"):
            run_grid(comparison, restart=True)
    finally:
        holder.unlock()
    assert (tmp_path / "C" / cell.name / SCORE_FILE).is_file() and not list(tmp_path.glob("C.restarted-*"))
    monkeypatch.setattr(runner, "_run_cells", lambda *args: None)      # (the new comparison's cells: not here)
    run_grid(comparison, restart=True)                    # once it is free: moved aside, nothing deleted
    (aside,) = tmp_path.glob("C.restarted-*")
    assert (aside / cell.name / SCORE_FILE).is_file()
