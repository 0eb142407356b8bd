"""`vampkeras compare`: train and score a grid of models × priors × seeds on one dataset and write one report.
Parsing only: the grid, its cells and its statistics live in :mod:`vampkeras.comparison`."""

from __future__ import annotations

import copy

import click
from click.core import ParameterSource

from vampkeras.comparison.grid import COMPARISON_OWNED_FIELDS
from vampkeras.config import MAX_IMPORTANCE_SAMPLES, MODELS, PRIORS, SEED_LIMIT
from vampkeras_cli.common import DATASET, user_errors

__all__ = ["make_compare", "progress_line", "CommaList", "Seeds"]

# train's options that compare sets itself (per cell or for the whole grid), and --quiet, which compare has of
# its own: not copied as train options
OWN_OPTIONS = COMPARISON_OWNED_FIELDS + ("quiet",)


class CommaList(click.ParamType):
    """Comma-separated values, each converted by ``item`` (a click type)."""

    name = "list"

    def __init__(self, item: click.ParamType, what: str):
        self.item, self.what = item, what

    def convert(self, value, param, ctx) -> list:
        if isinstance(value, list):
            return value
        parts = [part.strip() for part in str(value).split(",")]
        if not all(parts):
            self.fail(f"{value!r} is not a comma-separated list of {self.what}", param, ctx)
        return [self.item.convert(part, param, ctx) for part in parts]


class Seeds(click.ParamType):
    """``3`` (seeds 0, 1, 2) or ``14,69,420`` (those seeds; one named seed: ``14,``)."""

    name = "seeds"

    def convert(self, value, param, ctx) -> list[int]:
        if isinstance(value, list):
            return value
        text = str(value).strip()
        seed = click.IntRange(0, SEED_LIMIT - 1)
        if "," not in text:
            count = click.IntRange(1, 1000).convert(text, param, ctx)
            return list(range(count))
        return CommaList(seed, "seeds").convert(text.removesuffix(","), param, ctx)     # "14,": seed 14 alone


def _train_options(command: click.Command) -> list[click.Parameter]:
    """`train`'s options but for those compare owns, copied without their defaults shown (the protocol decides
    what a train option left out means)."""
    options = []
    for param in command.params:
        if param.name in OWN_OPTIONS:
            continue
        option = copy.copy(param)
        option.show_default = False
        options.append(option)
    return options


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def progress_line(state) -> str:
    """One line for a :class:`vampkeras.comparison.runner.GridProgress`."""
    parts = []
    for cell in state.running:
        if cell.phase == "done":
            parts.append(f"{cell.name}: finished")
        elif cell.phase == "scoring":
            parts.append(f"{cell.name}: scoring" + (f" {cell.done}/{cell.total} images" if cell.total else ""))
        else:
            speed = f", {cell.seconds_per_epoch:.1f} s/epoch" if cell.seconds_per_epoch else ""
            parts.append(f"{cell.name}: epoch {cell.epoch}/{cell.max_epochs}{speed}")
    left = ("" if state.upper_bound_left is None else
            f"; at most {_duration(state.upper_bound_left)} of training left (at the maximum epochs; early "
            "stopping usually ends sooner)")
    return (f"[{state.finished}/{state.total} cells done, {_duration(state.elapsed)}] " + " | ".join(parts) + left)


def make_compare(train: click.Command) -> click.Command:
    """The `compare` command, with `train`'s options (those a user may pass to every cell)."""

    @click.command(name="compare")
    @click.option("--dataset", type=DATASET, default="mnist5k", show_default=True,
                  help="The dataset every cell trains and is scored on: a name, or your own images as for `train`.")
    @click.option("--model", "models", type=CommaList(click.Choice(MODELS), "models"), default="vae",
                  show_default=True, help=f"Models, comma-separated ({', '.join(MODELS)}).")
    @click.option("--prior", "priors", type=CommaList(click.Choice(PRIORS), "priors"), default="standard,vampprior",
                  show_default=True, help=f"Priors, comma-separated ({', '.join(PRIORS)}); each pair is compared.")
    @click.option("--seeds", type=Seeds(), default="3", show_default=True,
                  help="A count (3: seeds 0, 1, 2) or the seeds, comma-separated (14,69,420; one seed: 14,).")
    @click.option("--lr", "lrs", type=CommaList(click.FloatRange(min=0, min_open=True), "learning rates"),
                  default=None, help="Learning rates, comma-separated [default: the protocol's; paper: 1e-4,5e-4, "
                                     "each (model, prior) keeping the one with the lower mean validation loss].")
    @click.option("--protocol", type=click.Choice(["paper", "short"]), default="short", show_default=True,
                  help="paper: §5.1 (at most 2000 epochs, warm-up 100, look-ahead 50, both learning rates); short: "
                       "50 epochs (HVAE 30), warm-up 10. Train options given here override it.")
    @click.option("--samples", type=click.IntRange(1, MAX_IMPORTANCE_SAMPLES), default=5000, show_default=True,
                  help="Importance samples per test image, the same for every cell (the paper uses 5000).")
    @click.option("--max-examples", type=click.IntRange(min=1), default=None,
                  help="Use at most N images of each split (training and scoring).")
    @click.option("--data-dir", type=click.Path(file_okay=False), default=None, help="Dataset folder.")
    @click.option("--jobs", type=click.IntRange(min=1), default=None,
                  help="Cells trained at once, the CPU cores split between them [default: one per core].")
    @click.option("--out", required=True, type=click.Path(file_okay=False),
                  help="The comparison folder: a run folder per cell, comparison.json/.csv/.md and comparison.html.")
    @click.option("--restart", is_flag=True,
                  help="Move the comparison in --out aside (nothing is deleted) and start it again.")
    @click.option("--quiet", is_flag=True, help="No progress line; one line per finished cell (for logs).")
    @click.pass_context
    @user_errors
    def compare(ctx, dataset, models, priors, seeds, lrs, protocol, samples, max_examples, data_dir, jobs, out,
                restart, quiet, **options):
        """Train and score every (model, prior, learning rate, seed) cell on one dataset and report whether the
        priors differ, by how much, and how sure that is: each cell an ordinary run folder in
        `OUT/<model>-<prior>-lr<lr>-seed<seed>`; paired differences of per-image test log-likelihoods with 95%
        intervals over images and seeds; the KL term split into I(x; z) and KL(q(z) || p(z)). Re-running the
        same command continues where it stopped."""
        from vampkeras.comparison.api import build_comparison, compare as run_comparison

        given = {name: value for name, value in options.items()
                 if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE}
        # before TensorFlow loads, a mistake is refused at once (nothing is created)
        build_comparison(dataset, models, priors, seeds, out, lrs, protocol, given, samples, max_examples, data_dir,
                         jobs)
        last = {"finished": None, "line": ""}

        def progress(state):
            if state.finished != last["finished"] and last["finished"] is not None:
                click.echo(("\n" if not quiet else "") + f"{state.finished}/{state.total} cells done", err=True)
            last["finished"] = state.finished
            line = progress_line(state)
            if not quiet and line != last["line"]:
                click.echo("\r" + line[:250].ljust(len(last["line"][:250])), err=True, nl=False)
                last["line"] = line

        summary = run_comparison(dataset, models, priors, seeds, out, lrs, protocol, given, samples, max_examples,
                                 data_dir, jobs, restart=restart, progress=progress)
        if not quiet and last["finished"] is not None:
            click.echo("", err=True)
        for pair in summary["pairs"]:
            click.echo(pair["sentence"])
        click.echo(f"wrote {out}/comparison.html, comparison.json, comparison.csv and comparison.md")

    compare.params.extend(_train_options(train))
    return compare
