"""The README's commands run as written, on tiny data, so the README cannot drift from the code.

- Every `kgen ...` line of a fenced shell block of README.md runs through the
  real CLI (click's `CliRunner`, in this process, torch backend), in order, in
  a temporary working folder. What would take minutes is cut, never renamed:
  `kgen train` gets `--epochs 1 --limit 256 --offline` (its `--data-dir` is
  dropped), `kgen evaluate` gets `-n 32 --ll-samples 0 --no-figures`. A line
  with `--backend jax|tensorflow`, `--devices` or `--data-dir` (another
  backend, several devices, data that is not here) is parsed, not run.
- `artifacts/MODEL/<run>` (and `RUN`) stand for a run directory: each becomes
  a tiny run of that model trained here first (64 images; a flow 8 channels
  wide); so does a preset's name
  (`cgan-mnist`) that kgen does not ship yet.
- Every `kgen ...` line of the docs pages (docs/*.md; not docs/results/, the
  log of what was run then) is parsed by click with its real arguments: an
  option renamed or removed, a choice that no longer exists, fails here. A
  line whose comment says `Error` shows a refusal and is not checked.
- The README's python blocks run in order as one script in a subprocess with
  KERAS_BACKEND=torch; `fit` is cut to one epoch of at most 256 images.
- Any other shell line of the README (not `kgen`, `pip install`, `python -m
  pytest`) fails the test: teach this file how to run it.

The `<!-- ci:commands -->` block is CI's own; its `kgen` line runs here too.
"""

import os
import re
import shlex
import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

from kgen import presets, specs
from kgen.cli.main import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
DOCS = os.path.join(ROOT, "docs")
SHELL = {"bash", "sh", "shell", "console"}
TRAIN_CUT = ["--epochs", "1", "--limit", "256", "--val-images", "32", "--offline", "--verbose", "0"]
EVALUATE_CUT = ["-n", "32", "--ll-samples", "0", "--no-figures"]
RUN_PLACEHOLDER = re.compile(r"^(?:artifacts/(\w+)/)?(?:<[^>]*>[\w-]*|RUN|GAN_RUN)$")
NOT_HERE = ("--devices", "--data-dir")
STAND_IN_CUT = {"flow": ["--width", "8", "--steps", "2"]}  # a stand-in run only has to exist: the smallest there is
PRESET_NAME = re.compile(r"^(\w+)-mnist$")  # a preset's name (cgan-mnist): a tiny run of its model stands in until it ships


def fenced_blocks(path):
    """(language, first line number, text) of every fenced block of a markdown file."""
    blocks, lang, start, body = [], None, 0, []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            fence = re.match(r"^\s*```(\w*)", line)
            if fence and lang is None:
                lang, start, body = fence.group(1) or "text", number + 1, []
            elif fence:
                blocks.append((lang, start, "".join(body)))
                lang = None
            elif lang is not None:
                body.append(line)
    return blocks


def shell_lines(path):
    """(line number, words) of each command of the shell blocks: continuations joined,
    comments and leading VAR=value assignments removed."""
    lines = []
    for lang, start, text in fenced_blocks(path):
        if lang not in SHELL:
            continue
        joined, first = "", None
        for offset, line in enumerate(text.splitlines()):
            first = start + offset if first is None else first
            if line.rstrip().endswith("\\"):
                joined += line.rstrip()[:-1] + " "
                continue
            joined += line
            for part in re.split(r"\s&&\s", joined):
                words = shlex.split(part, comments=True)
                while words and re.match(r"^[A-Z_]+=", words[0]):
                    words = words[1:]
                if words:
                    lines.append((first, words, part))
            joined, first = "", None
    return lines


def kgen_commands(path):
    return [(n, words[1:], text) for n, words, text in shell_lines(path) if words[0] == "kgen"]


README_COMMANDS = kgen_commands(README)
DOC_PAGES = sorted(p for p in os.listdir(DOCS) if p.endswith(".md"))
DOC_COMMANDS = [
    (f"{page}:{n}", args, text)
    for page in DOC_PAGES
    for n, args, text in kgen_commands(os.path.join(DOCS, page))
    if not re.search(r"#.*\bError\b", text)
]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """One working folder for the module: the README's runs land in its artifacts/."""
    return tmp_path_factory.mktemp("readme")


@pytest.fixture(scope="module")
def runs():
    """The latest tiny run directory of each model, made by the README's lines or on demand."""
    return {}


def invoke(args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def run_of(model, runs, workdir):
    """A tiny run of `model` (any model if None), trained here the first time it is asked for."""
    if model is None and runs:
        return runs[sorted(runs)[0]]
    model = model or "vae"
    if model not in runs:
        result = invoke(["train", model, *TRAIN_CUT, *STAND_IN_CUT.get(model, ()), "--limit", "64",
                         "--out", workdir / "artifacts", "--name", "stand-in"])
        assert result.exit_code == 0, result.output
        runs[model] = result.output.strip().splitlines()[-1]
    return runs[model]


def with_runs(args, runs, workdir):
    """The arguments with every run placeholder replaced by a tiny run of its model."""
    out = []
    for a in args:
        match = RUN_PLACEHOLDER.match(a)
        if match:
            model = match.group(1) or ("gan" if a == "GAN_RUN" else None)
            a = run_of(model, runs, workdir)
        preset = PRESET_NAME.match(a)
        if preset and presets.find(a) is None:  # a run works wherever a preset does
            a = run_of(preset.group(1) if preset.group(1) in specs.NAMES else None, runs, workdir)
        out.append(a)
    return out


def parse_only(args):
    """Lines that need another backend, several devices or data that is not here."""
    backend = args[args.index("--backend") + 1] if "--backend" in args else "torch"
    return backend != "torch" or any(a in NOT_HERE for a in args)


def parses(args, workdir):
    """Click parses the command with these arguments (types, choices, ranges, paths)."""
    command = main.get_command(None, args[0])
    assert command is not None, f"kgen has no command {args[0]!r}"
    args = list(args[1:])
    for i, a in enumerate(args[:-1]):  # data that is not here: an existing stand-in folder
        if a in ("--data-dir", "--input"):
            stand_in = workdir / "stand-in" / os.path.basename(args[i + 1])
            stand_in.parent.mkdir(exist_ok=True)
            if a == "--data-dir":
                stand_in.mkdir(exist_ok=True)
            else:
                stand_in.touch()
            args[i + 1] = str(stand_in)
    with command.make_context(command.name, args) as ctx:
        return ctx


@pytest.mark.parametrize("number,args,text", README_COMMANDS, ids=[f"README:{n}" for n, _, _ in README_COMMANDS])
def test_readme_command_runs(number, args, text, workdir, runs, monkeypatch):
    monkeypatch.chdir(workdir)
    args = with_runs(args, runs, workdir)
    if parse_only(args):
        parses(args, workdir)
        return
    if args[0] == "train":
        args = args + TRAIN_CUT
    elif args[0] == "evaluate":
        args = args + EVALUATE_CUT
    result = invoke(args)
    assert result.exit_code == 0, f"README line {number}: {text}\n{result.output}"
    if args[0] == "train":
        runs[args[1]] = result.output.strip().splitlines()[-1]


@pytest.mark.parametrize("where,args,text", DOC_COMMANDS, ids=[w for w, _, _ in DOC_COMMANDS])
def test_docs_command_parses(where, args, text, workdir, runs, monkeypatch):
    monkeypatch.chdir(workdir)
    parses(with_runs(args, runs, workdir), workdir)


def test_readme_has_no_other_shell_commands():
    allowed = ("kgen", "pip", "python -m pytest")
    other = [(n, text) for n, words, text in shell_lines(README) if not " ".join(words).startswith(allowed)]
    assert not other, f"README shell lines test_readme.py does not know how to run: {other}"


def test_readme_has_commands():
    """The extraction itself: the quick start's commands and python blocks are found."""
    names = {args[0] for _, args, _ in README_COMMANDS}
    assert {"train", "sample", "evaluate", "complete", "compare", "runs"} <= names
    assert any(lang == "python" for lang, _, _ in fenced_blocks(README))


PRELUDE = """
import keras

_fit = keras.Model.fit


def _short_fit(self, x=None, y=None, *args, **kwargs):
    # the README's fit, cut to one epoch of at most 256 images
    kwargs.update(epochs=1, verbose=0)
    if hasattr(x, "shape"):
        x = x[:256]
        y = y[:256] if hasattr(y, "shape") else y
    return _fit(self, x, y, *args, **kwargs)


keras.Model.fit = _short_fit
"""


def test_readme_python_runs(tmp_path):
    blocks = [text for lang, _, text in fenced_blocks(README) if lang == "python"]
    script = tmp_path / "readme.py"
    # the README's first block sets KERAS_BACKEND itself; the prelude patches fit after that import
    first, rest = blocks[0], blocks[1:]
    head, sep, tail = first.partition("import keras\n")
    assert sep, "the README's first python block imports keras"
    script.write_text(head + sep + textwrap.dedent(PRELUDE) + tail + "\n".join(rest))
    env = dict(os.environ, KERAS_BACKEND="torch", OMP_NUM_THREADS="1", TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]


def test_cli_page_is_the_cli_help():
    """docs/cli.md is the output of `kgen COMMAND --help`: rerun docs/make_cli_page.py after a CLI change."""
    sys.path.insert(0, DOCS)
    try:
        import make_cli_page
    finally:
        sys.path.remove(DOCS)
    with open(make_cli_page.PAGE, encoding="utf-8") as f:
        assert f.read() == make_cli_page.page(), "docs/cli.md is stale: run python docs/make_cli_page.py"
