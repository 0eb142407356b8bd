"""The documentation cannot rot: every command a reader would type in README.md and the site's pages parses
with the real click command (every option exists, every value converts), every option is explained in the
guide that owns it, the README stays a front door whose test command is CI's, the API reference's modules
declare their public names, and the examples open as notebooks. (The site's build, its links and its pages in
a browser: tests/e2e/test_docs_site.py; the cheap commands run: tests/e2e/test_docs_commands.py.)"""

from __future__ import annotations

import ast
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import vampkeras
from vampkeras.data import DATASETS
from vampkeras.data.user_data import TFDS_PREFIX, is_user_source
from vampkeras_cli.common import DatasetParam
from vampkeras_cli.main import main

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
CI = ROOT / ".ci" / "run"
# The pages the site shows that live outside docs/ (docs/*.md include them).
INCLUDED = [ROOT / "SECURITY.md", ROOT / "CHANGELOG.md", ROOT / "benchmarks" / "README.md"]
SHELL_LANGUAGES = {"bash", "sh", "shell", "console"}
COMPLETION = "_VAMPKERAS_COMPLETE"          # click's shell-completion switch for the `vampkeras` program
# How the docs' commands are run cheaply (tests/e2e/test_docs_commands.py; docs/development.md states the rule):
# these options are appended to the documented command (click keeps an option's last value); `train`'s and
# `compare`'s --epochs is the documented one divided by EPOCH_DIVISOR (at least 1), so that a page's story of
# budgets (300 epochs, then 500) keeps its shape, and 1 where the command names none (a --resume keeps its run's).
SMALL_BUDGET = {"train": ["--warmup", "1", "--max-examples", "200", "--components", "10", "--quiet"],
                "compare": ["--warmup", "1", "--max-examples", "100", "--components", "10", "--samples", "5",
                            "--quiet"],
                "evaluate": ["--samples", "8", "--max-examples", "50"],
                "report": ["--samples", "8", "--max-examples", "50"],
                "score": ["--samples", "8"]}
EPOCH_DIVISOR = 100
# The same budget for the Python snippets of docs/python-api.md (tests/e2e/test_docs_python.py), in the calls'
# own keyword names: these keyword arguments are set (added where the snippet has none) in the snippet's syntax
# tree, every `epochs=` (and a compare's train_options' "epochs") is the documented value divided by
# EPOCH_DIVISOR (at least 1), and nothing else changes.
PYTHON_SMALL_BUDGET = {"RunConfig": {"warmup": 1, "max_examples": 200, "num_components": 10},
                       "compare": {"max_examples": 100, "samples": 5},
                       "compare.train_options": {"warmup": 1, "num_components": 10},
                       "evaluate": {"num_samples": 8, "max_examples": 50},
                       "log_prob": {"num_samples": 8},
                       "log_likelihood": {"num_samples": 8}}


def small_epochs(documented: int) -> int:
    """The epochs a documented budget of ``documented`` epochs runs with: divided by EPOCH_DIVISOR, at least 1."""
    return max(1, int(documented) // EPOCH_DIVISOR)


def small_budget(command: "Command") -> list[str]:
    """The options appended to ``command`` to run it in seconds (SMALL_BUDGET and the --epochs rule)."""
    options = list(SMALL_BUDGET.get(command.name, []))
    if command.name in ("train", "compare"):
        documented = [int(command.args[i + 1]) for i, arg in enumerate(command.args[:-1]) if arg == "--epochs"]
        if documented:
            options = ["--epochs", str(small_epochs(documented[-1])), *options]
        elif "--resume" not in command.args:        # a resumed run keeps the budget it was started with
            options = ["--epochs", "1", *options]
    return options


# The guide that explains each command's every option (docs/reference/cli.md lists them all, generated).
GUIDES = {"train": "training.md", "compare": "comparing.md", "evaluate": "evaluating.md", "sample": "evaluating.md",
          "score": "evaluating.md", "report": "evaluating.md", "datasets": "data.md"}


def documentation_files() -> list[Path]:
    """README.md, the site's pages (docs/, without the build's hooks) and the pages it includes."""
    pages = sorted(path for path in DOCS.rglob("*.md") if "hooks" not in path.relative_to(DOCS).parts)
    return [README, *pages, *INCLUDED]


@dataclass(frozen=True)
class Command:
    """A vampkeras command as a reader would type it: its arguments after the program, where it was found and
    the environment variables set before it."""

    args: tuple[str, ...]
    where: str
    environment: tuple[tuple[str, str], ...] = ()

    @property
    def name(self) -> str | None:
        """The subcommand (train, evaluate, ...), or None for the group alone."""
        return next((arg for arg in self.args if not arg.startswith("-")), None)


def fenced_blocks(text: str, languages) -> list[tuple[int, str]]:
    """(line number of its first line, text) of every fenced block whose language is in ``languages``."""
    blocks, language, lines, start = [], None, [], 0
    for number, line in enumerate(text.splitlines(), 1):
        fence = re.match(r"^\s*```\s*([\w-]*)", line)
        if fence and language is None:
            language, lines, start = fence.group(1).lower() or "text", [], number + 1
        elif fence:
            if language in languages:
                blocks.append((start, "\n".join(lines)))
            language = None
        elif language is not None:
            lines.append(line)
    return blocks


def shell_blocks(text: str) -> list[tuple[int, str]]:
    """(line number, text) of every fenced bash/sh/shell/console block, backslash continuations joined."""
    return [(start, block.replace("\\\n", " ")) for start, block in fenced_blocks(text, SHELL_LANGUAGES)]


def python_snippets(path: Path) -> list[tuple[str, str]]:
    """(where, source) of every fenced python block of the page ``path``, in the page's order."""
    return [(f"{path.name}:{start}", block) for start, block in fenced_blocks(path.read_text(encoding="utf-8"),
                                                                                {"python", "py"})]


class _PythonBudget(ast.NodeTransformer):
    """Rewrites a snippet's calls to PYTHON_SMALL_BUDGET (see there)."""

    def visit_Call(self, node: ast.Call) -> ast.Call:
        self.generic_visit(node)
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        rules = dict(PYTHON_SMALL_BUDGET.get(name, {}))
        for keyword in node.keywords:
            if keyword.arg == "train_options" and name == "compare":
                options = {**ast.literal_eval(keyword.value), **PYTHON_SMALL_BUDGET["compare.train_options"]}
                if "epochs" in options:
                    options["epochs"] = small_epochs(options["epochs"])
                keyword.value = ast.parse(repr(options), mode="eval").body
            elif keyword.arg == "epochs":
                keyword.value = ast.Constant(small_epochs(ast.literal_eval(keyword.value)))
            elif keyword.arg in rules:
                keyword.value = ast.Constant(rules[keyword.arg])
            rules.pop(keyword.arg, None)
        node.keywords += [ast.keyword(arg=key, value=ast.Constant(value)) for key, value in rules.items()]
        return node


def small_python(source: str) -> str:
    """``source`` (a documented Python snippet) with the small budget of PYTHON_SMALL_BUDGET."""
    return ast.unparse(ast.fix_missing_locations(_PythonBudget().visit(ast.parse(source))))


def is_vampkeras(words: list[str]) -> int:
    """How many leading words name vampkeras (`vampkeras`, `.venv/bin/vampkeras`, `python -m vampkeras`): 0 if
    the command is another program."""
    if words and (words[0] == "vampkeras" or words[0].endswith("/bin/vampkeras")):
        return 1
    if len(words) >= 3 and re.fullmatch(r"(.*/)?python3?", words[0]) and words[1:3] == ["-m", "vampkeras"]:
        return 3
    return 0


def commands_in(text: str, where: str) -> list[Command]:
    """The vampkeras commands of ``text``'s shell blocks: each line split into commands at &&, ||, ; and |
    (quotes and comments respected), `VAR=value` prefixes and redirections set aside."""
    found = []
    for start, block in shell_blocks(text):
        for offset, line in enumerate(block.splitlines()):
            lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
            lexer.whitespace_split, lexer.commenters = True, "#"
            words, pieces = [], []
            for token in list(lexer) + [";"]:
                if token in ("&&", "||", ";", "|", "&"):
                    pieces.append(words)
                    words = []
                else:
                    words.append(token)
            for words in pieces:
                environment = []
                while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
                    environment.append(tuple(words.pop(0).split("=", 1)))
                skip = is_vampkeras(words)
                if not skip:
                    continue
                args, rest = [], iter(words[skip:])
                for word in rest:
                    if re.fullmatch(r"\d?(>|>>|<)", word):      # a redirection and its file
                        next(rest, None)
                    else:
                        args.append(word)
                found.append(Command(tuple(args), f"{where}:{start + offset}", tuple(environment)))
    return found


def documented_commands() -> list[Command]:
    return [command for path in documentation_files()
            for command in commands_in(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))]


def raw_values(command: click.Command, ctx: click.Context, args: list[str]) -> dict[str, list]:
    """What the command line gives each parameter, as strings, before any conversion."""
    opts, _, _ = command.make_parser(ctx).parse_args(list(args))
    return {name: list(value) if isinstance(value, (list, tuple)) else [value] for name, value in opts.items()
            if value is not None}


def create_what_it_reads(command: click.Command, ctx: click.Context, args: list[str], sandbox: Path) -> None:
    """Create, empty, the inputs the command names that do not exist (a run folder, a dataset folder, a file to
    score), and the folders that hold its outputs, so that parsing checks the command line and not this
    machine. Only inside ``sandbox`` (the current folder, and the HOME of ``~``)."""
    for param in command.params:
        for value in raw_values(command, ctx, args).get(param.name, []):
            if not isinstance(value, str):
                continue
            kind = param.type
            if isinstance(kind, DatasetParam):
                if value in DATASETS or value.startswith(TFDS_PREFIX):
                    continue
                if Path(value).suffix in (".npy", ".npz"):
                    wanted = "file"
                elif is_user_source(value):
                    wanted = "folder"
                else:                   # neither a name nor a path: the parse must refuse it
                    continue
            elif isinstance(kind, click.Path):
                wanted = ("folder" if not kind.file_okay else "file" if not kind.dir_okay
                          else "file" if Path(value).suffix else "folder") if kind.exists else "parent"
            else:
                continue
            path = Path(value).expanduser().absolute()
            assert path.is_relative_to(sandbox), f"{value}: a documented command should name relative paths"
            if wanted == "parent" or path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
            elif wanted == "folder":
                path.mkdir(parents=True)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()


def parse(command: Command, sandbox: Path) -> str | None:
    """Parse ``command`` as vampkeras would (click's ``make_context``, no resilient parsing: every option must
    exist and every value convert); None if it parses, else why not. A shell-completion command
    (`_VAMPKERAS_COMPLETE=bash_source vampkeras`) is run: it must print the completion script."""
    completion = dict(command.environment).get(COMPLETION)
    if completion is not None:
        result = CliRunner().invoke(main, list(command.args), prog_name="vampkeras", env={COMPLETION: completion})
        return None if result.exit_code == 0 and COMPLETION in result.output else result.output[-500:]
    try:
        with main.make_context("vampkeras", list(command.args), resilient_parsing=False) as ctx:
            rest = [*ctx._protected_args, *ctx.args]
            if not rest:
                return "no command"
            name, subcommand, args = main.resolve_command(ctx, rest)
            probe = click.Context(subcommand, info_name=name, parent=ctx)
            create_what_it_reads(subcommand, probe, args, sandbox)
            subcommand.make_context(name, list(args), parent=ctx, resilient_parsing=False).close()
    except click.exceptions.Exit as done:           # --help, --version
        return None if done.exit_code == 0 else f"exit {done.exit_code}"
    except click.ClickException as error:
        return error.format_message()
    return None


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path


# -- every command a reader types ----------------------------------------------------------------------------
def test_the_documented_commands_are_found():
    commands = documented_commands()
    where = {command.where.split(":")[0] for command in commands}
    assert {"README.md", "docs/getting-started.md", "docs/training.md", "docs/data.md", "docs/comparing.md",
            "docs/evaluating.md", "docs/serving.md", "docs/runs-and-safety.md", "docs/RESULTS.md"} <= where
    names = {command.name for command in commands}
    assert {"train", "evaluate", "sample", "score", "report", "compare", "datasets"} <= names
    # the quickstart: one line, two vampkeras commands after the install
    quickstart = [command for command in commands if command.where.startswith("README.md")][:2]
    assert [command.name for command in quickstart] == ["train", "evaluate"]
    assert quickstart[1].args == ("evaluate", "saved_models/quickstart")


def test_every_documented_command_parses(sandbox):
    commands = documented_commands()
    assert len(commands) > 30
    failures = [f"{command.where}: vampkeras {shlex.join(command.args)}: {why}"
                for command in commands if (why := parse(command, sandbox))]
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("line, message", [
    ("vampkeras train --epoch 10", "No such option '--epoch'"),
    ("vampkeras train --model vea", "'vea' is not one of"),
    (".venv/bin/vampkeras evaluate saved_models/quickstart --samples 0", "0 is not in the range"),
    ("python -m vampkeras compare --prior standard,vampprior", "Missing option '--out'"),
    ("VAMPKERAS_OFFLINE=1 vampkeras sample runs/x --pseudo-input -1 && echo done", "-1 is not in the range"),
    ("vampkeras traine --epochs 1", "No such command 'traine'"),
])
def test_a_command_naming_an_option_or_a_value_that_does_not_exist_fails(sandbox, line, message):
    (command,) = commands_in(f"```bash\n{line}\n```\n", "page.md")
    assert message in (parse(command, sandbox) or "parsed")


def test_python_snippets_get_the_small_budget_and_nothing_else_changes():
    source = ('result = train(RunConfig(dataset="mnist5k", epochs=300, warmup=100, run_dir="runs/a"))\n'
              'summary, _ = evaluate(result.export_dir, num_samples=1000)\n'
              'model.fit(x, batch_size=100, epochs=10)\n'
              'log_p = model.log_prob(images, num_samples=5000)\n'
              's = vampkeras.compare("mnist5k", seeds=3, train_options={"epochs": 250, "warmup": 5})')
    assert small_python(source).splitlines() == [
        "result = train(RunConfig(dataset='mnist5k', epochs=3, warmup=1, run_dir='runs/a', max_examples=200, "
        "num_components=10))",
        "summary, _ = evaluate(result.export_dir, num_samples=8, max_examples=50)",
        "model.fit(x, batch_size=100, epochs=1)",
        "log_p = model.log_prob(images, num_samples=8)",
        "s = vampkeras.compare('mnist5k', seeds=3, train_options={'epochs': 2, 'warmup': 1, 'num_components': 10}, "
        "max_examples=100, samples=5)"]


def test_commands_are_read_through_chains_continuations_comments_and_redirections():
    text = ("```bash\n"
            "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/vampkeras train --epochs 3 \\\n"
            "  --run-dir 'runs/a b'   # a comment --not-an-option\n"
            "TF_NUM_INTRAOP_THREADS=1 python -m vampkeras evaluate runs/x > out.json; echo ok\n"
            "```\n```text\nvampkeras train --not-a-command\n```\n"
            "```python\nvampkeras = 1\n```\n")
    commands = commands_in(text, "page.md")
    assert [command.args for command in commands] == [("train", "--epochs", "3", "--run-dir", "runs/a b"),
                                                      ("evaluate", "runs/x")]
    assert commands[1].environment == (("TF_NUM_INTRAOP_THREADS", "1"),)


# -- every option explained once -------------------------------------------------------------------------------
@pytest.mark.parametrize("name, guide", sorted(GUIDES.items()))
def test_every_option_is_explained_in_the_guide_that_owns_it(name, guide):
    text = (DOCS / guide).read_text(encoding="utf-8")
    command = main.commands[name]
    if name == "compare":       # compare's train options are train's, explained in training.md
        own = {option.name for option in main.commands["train"].params}
        params = [param for param in command.params if param.name not in own or param.name == "restart"]
    else:
        params = command.params
    missing = []
    for param in params:
        if not isinstance(param, click.Option) or param.name == "help":
            continue
        names = param.opts + param.secondary_opts
        if not any(re.search(rf"`{re.escape(option)}[` ]", text) for option in names):
            missing.append("/".join(names))
    assert not missing, f"docs/{guide} does not explain {missing}"


# -- the README is the front door ------------------------------------------------------------------------------
def test_the_readme_is_short_and_its_test_command_is_the_one_ci_runs():
    readme = README.read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 150
    blocks = [block for _, block in shell_blocks(readme)]
    quickstart, tests = blocks[0], blocks[1]
    assert quickstart.startswith("python3 -m venv .venv && .venv/bin/pip install -c requirements.txt -e . && ")
    ci_last_line = CI.read_text(encoding="utf-8").rstrip("\n").splitlines()[-1]
    assert tests == ci_last_line
    assert (DOCS / "getting-started.md").read_text(encoding="utf-8").count(ci_last_line) == 1
    assert '".[test,docs]"' in tests and tests.endswith("-n 2 tests")


def test_the_readme_links_resolve():
    from markdown.extensions.toc import slugify

    readme = README.read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)\s]+)\)", readme)
    assert len(links) > 15
    for link in links:
        if re.match(r"[a-z]+:", link):
            continue
        target, _, anchor = link.partition("#")
        path = ROOT / target
        assert path.exists(), link
        if anchor:
            headings = re.findall(r"^#+ (.+)$", path.read_text(encoding="utf-8"), re.MULTILINE)
            assert anchor in {slugify(heading, "-") for heading in headings}, link


def test_the_documented_wheel_is_this_version():
    mentioned = {match for path in documentation_files()
                 for match in re.findall(r"vampkeras-(\d+\.\d+\.\d+)", path.read_text(encoding="utf-8"))}
    assert mentioned == {vampkeras.__version__}


def test_the_changelog_has_this_version_and_keeps_a_changelogs_form():
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    versions = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - (\S+)", changelog, re.MULTILINE)
    assert versions[0][0] == vampkeras.__version__ and [v for v, _ in versions][-1] == "0.1.0"
    for heading in re.findall(r"^### (.+)$", changelog, re.MULTILINE):
        assert heading in {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}, heading


# -- the API reference -----------------------------------------------------------------------------------------
def reference_pages() -> dict[str, Path]:
    """{module: page} of docs/reference/api (one `::: module` per page)."""
    pages = {}
    for page in sorted((DOCS / "reference" / "api").glob("*.md")):
        if page.name == "index.md":
            continue
        (module,) = re.findall(r"^::: ([\w.]+)$", page.read_text(encoding="utf-8"), re.MULTILINE)
        assert page.stem == module
        pages[module] = page
    return pages


def module_names(module: str) -> tuple[set[str], list[str] | None]:
    """The names ``module`` binds at its top level (definitions, assignments, imports) and its ``__all__``
    (None without one), read from its source without importing it."""
    path = ROOT / Path(*module.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names, exported = set(), None
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                if isinstance(target, ast.Name):
                    names.add(target.id)
                    if target.id == "__all__":
                        exported = list(ast.literal_eval(node.value))
    return names, exported


def page_members(page: Path) -> list[str] | None:
    """The `members:` a reference page lists (for a module that does not declare __all__ yet), or None."""
    text = page.read_text(encoding="utf-8")
    if "      members:" not in text:
        return None
    return re.findall(r"^        - (\w+)$", text.split("      members:", 1)[1], re.MULTILINE)


def test_every_reference_page_is_in_the_navigation_and_the_index():
    pages = reference_pages()
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    index = (DOCS / "reference" / "api" / "index.md").read_text(encoding="utf-8")
    for module in pages:
        assert f"reference/api/{module}.md" in nav and f"]({module}.md)" in index, module
    assert {"vampkeras", "vampkeras.config", "vampkeras.training", "vampkeras.evaluation", "vampkeras.trained_model",
            "vampkeras.export", "vampkeras.models", "vampkeras.priors", "vampkeras.comparison.api"} <= set(pages)


@pytest.mark.parametrize("module", sorted(reference_pages()))
def test_each_reference_module_declares_its_public_names(module):
    """The reference shows a module's __all__; a module that does not declare one yet has its page list the
    names instead (the same list, once __all__ exists). Every name is one the module binds."""
    names, exported = module_names(module)
    listed = page_members(reference_pages()[module])
    assert exported is not None or listed is not None, f"{module} declares no __all__ and its page lists no members"
    if exported is not None and listed is not None:
        assert set(listed) == set(exported), f"docs/reference/api/{module}.md lists other names than __all__"
    public = exported if exported is not None else listed
    assert public and len(set(public)) == len(public)
    missing = set(public) - names - {"__version__"}
    assert not missing, f"{module} has no {sorted(missing)}"


# -- the examples ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("example", sorted((ROOT / "examples").glob("*.py")), ids=lambda path: path.name)
def test_every_example_is_a_literate_script_that_jupytext_opens_as_a_notebook(example):
    import jupytext           # (the docs extra)
    notebook = jupytext.read(example)
    assert notebook.metadata["jupytext"]["text_representation"]["format_name"] == "percent"
    kinds = [cell.cell_type for cell in notebook.cells]
    assert kinds[0] == "markdown" and notebook.cells[0].source.startswith("# ")
    assert kinds.count("markdown") >= 2 and kinds.count("code") >= 2
    source = example.read_text(encoding="utf-8")
    assert 'os.environ.get("VAMPKERAS_EXAMPLE_BUDGET") == "tiny"' in source     # the suite's budget
    assert f"examples/{example.name}" in (DOCS / "python-api.md").read_text(encoding="utf-8")
