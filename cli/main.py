"""The `kgen` command: parse options, pick the backend, call kgen, print.

Keras reads `KERAS_BACKEND` when it is first imported, so nothing here imports
Keras (or kgen's models) at module level: every command imports inside its
body, after `--backend` has set the environment.
"""

import errno
import functools
import os
import sys
import traceback
import warnings

import click

from kgen import specs  # what each model is: names, options, defaults (imports no Keras)
from kgen.specs import TrainConfig

BACKENDS = ("torch", "jax", "tensorflow")


class KgenGroup(click.Group):
    """Turns kgen's user errors into one line and a non-zero exit.

    `KgenError`s carry their exit code (1; 3 when training diverged; 130 when
    it was interrupted); a `ValueError` from a model's options exits 1; an
    `OSError` (a full disk, a folder that cannot be written) names the file
    and exits 1. `kgen --debug ...` shows the traceback as well.
    """

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as e:
            from kgen.errors import KgenError

            if ctx.obj and ctx.obj.get("debug"):
                traceback.print_exc()
            if isinstance(e, OSError):
                error = click.ClickException(_os_error_message(e))
            elif isinstance(e, (KgenError, ValueError)):
                error = click.ClickException(str(e).splitlines()[0] if str(e) else type(e).__name__)
                error.exit_code = getattr(e, "exit_code", 1)
            else:
                raise
            raise error from None


def _os_error_message(e):
    if e.errno == errno.ENOSPC:  # only a write fills a disk
        from kgen.checkpoint import resume_command

        where = f" while writing {e.filename}" if e.filename else ""
        run = getattr(e, "kgen_run", None)  # set by training (kgen.training._note_full_disk)
        if getattr(e, "kgen_checkpoint", False):
            return (
                f"No space left on device{where}; the run keeps its last checkpoint. "
                f"Free some space, then continue with: {resume_command(run)}"
            )
        if run:
            return (
                f"No space left on device{where}; the run had saved no checkpoint yet, so there is nothing to "
                f"resume. Free some space, then train again (and delete {run})."
            )
        return f"No space left on device{where}; free some space and run the command again."
    where = f": {e.filename}" if e.filename else ""  # a read or a write: say which file, not which
    return f"{e.strerror or e}{where}."


class FiniteFloat(click.FloatRange):
    """A `click.FloatRange` that also refuses nan and inf."""

    name = "finite float range"

    def convert(self, value, param, ctx):
        import math

        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


class RunOrPreset(click.ParamType):
    """A run directory, or a preset: the name of one that kgen ships (`kgen presets`), or its folder.

    A preset's name becomes its folder; a folder of that name in the current
    directory comes first.
    """

    name = "run"

    def convert(self, value, param, ctx):
        from kgen import presets

        value = os.fspath(value)
        if os.path.isdir(value):
            return value
        path = presets.find(value)
        if path is None:
            shipped = presets.names()
            self.fail(
                f"{value!r} does not exist as a run directory, and no preset has that name "
                f"(presets: {', '.join(shipped) if shipped else 'none yet'}).", param, ctx,
            )
        return path


RUN = RunOrPreset()


def _per_model(default_of, models=None):
    """A default as --help shows it: one value, or the value of each model (`ae, vae: 2; gan, cgan: 64`)."""
    groups = {}
    for name in models or specs.NAMES:
        value = default_of(specs.SPECS[name])
        groups.setdefault(repr(value), (value, []))[1].append(name)
    shown = [(_shown(value), names) for value, names in groups.values()]
    if len(shown) == 1:
        return shown[0][0]
    return "; ".join(f"{', '.join(names)}: {value}" for value, names in shown)


def _shown(value):
    if isinstance(value, bool):
        return "on" if value else "off"
    return '""' if value == "" else str(value)


def _click_type(option):
    """The click type of a `specs.Option`."""
    if option.choices:
        return click.Choice(option.choices)
    if option.type is int:
        return click.IntRange(min=option.low, max=option.high)
    if option.type is float:
        return FiniteFloat(min=option.low, max=option.high, min_open=option.low_open, max_open=option.high_open)
    return None


def model_options(f):
    """Adds one option per entry of `kgen.specs.OPTIONS`: the models that take it and their defaults come from there.

    An option not given leaves the model's own default, as `--help` shows it
    (one value, or one per model); an option the chosen model does not take is
    a usage error.
    """
    for name, option in reversed(specs.OPTIONS.items()):
        models = specs.takers(name)
        flag = specs.flag(name)
        if option.type is bool:
            decls = [f"{flag}/--no-{flag[2:]}", name]
        else:
            decls = [flag] + ([option.alias] if option.alias else []) + [name]
        values = {repr(specs.SPECS[m].defaults()[name]): specs.SPECS[m].defaults()[name] for m in models}
        alike = len(values) == 1  # else None, each model its own (--help shows which)
        f = click.option(
            *decls,
            type=_click_type(option),
            default=next(iter(values.values())) if alike else None,
            show_default=True if alike else _per_model(lambda spec: spec.defaults()[name], models),
            help=f"{', '.join(models)}: {option.help}" if len(models) < len(specs.NAMES) else option.help,
        )(f)
    return f


def _check_name(ctx, param, value):
    from kgen import runs
    from kgen.errors import RunError

    try:
        runs.check_name(value)
    except RunError as e:
        raise click.BadParameter(str(e).split(" Received:")[0].removeprefix("--name "), param_hint="--name") from None
    return value


# what `import keras` imports whenever it is installed, each in a try/except ImportError, for features that no
# command uses: jax (keras.callbacks.OrbaxCheckpoint, on every backend), scikit-learn (keras.wrappers), pandas
# (DataFrames as fit inputs), matplotlib.pyplot (keras.visualization), IPython (keras.saving's file editor),
# requests (keras.callbacks.RemoteMonitor); each with the backend that needs it (TensorFlow imports requests)
KERAS_EXTRAS = {"jax": "jax", "sklearn": None, "pandas": None, "matplotlib": None, "IPython": None, "requests": "tensorflow"}


def _import_keras(backend):
    """Imports Keras without the packages of `KERAS_EXTRAS`: a third of the CPU time of every command's start.

    While Keras is imported, each is marked absent (`sys.modules[name] =
    None`: its import raises ImportError, which Keras catches); then the
    marks go, so kgen's own imports of scikit-learn (t-SNE) and matplotlib
    (figures) load them as usual. Only those Keras features see them as not
    installed, in this process. Nothing is done when Keras is already imported.
    """
    if "keras" in sys.modules:
        return
    skipped = [name for name, needed_by in KERAS_EXTRAS.items() if name not in sys.modules and needed_by != backend]
    for name in skipped:
        sys.modules[name] = None
    try:
        import keras  # noqa: F401
    finally:
        for name in skipped:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


def _set_backend(ctx, param, value):
    if value:
        os.environ["KERAS_BACKEND"] = value
    os.environ.setdefault("KERAS_BACKEND", "torch")
    _import_keras(os.environ["KERAS_BACKEND"])
    from kgen.backend.common import hide_tensorflow, keep_freed_memory

    if os.environ["KERAS_BACKEND"] != "tensorflow":
        hide_tensorflow()  # no TensorFlow import, and none of its log lines, on torch and jax
    if os.environ["KERAS_BACKEND"] == "torch":
        keep_freed_memory()  # torch's CPU steps reuse freed memory instead of faulting in fresh pages
    return os.environ["KERAS_BACKEND"]


def _verbosity(verbose):
    """Keras's verbosity: the option's, else a progress bar on a terminal and one line per epoch otherwise."""
    if verbose is not None:
        return int(verbose)
    return 1 if sys.stdout.isatty() else 2


def verbose_option(f):
    return click.option(
        "--verbose", type=click.Choice(("0", "1", "2")),
        help="Keras's verbosity: 0 silent, 1 a progress bar, 2 one line per epoch  [default: 1 on a terminal, else 2].",
    )(f)


def backend_option(f):
    return click.option(
        "--backend",
        type=click.Choice(BACKENDS),
        callback=_set_backend,
        is_eager=True,
        expose_value=False,
        help="Keras backend (default: $KERAS_BACKEND, else torch).",
    )(f)


def _quiet():
    """Keeps TensorFlow's start-up logging and Python's warning source lines off the screen."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "torch")

    def show(message, category, filename, lineno, file=None, line=None):
        click.echo(f"Warning: {message}", err=True)

    warnings.showwarning = show


@click.group(cls=KgenGroup)
@click.option("--debug", is_flag=True, help="Show the full traceback of an error.")
@click.version_option(package_name="kgen")
@click.pass_context
def main(ctx, debug):
    """Generative models of handwritten digits on Keras 3."""
    ctx.ensure_object(dict)["debug"] = debug
    _quiet()


@main.command()
@click.argument("model", type=click.Choice(specs.NAMES), required=False)
@click.option("--epochs", type=click.IntRange(min=1), default=TrainConfig.epochs, show_default=True, help="Epochs in all (with --resume: the run's own unless given).")
@click.option("--batch-size", type=click.IntRange(min=1), show_default=_per_model(lambda s: s.batch_size), help="Images per step.")
@click.option("--dataset", default=TrainConfig.dataset, show_default=True, help="mnist, fashion_mnist, or another 28x28 TFDS set.")
@click.option("--data-dir", type=click.Path(exists=True), envvar="KGEN_DATA_DIR", help="IDX files or an .npz to train on [env: KGEN_DATA_DIR].")
@click.option("--offline", is_flag=True, help="No network: --data-dir or the bundled MNIST sample.")
@click.option("--limit", type=click.IntRange(min=1), help="Train on the first N training images.")
@click.option("--val-images", type=click.IntRange(min=0), default=TrainConfig.val_images, show_default=True, help="Test images evaluated after every epoch (val_* columns of history.csv; at most --limit); 0: none.")
@click.option("--lr-decay", is_flag=True, help="Lower every learning rate linearly over the epochs (epoch e of E at (E - e) / E of its own).")
@click.option("--seed", type=click.IntRange(min=0), default=TrainConfig.seed, show_default=True)
@click.option("--precision", type=click.Choice(tuple(specs.PRECISIONS)), default=TrainConfig.precision, show_default=True, help="bfloat16: Keras's mixed_bfloat16 policy (bfloat16 compute, float32 weights), faster on CPUs with AVX512_BF16 or AMX and on recent GPUs.")
@click.option("--devices", default=str(TrainConfig.devices), show_default=True, help="Data-parallel devices, a number or 'all' (above 1: jax backend; the batch is split across them).")
@click.option("--out", type=click.Path(file_okay=False), default=TrainConfig.out, show_default=True, help="Root of the run directories.")
@click.option("--name", callback=_check_name, help="Suffix of the run directory's name (one folder-name part).")
@click.option("--resume", "resume_run", type=click.Path(exists=True, file_okay=False), help="Continue this run (MODEL optional), as `kgen resume RUN`, to --epochs; a run stopped after its last epoch is finished.")
@click.option("--tensorboard", is_flag=True, help="Also write TensorBoard logs into RUN/logs (needs pip install 'kgen[tensorboard]').")
@model_options
@verbose_option
@backend_option
@click.pass_context
def train(ctx, verbose, **params):
    """Train a model and write a run directory.

    The run goes to OUT/MODEL/<date-time>[-NAME]/ with config.json,
    model.keras, history.csv, a sample grid per epoch in samples/ and figures
    in plots/. It ends with a summary (final losses, epochs, time, the latest
    sample grid); the last line printed is the run directory.
    """
    verbose = _verbosity(verbose)
    _finish(lambda: _train(ctx, verbose=verbose, **params), verbose)


def _finish(work, verbose):
    """Runs `work` (which returns the run, or None), then prints the closing summary and the run directory."""
    import time

    start = time.monotonic()
    try:
        run = work()
    except BaseException:
        if verbose == 1:
            click.echo()  # end Keras's progress bar line before any message
        raise
    if run is None:  # a process other than 0 of a multi-host job, which writes no run
        return
    if verbose:
        for line in _summary(run, time.monotonic() - start):
            click.echo(line)
    click.echo(run)


def _summary(run, seconds):
    """The closing lines of a training command: the final losses and epochs, the time, the latest grid."""
    from kgen import files, runs

    history = os.path.join(run, runs.HISTORY)
    rows = files.read_csv(history) if os.path.isfile(history) else []
    last = rows[-1] if rows else {}
    values = ", ".join(f"{k} {v:.4g}" for k, v in last.items() if k != "epoch" and isinstance(v, float))
    lines = [f"Done: {len(rows)} epoch{'' if len(rows) == 1 else 's'} in {seconds:.0f} s" + (f"; epoch {len(rows)}: {values}" if values else "")]
    folder = os.path.join(run, runs.SAMPLES)
    grids = sorted(f for f in os.listdir(folder) if f.startswith("epoch_")) if os.path.isdir(folder) else []
    if grids:
        lines.append(f"Latest samples: {os.path.join(folder, grids[-1])}")
    return lines


def _train(ctx, verbose, model, resume_run, tensorboard, **params):
    """`kgen train`: `params` are the `TrainConfig` fields (--epochs, ...) and the model options (kgen.specs.OPTIONS)."""
    from kgen import devices as kgen_devices
    from kgen import training

    kgen_devices.join_hosts()  # a multi-host job, when KERAS_DISTRIBUTION_JOB_ADDRESSES says so
    if resume_run:
        _check_resume_options(ctx, model, resume_run)
        explicit = ctx.get_parameter_source("epochs").name == "COMMANDLINE"
        return _resume(resume_run, params["epochs"] if explicit else None, tensorboard, verbose)
    if model is None:
        raise click.UsageError(f"Missing argument '{{{'|'.join(specs.NAMES)}}}': the model to train (or --resume RUN).")
    try:
        params["devices"] = kgen_devices.count(params["devices"])
    except ValueError as e:
        raise click.UsageError(f"--devices: {e}") from None
    spec = specs.SPECS[model]
    batch_size = params["batch_size"] or spec.batch_size
    if batch_size % params["devices"]:
        raise click.UsageError(
            f"--batch-size must be a multiple of --devices ({params['devices']}), each device taking an equal share. "
            f"Received: --batch-size {batch_size}"
        )
    options = {name: params.pop(name) for name in specs.OPTIONS}
    given = {k: v for k, v in options.items() if ctx.get_parameter_source(k).name != "DEFAULT"}
    for option in given:
        if option not in spec.defaults():
            raise click.UsageError(_not_for(option, spec))
    config = TrainConfig(model=model, **params, **spec.config_fields(given))
    _check_tensorboard(tensorboard)
    return training.train(config, verbose=verbose, tensorboard=tensorboard)


def _not_for(option, spec):
    """The usage error of an option that `spec`'s model does not take: who takes it, and what this model has instead."""
    models = specs.takers(option)
    who = " and ".join([", ".join(models[:-1]), models[-1]] if len(models) > 1 else models)
    message = f"{specs.flag(option)} applies to {who} only, not to {spec.name}."
    instead = [specs.flag(o) for o in spec.optimizer_options() if o.endswith("_" + option)]
    if instead:  # --learning-rate on a GAN: one per network
        message += f" {spec.name} has one optimizer per network: use {' and '.join(instead)}."
    return message


RESUME_OPTIONS = ("model", "epochs", "resume_run", "tensorboard", "verbose")  # what --resume lets a user give


def _check_resume_options(ctx, model, run):
    """With --resume the run keeps its own options: only --epochs (and MODEL, if it is the run's) may be given."""
    from kgen import runs

    saved = runs.load_run(run)
    if model is not None and model != saved["model"]:
        raise click.UsageError(f"{run} is a {saved['model']} run; resume it as `kgen resume {run}`, not as {model}.")
    for param in ctx.command.params:
        if param.name in RESUME_OPTIONS or not param.expose_value:
            continue
        if ctx.get_parameter_source(param.name).name == "COMMANDLINE":
            raise click.UsageError(
                f"{param.opts[0]} cannot be used with --resume: the run keeps the options of its config.json; "
                f"only --epochs (and --tensorboard, --verbose) can change."
            )


def _check_tensorboard(tensorboard):
    from kgen import training

    if tensorboard:
        try:
            training.check_tensorboard()
        except ImportError as e:
            raise click.UsageError(str(e)) from None


def _resume(run, epochs, tensorboard, verbose):
    from kgen import training

    _check_tensorboard(tensorboard)
    return training.resume(run, epochs=epochs, verbose=verbose, tensorboard=tensorboard)


@main.command()
@click.argument("run", type=click.Path(exists=True, file_okay=False))
@click.option("--epochs", type=click.IntRange(min=1), help="Epochs in all  [default: the run's own].")
@click.option("--tensorboard", is_flag=True, help="Also write TensorBoard logs into RUN/logs (needs pip install 'kgen[tensorboard]').")
@verbose_option
@backend_option
def resume(run, epochs, tensorboard, verbose):
    """Continue an interrupted run from its latest checkpoint.

    The run keeps the options of its config.json and trains to its own
    number of epochs, or to --epochs; a run stopped after its last epoch
    gets its end-of-run figures and model.keras. The same as
    `kgen train --resume RUN`. It ends with a summary as `kgen train`; the
    last line printed is the run directory.
    """
    from kgen import devices as kgen_devices

    verbose = _verbosity(verbose)
    kgen_devices.join_hosts()  # a multi-host job, when KERAS_DISTRIBUTION_JOB_ADDRESSES says so
    _finish(lambda: _resume(run, epochs, tensorboard, verbose), verbose)


SAMPLER_OPTIONS = ("guidance", "guidance_from", "steps")  # a flow's `generate` settings, as flags, in --help's order


def generate_options(f):
    """--guidance, --guidance-from and --steps (`specs.OPTIONS`'s checks), given to the command as one dict `sampler`.

    `sampler` holds the flags given (the others are the run's own), as keyword arguments of `generate`.
    """

    @functools.wraps(f)
    def command(*args, **kwargs):
        given = {name: kwargs.pop(name) for name in SAMPLER_OPTIONS}
        return f(*args, sampler={name: value for name, value in given.items() if value is not None}, **kwargs)

    for name in reversed(SAMPLER_OPTIONS):  # click lists the last applied first
        command = click.option(
            specs.flag(name), name, type=_click_type(specs.OPTIONS[name]),
            help=f"flow: {specs.OPTIONS[name].help}  [default: the run's own]",
        )(command)
    return command


def _generate_options(model, run, options):
    """`options` (`generate`'s keyword arguments), or a usage error for a model whose generate lacks one.

    `model`: the model or its class.
    """
    import inspect

    takes = inspect.signature(model.generate).parameters
    for name, value in options.items():
        if name not in takes:
            kind = model.__name__ if isinstance(model, type) else type(model).__name__
            raise click.UsageError(
                f"{specs.flag(name)} applies to flow runs only; {run} is a {kind} run. Received: {specs.flag(name)} {value}"
            )
    return options


MAX_GRID = 10_000  # images in one sample grid PNG (a 100x100 grid of 2,800x2,800 pixels)
# images in one .npy or .npz (3.1 GB of float32 on disk; drawn CHUNK at a time, so the memory stays that of
# one chunk): more is several calls with other seeds
MAX_SAMPLES = 1_000_000
CHUNK = 1000  # images generated at a time into an .npy or .npz


@main.command()
@click.argument("run", type=RUN)
@click.option("-n", "--num", type=click.IntRange(min=1), default=64, show_default=True, help=f"Number of samples (a PNG grid: at most {MAX_GRID:,}; an .npy or .npz: at most {MAX_SAMPLES:,}, as the disk holds).")
@click.option("--seed", type=click.IntRange(min=0), help="Seed of the noise (default: random).")
@click.option("--out", "out_file", type=click.Path(dir_okay=False), help="PNG grid, .npy array (n, 28, 28, 1) in [0, 1], or .npz of 'images' (and a cgan's 'labels', a gan's 'codes') to write [default: RUN/samples/sample.png; a preset: ./NAME-sample.png].")
@click.option("--label", type=int, help="cgan: draw only this digit (default: column k holds digit k).")
@click.option("--code", type=int, help="gan trained with --codes: draw only this code (default: column k holds code k).")
@generate_options
@backend_option
def sample(run, num, seed, out_file, label, code, sampler):
    """Draw samples from a trained run: a grid PNG, or the images as an array.

    --out FILE.npy writes the images as one float32 array (n, 28, 28, 1) in
    [0, 1]; --out FILE.npz writes them as 'images', with a cgan run's
    'labels' (a gan's 'codes', when it has them) beside them. RUN is a run
    directory or a preset (`kgen presets`): `kgen sample cgan-mnist --label 7`.
    """
    import numpy as np

    from kgen import capabilities as caps
    from kgen import checkpoint, plots, runs

    if num > MAX_SAMPLES:  # before the model loads
        raise click.BadParameter(
            f"one call writes at most {MAX_SAMPLES:,} samples ({MAX_SAMPLES * 784 * 4 / 1e9:.1f} GB as float32); "
            f"write more with several calls of other --seed. Received: {num}", param_hint="-n",
        )
    model = checkpoint.load_model(run)
    options = _generate_options(model, run, sampler)
    conditional = caps.has(model, caps.CONDITIONAL)
    if label is not None and not conditional:
        raise click.UsageError(f"--label applies to conditional (cgan) runs only; {run} is a {type(model).__name__} run.")
    if label is not None and not 0 <= label < model.num_classes:
        raise click.BadParameter(f"this run draws labels 0 to {model.num_classes - 1}. Received: {label}", param_hint="--label")
    codes = 0 if conditional else getattr(model, "codes", 0)  # an InfoGAN code's values (gan --codes K)
    if code is not None and not codes:
        raise click.UsageError(f"--code applies to gan runs trained with --codes only; {run} has no codes.")
    if code is not None and not 0 <= code < codes:
        raise click.BadParameter(f"this run draws codes 0 to {codes - 1}. Received: {code}", param_hint="--code")
    out_file = out_file or _default_out(run, runs.SAMPLES, "sample.png")
    suffix = os.path.splitext(out_file)[1].lower()
    if suffix not in (".png", ".npy", ".npz"):
        raise click.BadParameter(
            f"must end in .png (a grid), .npy or .npz (the images as arrays). Received: {out_file}", param_hint="--out"
        )
    if suffix == ".png" and num > MAX_GRID:
        raise click.BadParameter(
            f"a grid PNG holds at most {MAX_GRID:,} images; write more to an array (--out FILE.npy or FILE.npz). Received: {num}",
            param_hint="-n",
        )
    _check_writable(out_file)
    # what a conditional run or a run with codes draws: the one asked for, else 0, 1, ..., K-1 in turn
    classes, key, fixed = (model.num_classes, "labels", label) if conditional else (codes, "codes", code)
    drawn = None if not classes else np.full(num, fixed) if fixed is not None else np.arange(num) % classes
    if suffix in (".npy", ".npz"):
        _write_samples(out_file, model, num, seed, key, drawn, options)
        click.echo(out_file)
        return
    images = model.generate(num, seed=seed, **({key: drawn} if classes else {}), **options)
    plots.save_grid(out_file, images, ncol=classes if classes and fixed is None else None)
    click.echo(out_file)


@main.command()
@click.argument("run", type=RUN)
@click.option("--given", "-k", type=click.IntRange(1, 15), default=8, show_default=True, help="Patches kept, of 16 (8: the top half).")
@click.option("-n", "--num", type=click.IntRange(min=1), default=16, show_default=True, help="Number of test digits (with --input: all its images).")
@click.option("--input", "input_file", type=click.Path(exists=True, dir_okay=False), help="Your own 28x28 images: one PNG, or a .npy (n, 28, 28[, 1]).")
@click.option("--out", "out_file", type=click.Path(dir_okay=False), help="PNG to write, or .npy of the completions (n, 28, 28, 1) in [0, 1], or .npz of 'images' and their 'completions' [default: RUN/plots/complete.png; a preset: ./NAME-complete.png].")
@click.option("--sampling", type=click.Choice(["mean", "bernoulli", "best", "average"]), default="mean", show_default=True,
              help="mean: feed back the predicted pixel means (deterministic); bernoulli: feed back a draw; "
                   "best: the likeliest of --candidates draws; average: the mean of --candidates draws.")
@click.option("--candidates", type=click.IntRange(min=1), default=16, show_default=True,
              help="best, average: completions drawn per digit.")
@click.option("--seed", type=click.IntRange(min=0), help="Seed of the draws of bernoulli, best and average (default: random).")
@backend_option
@click.pass_context
def complete(ctx, run, given, num, input_file, out_file, sampling, candidates, seed):
    """Finish partial digits with a trained lstm run.

    Each image is cut into 16 patches of 7x7 (a 4x4 grid, read row-major);
    the first K are kept and the model writes the rest. The PNG shows rows of
    three: the original, the given part (the rest grey), the completion.
    Without --input the digits are the first N of the run's test set. RUN
    is a run directory or a preset (`kgen presets`).
    """
    if ctx.get_parameter_source("candidates").name != "DEFAULT" and sampling not in ("best", "average"):
        raise click.UsageError(f"--candidates applies to --sampling best or average only. Received: --sampling {sampling}")
    if out_file and os.path.splitext(out_file)[1].lower() not in (".png", ".npy", ".npz"):
        raise click.BadParameter(
            f"must end in .png (a figure), .npy or .npz (the completions as arrays). Received: {out_file}", param_hint="--out"
        )
    import numpy as np

    from kgen import capabilities as caps
    from kgen import checkpoint, data, plots, runs
    from kgen.errors import RunError
    from kgen.data import to_float

    model = checkpoint.load_model(run)
    if not caps.has(model, caps.COMPLETES):
        raise RunError(f"complete needs an lstm run; {run} is a {type(model).__name__} run. Train one with `kgen train lstm`.")
    if input_file:
        images = data.read_images(input_file)
        if ctx.get_parameter_source("num").name != "DEFAULT":
            images = images[:num]
    else:
        config = runs.load_run(run)["train"]
        test = data.load_dataset(config["dataset"], "test", config["data_dir"], config["offline"])
        images = to_float(test.images[:num])
    out_file = out_file or _default_out(run, runs.PLOTS, "complete.png")
    _check_writable(out_file)
    completed = model.complete(images, given=given, sampling=sampling, seed=seed, candidates=candidates)
    suffix = os.path.splitext(out_file)[1].lower()
    if suffix in (".npy", ".npz"):
        from kgen import files

        with files.atomic_path(out_file) as tmp, open(tmp, "wb") as f:  # a file object: numpy adds no suffix
            if suffix == ".npy":
                np.save(f, completed)
            else:
                np.savez(f, images=np.asarray(images, np.float32).reshape(completed.shape), completions=completed)
    else:
        plots.save_completions(out_file, images, data.fill_missing(images, 0.25, given), completed, ncol=min(len(images), 8))
    click.echo(out_file)


@main.command()
@click.argument("run", type=RUN)
@click.option("--num-samples", "-n", type=click.IntRange(min=10), default=5000, show_default=True,
              help="Images generated (and test images used) for the metrics; at most 60,000.")
@click.option("--ll-samples", type=click.IntRange(min=0), default=100, show_default=True,
              help="vae: importance samples per test image of log p(x) (0: skip it).")
@click.option("--given", "-k", type=click.IntRange(1, 15), default=8, show_default=True,
              help="lstm: patches kept, of 16, when completing test digits.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the generated samples (and of an lstm's drawn completions).")
@click.option("--figures/--no-figures", default=True, show_default=True, help="Also write figures into RUN/plots/.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              help="Folder for metrics.json and plots/  [default: RUN; a preset: none, the numbers are printed only].")
@click.option("--cas", is_flag=True,
              help="cgan, flow: also the classification accuracy score: a fresh classifier of the evaluator's "
                   "architecture trained on labelled samples only, its accuracy on the real test digits, beside "
                   "the same on real training digits (a few minutes).")
@click.option("--cas-samples", type=click.IntRange(10, 60_000), default=10_000, show_default=True,
              help="--cas: labelled samples the classifier trains on (and real training digits of the ceiling).")
@generate_options
@backend_option
def evaluate(run, num_samples, ll_samples, given, seed, figures, out_dir, cas, cas_samples, sampler):
    """Measure a trained run with the shipped evaluator; write RUN/metrics.json.

    Every model gets FID, KID, the inception-style score, precision and
    recall and class coverage of its samples against the test set, each
    beside the real-data floor (as many real training images, measured the
    same way). A cGAN or a flow also gets conditional accuracy; an AE or VAE test
    reconstruction errors (and a VAE its test ELBO and log-likelihood); an
    lstm the evaluator's agreement with the true label on completed digits
    (the mean-field completion, and the average of 16 drawn completions).
    With --cas a cGAN or a flow also gets its classification accuracy score
    (docs/evaluation.md).

    RUN is a run directory or a preset (`kgen presets`); the installed
    presets stay as they are: a preset's numbers are printed, and written
    only into an --out folder.
    """
    from kgen import runs
    from kgen.evaluation import evaluate as ev
    from kgen.models import MODELS

    if sampler:  # checked before the model loads: the run's model class says what its generate takes
        _generate_options(MODELS[runs.load_run(run)["model"]], run, sampler)
    if cas:  # checked before the model loads, as the options above
        from kgen import capabilities as caps

        kind = runs.load_run(run)["model"]
        if not caps.has(MODELS[kind], caps.CONDITIONAL):
            raise click.UsageError(
                f"--cas applies to conditional runs only (cgan, flow); {run} is a {kind} run. Received: --cas"
            )
    with Progress("evaluate") as progress:
        m = ev.evaluate(run, num_samples=num_samples, ll_samples=ll_samples, given=given, seed=seed, figures=figures,
                        generate_options=sampler, folder=out_dir, progress=progress, cas_samples=cas_samples if cas else 0)
    floor_n = m["floor_num_samples"]
    drawn = "".join(f", {k} {v:g}" for k, v in sampler.items())
    click.echo(f"{m['model_class']} run {run}: {num_samples} samples{drawn}, {m['test_images']} test images, "
               f"evaluator {m['evaluator']['dataset']} (sha256 {m['evaluator']['sha256'][:12]}...)")
    click.echo(f"{'metric':<42} {'model':>10} {'real data':>10}")
    for name, value, floor in ev.table(m):
        shown = "" if floor is None else f"{floor:10.4g}"
        click.echo(f"{name:<42} {value:10.4g} {shown:>10}")
    if floor_n < num_samples:
        click.echo(f"Note: the real-data floor uses all {floor_n} training images available, not {num_samples}.")
    if "cas" in m:
        c = m["cas"]
        click.echo(f"CAS: a classifier trained {c['epochs']} epochs on {c['num_samples']} labelled samples reads "
                   f"{c['accuracy']:.2%} of the {c['test_images']} real test digits right (worst class "
                   f"{c['worst_class']}: {c['worst_accuracy']:.2%}); on {c['ceiling_num_samples']} real training "
                   f"digits, {c['ceiling']:.2%} ({c['seconds']:.0f} s).")
    click.echo(f"{m['seconds']:.0f} s ({m['generate_seconds']:.0f} s drawing the samples); "
               f"{_wrote(run, out_dir)}")


@main.command()
@click.argument("runs_", metavar="RUN...", nargs=-1, required=True, type=RUN)
@click.option("--out", type=click.Path(file_okay=False), help="Report folder [default: artifacts/compare/<date-time>].")
@backend_option
def compare(runs_, out):
    """Write a side-by-side report of runs: metrics, samples, latent maps, curves.

    The report folder gets report.md and report.html with the metrics of
    each run (from `kgen evaluate`), 100 samples of each from one seed,
    the latent maps of the runs that encode, and the training curves.
    Comparing a VAE trained with --kl-weight 1 and one with --kl-weight 0
    shows the no-KL ablation. A RUN may be a preset (`kgen presets`).
    """
    from kgen import report

    if out and os.path.exists(out) and not os.path.isdir(out):
        raise click.UsageError(f"--out must be a folder; {out} is a file.")
    with Progress("compare") as progress:
        path = report.compare(list(runs_), out, progress=progress)
    click.echo(path)


@main.command(name="runs")
@click.option("--root", type=click.Path(file_okay=False), default="artifacts", show_default=True)
def list_runs(root):
    """List the runs under a root folder, newest first, with the losses of their last epoch, each named."""
    from kgen import runs

    skipped = []
    found = runs.list_runs(root, skipped)
    for line in skipped:
        click.echo(f"Warning: skipped a run: {line}", err=True)
    if not found:
        click.echo(f"No runs under {root}.")
        return
    click.echo(f"{'run':<48} {'model':<6} {'backend':<10} {'epochs':>6}  losses of the last epoch")
    for r in found:
        last = r["history"][-1] if r["history"] else {}
        loss = "  ".join(  # the training losses by name (a GAN's d_loss and g_loss, a VAE's parts), not val_*
            f"{k} {v:.4g}" for k, v in last.items() if k.endswith("loss") and not k.startswith("val_") and isinstance(v, float)
        )
        click.echo(
            f"{r['path']:<48} {r['config'].get('model', '?'):<6} "
            f"{r['config'].get('backend', '?'):<10} {len(r['history']):>6}  {loss}"
        )


@main.command(name="presets")
def list_presets():
    """List the trained models that ship with kgen: name, model, size, numbers, description.

    A preset's name works wherever a run does (`kgen sample cgan-mnist
    --label 7 -n 16 --out sevens.npy`); in Python,
    `kgen.models.from_preset(NAME)`. The numbers are the `kgen evaluate` of
    the run it came from (FID beside the real-data floor).
    """
    from kgen import presets

    skipped = []
    found = presets.list_presets(skipped=skipped)
    for line in skipped:
        click.echo(f"Warning: skipped a preset: {line}", err=True)
    if not found:
        click.echo(f"No presets in {presets.ROOT}.")
        return
    click.echo(f"{'preset':<16} {'model':<6} {'size':>7}  numbers (kgen evaluate)")
    for p in found:
        n = p.get("num_samples")
        numbers = presets.summary(p.get("numbers") or {}) + (f" ({n:,} samples)" if isinstance(n, int) else "")
        click.echo(f"{p['name']:<16} {p['model']:<6} {p['size_bytes'] / 1e6:4.1f} MB  {numbers}")
        click.echo(f"{'':<16} {p.get('description', '')}")
    total = sum(p["size_bytes"] for p in found) / 1e6
    click.echo(f"{len(found)} preset{'' if len(found) == 1 else 's'}, {total:.1f} MB, in {presets.ROOT}")


@main.command()
@click.argument("runs_", metavar="[RUN_OR_PRESET]...", nargs=-1, type=RUN)
@click.option("--port", type=click.IntRange(1, 65535), default=7860, show_default=True, help="Port to listen on.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every interface).")
@backend_option
def demo(runs_, port, host):
    """Play with trained models in a browser: a local web page (Gradio).

    Ask a conditional model for a digit; walk a model's latent space (click
    on a 2-D VAE's map of the test digits, slide along the principal
    directions of a larger one, interpolate between two seeds); draw the top
    of a digit and see an lstm finish it; the same seed through several
    models side by side. Without RUN it serves the presets kgen ships. It
    prints the page's address; Ctrl-C stops it. Needs pip install
    'kgen[demo]'.
    """
    from kgen import demo as kgen_demo

    try:
        kgen_demo.check_gradio()
    except ImportError as e:
        error = click.ClickException(str(e))
        error.exit_code = 2
        raise error from None
    if not runs_:
        from kgen import presets

        runs_ = [os.path.join(presets.ROOT, name) for name in presets.names()]
        if not runs_:
            error = click.ClickException("No presets ship with this kgen yet; name the runs to serve: kgen demo RUN...")
            error.exit_code = 2
            raise error
    models = kgen_demo.load(runs_)
    kgen_demo.serve(models, host=host, port=port,
                    ready=lambda url: click.echo(f"kgen demo: {len(models)} model{'s' if len(models) > 1 else ''} at {url} (Ctrl-C stops it)"))


@main.command(name="export-preset")
@click.argument("run", type=click.Path(exists=True, file_okay=False))
@click.argument("name")
@click.option("--description", help="One line saying what it is  [default: the model class, its options, its data].")
@click.option("--root", type=click.Path(file_okay=False), help="Folder of the presets  [default: kgen's own, kgen/presets/].")
@backend_option
def export_preset(run, name, description, root):
    """Make a preset named NAME from a run that `kgen evaluate` measured.

    Writes ROOT/NAME/: config.json (the model's Keras config),
    model.weights.h5 (the sampling weights only: no optimizer state, no
    discriminator, of a model with a moving average only the averaged copy)
    and metadata.json (the run's numbers; a check on 1,000 samples drawn
    from the preset itself, which tests repeat; the commands, date, commit,
    evaluator hash and size). The folder appears whole or not at all; the
    last line printed is the folder.
    """
    from kgen import presets
    from kgen.presets.export import export_preset as export

    path = export(run, name, description=description, root=root)
    meta = presets.read_metadata(path)
    check = meta["check"]
    click.echo(f"run ({meta['num_samples']} samples): {presets.summary(meta['numbers'])}")
    click.echo(f"preset ({check['num_samples']} samples, {check['backend']}): {presets.summary(check['numbers'])}")
    click.echo(f"size: {presets.folder_size(path) / 1e6:.2f} MB ({meta['weights']['parameters']:,} parameters)")
    click.echo(path)


def _write_samples(path, model, num, seed, key, drawn, options=None):
    """Generates `num` images CHUNK at a time into an .npy (or an .npz), written atomically; the disk is the limit.

    Both are streamed: an .npz is a zip whose members are written as the
    images come, so the memory is one chunk's whatever `num`.

    `drawn`: the labels (key "labels") or InfoGAN codes (key "codes") of the images, or None;
    `options`: more keyword arguments of `generate`.
    """
    import shutil

    import numpy as np

    from kgen import files
    from kgen.evaluation.evaluate import generate_chunks

    folder = os.path.dirname(os.path.abspath(path))
    needed = num * 28 * 28 * 4 + 4096
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise click.BadParameter(
            f"{num:,} images take {needed / 1e9:.1f} GB as float32, and {folder} has {free / 1e9:.1f} GB free. "
            f"Received: {num}", param_hint="-n",
        )
    chunks = generate_chunks(model, num, seed, drawn, CHUNK, key=key, options=options)
    with files.atomic_path(path) as tmp:
        if path.lower().endswith(".npz"):
            _stream_npz(tmp, num, chunks, None if drawn is None else (key, drawn))
            return
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(num, 28, 28, 1))
        for start, images in chunks:
            out[start : start + len(images)] = images
        out.flush()
        del out


def _stream_npz(path, num, chunks, extra=None):
    """Writes an .npz as `np.savez` does (an uncompressed zip of .npy members), the images chunk by chunk.

    `chunks`: (start, float32 images (n, 28, 28, 1)) in order; `extra`: (name, array) of a second member, or None.
    """
    import zipfile

    import numpy as np

    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        with archive.open("images.npy", "w", force_zip64=True) as member:
            header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False,
                      "shape": (num, 28, 28, 1)}
            np.lib.format.write_array_header_2_0(member, header)
            for _, images in chunks:
                member.write(np.ascontiguousarray(images, np.float32))  # its buffer, not a copy
        if extra is not None:
            with archive.open(f"{extra[0]}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asarray(extra[1]), allow_pickle=False)


def _default_out(run, sub, name):
    """A command's default output file: RUN/SUB/NAME for a run; ./PRESET-NAME for a preset, whose folder is part of kgen."""
    from kgen import presets

    if presets.is_preset(run):
        return f"{os.path.basename(os.path.normpath(run))}-{name}"
    return os.path.join(run, sub, name)


def _wrote(run, folder):
    """What `kgen evaluate` wrote: RUN/metrics.json, FOLDER/metrics.json, or nothing for a preset."""
    from kgen.evaluation.evaluate import output_folder

    where = output_folder(run, folder)
    if where is None:
        return "wrote nothing: a preset's folder is part of kgen (--out FOLDER keeps metrics.json and plots/)"
    return f"wrote {os.path.join(where, 'metrics.json')}"


class Progress:
    """What a long command is doing, on stderr: `progress(message, step, steps)` at the start of each stage.

    On a terminal, each stage's line and a Keras progress bar
    (`keras.utils.Progbar`) over the stages beneath it; in a pipe or a file,
    one plain line per stage (`kgen evaluate: generating 5,000 samples (1/5)`).
    Standard output keeps the results only. Used as a context around the work.
    """

    def __init__(self, command):
        self.command = command
        self.bar = None

    def __call__(self, message, step, steps):
        line = f"kgen {self.command}: {message} ({step}/{steps})"
        if not sys.stderr.isatty():
            click.echo(line, err=True)
            return
        import contextlib

        import keras

        with contextlib.redirect_stdout(sys.stderr):  # Keras's bar writes to stdout
            if self.bar is None:
                self.bar = keras.utils.Progbar(steps, unit_name="stage")
            click.echo(f"\r\x1b[K{line}", err=True)  # the bar's line gives way to the stage's
            self.bar.update(step - 1)

    def __enter__(self):
        return self

    def __exit__(self, kind, error, trace):
        """Completes the bar on a terminal once the work is over, or ends its line before an error's."""
        if self.bar is None:
            return
        if kind is not None:
            click.echo(err=True)
            return
        import contextlib

        with contextlib.redirect_stdout(sys.stderr):
            self.bar.update(self.bar.target, finalize=True)


def _check_writable(path):
    folder = os.path.dirname(os.path.abspath(path)) or "."
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        raise click.UsageError(f"Cannot write {path}: its folder does not exist or is not writable.")


if __name__ == "__main__":
    sys.exit(main())
