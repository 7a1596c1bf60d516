"""`kgen demo`: the trained models in a browser, as a local Gradio app.

What the page offers follows from each model's declared capabilities
(`kgen.capabilities`):

- **Ask for a digit** (CONDITIONAL): a digit, how many, a seed; a GAN's
  truncation of its noise, a flow's guidance weight and sampler steps.
- **Walk the latent space** (LATENT): a 2-D encoder's map of the test digits,
  where a click decodes the point; for larger latents, sliders along the
  principal directions of the test digits' codes (a GAN: along its noise
  axes); an interpolation strip between the noise of two seeds.
- **Finish my digit** (COMPLETES): a digit drawn, uploaded or picked from the
  test set, how many patches are given, the mean-field completion beside
  several drawn ones.
- **Side by side**: the same seed through several models.

The computations are plain functions of a `Loaded` model (no Gradio), which
the page calls; a bad input (a blank sketch, an image of the wrong size)
raises `DemoInputError`, which the page shows as a message. Gradio is an
optional extra: `pip install "kgen[demo]"`.

Example:

>>> from kgen import demo
>>> models = demo.load(["artifacts/cgan/20260101-120000"])
>>> demo.serve(models, port=7860)  # blocks; Ctrl-C stops it
"""

import inspect
import math
import os
import time

import numpy as np

from kgen import capabilities as caps
from kgen.errors import KgenError

INSTALL = 'kgen demo needs Gradio: pip install "kgen[demo]"'
MAP_SIZE = 400  # pixels of the 2-D latent map
MAP_CODES = 2000  # test digits drawn on the map
DIRECTIONS = 4  # sliders along principal directions of a larger latent
SCALE = 4  # screen pixels per image pixel


class DemoInputError(KgenError):
    """A bad input in the page (a blank sketch, an image of the wrong size): shown as a message."""


def check_gradio():
    """Raises ImportError with the one line that says how to install Gradio, when it is missing."""
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise ImportError(INSTALL) from None


class Loaded:
    """A model the demo serves: its name in the page, the model, its capabilities and test digits."""

    def __init__(self, name, path, model, test_images=None, test_labels=None):
        self.name = name
        self.path = path
        self.model = model
        self.caps = caps.of(model)
        self.test_images = test_images  # float32 (n, 28, 28, 1), or None
        self.test_labels = test_labels
        self._codes = None

    def can(self, capability):
        return capability in self.caps

    def takes(self, argument):
        """Whether the model's `generate` takes `argument` (a flow's guidance and steps)."""
        return argument in inspect.signature(self.model.generate).parameters

    @property
    def adversarial(self):
        return self.can(caps.ADVERSARIAL)

    @property
    def latent_dim(self):
        return int(getattr(self.model, "latent_dim", 0) or 0)

    def codes(self):
        """(codes, labels) of the first MAP_CODES test digits, for a model that encodes; cached."""
        if self._codes is None:
            from kgen.models.common import encode

            x = self.test_images[:MAP_CODES]
            self._codes = (encode(self.model, x), self.test_labels[:MAP_CODES])
        return self._codes


def load(paths):
    """The models of runs or preset folders, named for the page; test digits loaded once.

    Args:
        paths: run directories or preset folders.

    Returns:
        A list of `Loaded`.
    """
    from kgen import checkpoint, presets, runs

    loaded, names = [], set()
    for path in paths:
        config = runs.load_run(path)
        model = checkpoint.load_model(path)
        if presets.is_preset(path):
            name = os.path.basename(os.path.normpath(path))
        else:
            name = f"{config['model']} {os.path.basename(os.path.normpath(path))}"
        base, i = name, 2
        while name in names:
            name, i = f"{base} ({i})", i + 1
        names.add(name)
        images, labels = _test_digits(config["train"])
        loaded.append(Loaded(name, path, model, images, labels))
    return loaded


_TEST = {}


def _test_digits(train_config):
    """The test digits of a run's data set (MNIST: the bundled test set, no network), or (None, None)."""
    from kgen import data

    key = (train_config.get("dataset", "mnist"), train_config.get("data_dir"))
    if key not in _TEST:
        try:
            if key[0] == "mnist" and not key[1]:
                images, labels = data.load_bundled("test")
            else:
                test = data.load_dataset(key[0], "test", key[1], train_config.get("offline", False))
                images, labels = test.images, test.labels
            _TEST[key] = (data.to_float(images), np.asarray(labels))
        except Exception:  # a data set that cannot be read now: no map, no test digit to pick
            _TEST[key] = (None, None)
    return _TEST[key]


# ---- pictures ---------------------------------------------------------------


def picture(images, ncol=None, scale=SCALE):
    """Images (n, 28, 28[, 1]) in [0, 1] as one uint8 grid, each pixel `scale` x `scale`."""
    from kgen.plots import tile

    grid = tile(images, ncol)
    grid = np.kron(grid, np.ones((scale, scale), np.float32))
    return (np.clip(grid, 0, 1) * 255).astype(np.uint8)


def _timed(work):
    start = time.perf_counter()
    out = work()
    return out, time.perf_counter() - start


# ---- ask for a digit --------------------------------------------------------


def noise(model, n, seed, truncation=None):
    """The noise `generate(n, seed=seed)` draws (N(0, I)), resampled beyond +-truncation when given."""
    import keras

    z = keras.ops.convert_to_numpy(keras.random.normal((n, model.latent_dim), seed=int(seed))).astype(np.float32)
    if truncation is not None:
        rng = np.random.default_rng(int(seed))
        for _ in range(100):  # the truncation trick: draw again what lies beyond the threshold
            far = np.abs(z) > truncation
            if not far.any():
                break
            z[far] = rng.standard_normal(int(far.sum())).astype(np.float32)
        z = np.clip(z, -truncation, truncation)
    return z


def ask_for_digit(loaded, digit, n, seed, truncation=None, guidance=None, steps=None):
    """A grid of `n` images of `digit` from a conditional model; returns (picture, seconds).

    `truncation`: a GAN's noise threshold (None: none); `guidance`, `steps`:
    a flow's sampler settings (None: the model's own).
    """
    model = loaded.model
    digit, n, seed = _whole(digit, "digit", 0, model.num_classes - 1), _whole(n, "how many", 1, 256), _seed(seed)
    options = {}
    if guidance is not None and loaded.takes("guidance"):
        options["guidance"] = float(guidance)
    if steps is not None and loaded.takes("steps"):
        options["steps"] = _whole(steps, "steps", 1, 1000)
    if truncation is not None and loaded.adversarial:
        options["z"] = noise(model, n, seed, float(truncation))
    images, seconds = _timed(lambda: model.generate(n, labels=digit, seed=seed, **options))
    return picture(images, ncol=min(n, 8)), seconds


# ---- walk the latent space --------------------------------------------------


def _prior(loaded, eps):
    """Codes of the model's prior for standard-normal `eps`: an autoencoder's Gaussian of its training codes."""
    import keras

    return np.asarray(keras.ops.convert_to_numpy(loaded.model.prior_codes(eps.astype(np.float32))), np.float32)


def decode(loaded, z, digit=0):
    """Images of codes `z` (n, latent_dim): the label `digit` for a conditional model, one code or cluster for a GAN's."""
    model = loaded.model
    z = np.asarray(z, np.float32).reshape(-1, loaded.latent_dim)
    extra = {}
    if loaded.can(caps.CONDITIONAL):
        extra["labels"] = _whole(digit, "digit", 0, model.num_classes - 1)
    elif "seed" in inspect.signature(model.generate).parameters and loaded.adversarial:
        extra["seed"] = 0  # a GAN with codes or clusters: one drawn for all, the same each time
    return model.generate(len(z), z=z, **extra)


def latent_map(loaded, point=None):
    """The 2-D latent map of the test digits: (RGB uint8 picture, extent (x0, x1, y0, y1)).

    Each test digit is a dot coloured by its label; `point` (a code) is
    marked with a cross.
    """
    codes, labels = loaded.codes()
    lo = np.percentile(codes, 0.5, axis=0)
    hi = np.percentile(codes, 99.5, axis=0)
    margin = 0.08 * (hi - lo) + 1e-6
    x0, x1, y0, y1 = lo[0] - margin[0], hi[0] + margin[0], lo[1] - margin[1], hi[1] + margin[1]
    canvas = np.full((MAP_SIZE, MAP_SIZE, 3), 255, np.uint8)
    colours = _label_colours()
    px = ((codes[:, 0] - x0) / (x1 - x0) * (MAP_SIZE - 1)).round().astype(int)
    py = ((y1 - codes[:, 1]) / (y1 - y0) * (MAP_SIZE - 1)).round().astype(int)
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            x, y = np.clip(px + dx, 0, MAP_SIZE - 1), np.clip(py + dy, 0, MAP_SIZE - 1)
            canvas[y, x] = colours[labels % 10]
    if point is not None:
        cx = int(round((point[0] - x0) / (x1 - x0) * (MAP_SIZE - 1)))
        cy = int(round((y1 - point[1]) / (y1 - y0) * (MAP_SIZE - 1)))
        for d in range(-9, 10):
            for w in (-1, 0, 1):
                for x, y in ((cx + d, cy + w), (cx + w, cy + d)):
                    if 0 <= x < MAP_SIZE and 0 <= y < MAP_SIZE:
                        canvas[y, x] = (0, 0, 0)
    return canvas, (x0, x1, y0, y1)


def map_point(extent, x, y):
    """The code at pixel (x, y) of a latent map of `extent`."""
    x0, x1, y0, y1 = extent
    return np.array([x0 + x / (MAP_SIZE - 1) * (x1 - x0), y1 - y / (MAP_SIZE - 1) * (y1 - y0)], np.float32)


def legend():
    """The label colours of the latent map, as Markdown."""
    colours = _label_colours()
    return " ".join(
        f'<span style="color: rgb({r},{g},{b}); font-weight: bold">&#9679; {k}</span>'
        for k, (r, g, b) in enumerate(colours)
    )


def _label_colours():
    import matplotlib

    return (np.asarray(matplotlib.colormaps["tab10"].colors) * 255).astype(np.uint8)


def directions(loaded, seed=0):
    """Where the sliders start and what they move along: (origin, unit directions (k, d), spreads (k,)).

    A model that encodes: the mean code of the test digits and the principal
    directions of the codes, each with its standard deviation; a GAN: the
    noise of `seed` and its first axes, spread 1.
    """
    k = min(DIRECTIONS, loaded.latent_dim)
    if loaded.can(caps.ENCODES) and loaded.test_images is not None:
        codes, _ = loaded.codes()
        mean = codes.mean(axis=0)
        _, s, vt = np.linalg.svd(codes - mean, full_matrices=False)
        spread = s[:k] / math.sqrt(max(len(codes) - 1, 1))
        return mean.astype(np.float32), vt[:k].astype(np.float32), spread.astype(np.float32)
    origin = _prior(loaded, noise(loaded.model, 1, _seed(seed))[0])
    return origin, np.eye(loaded.latent_dim, dtype=np.float32)[:k], np.ones(k, np.float32)


def along(loaded, amounts, seed=0, digit=0):
    """The decoding of the origin moved `amounts[i]` spreads along direction i; returns (picture, seconds)."""
    origin, dirs, spread = directions(loaded, seed)
    amounts = np.asarray([float(a) for a in amounts][: len(dirs)], np.float32)
    z = origin + (amounts * spread[: len(amounts)]) @ dirs[: len(amounts)]
    images, seconds = _timed(lambda: decode(loaded, z[None], digit))
    return picture(images, scale=8), seconds


def interpolate(loaded, seed_a, seed_b, frames=8, digit=0):
    """A strip of `frames` decodings along the great circle between the noise of two seeds; (picture, seconds)."""
    frames = _whole(frames, "frames", 2, 32)
    a = noise(loaded.model, 1, _seed(seed_a))[0]
    b = noise(loaded.model, 1, _seed(seed_b))[0]
    t = np.linspace(0.0, 1.0, frames)[:, None]
    omega = math.acos(float(np.clip(np.dot(a / np.linalg.norm(a), b / np.linalg.norm(b)), -1, 1)))
    if omega < 1e-4:
        eps = (1 - t) * a + t * b
    else:  # slerp: every frame as far from the origin as a Gaussian draw
        eps = (np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / math.sin(omega)
    images, seconds = _timed(lambda: decode(loaded, _prior(loaded, eps.astype(np.float32)), digit))
    return picture(images, ncol=frames), seconds


# ---- finish my digit --------------------------------------------------------


def from_sketch(value):
    """A drawn digit (Gradio's sketchpad value, or an RGBA/grey array) as one image (28, 28, 1) in [0, 1].

    The canvas (a dark stroke on a light or clear page, or a light one on
    dark) is made white on black, as MNIST, and shrunk to 28x28.

    Raises:
        DemoInputError: when nothing is drawn.
    """
    from PIL import Image

    array = value.get("composite") if isinstance(value, dict) else value
    if array is None:
        raise DemoInputError("Draw a digit first: the sketch is blank.")
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[-1] == 4:  # RGBA: what is drawn is what is opaque
        alpha = array[..., 3].astype(np.float32) / 255.0
        grey = array[..., :3].astype(np.float32).mean(axis=-1) / 255.0
        opaque = alpha > 0.5
        dark = not opaque.any() or grey[opaque].mean() < 0.5  # a dark stroke (on a clear or light page)
        ink = alpha * (1.0 - grey) if dark else alpha * grey
        if opaque.mean() > 0.5:  # an opaque page: the ink is what differs from it
            ink = 1.0 - grey if grey.mean() > 0.5 else grey
    else:
        grey = array.astype(np.float32).mean(axis=-1) if array.ndim == 3 else array.astype(np.float32)
        grey = grey / 255.0 if grey.max() > 1.0 else grey
        ink = 1.0 - grey if grey.mean() > 0.5 else grey
    if ink.size == 0 or ink.max() < 0.1:
        raise DemoInputError("Draw a digit first: the sketch is blank.")
    small = Image.fromarray((np.clip(ink, 0, 1) * 255).astype(np.uint8)).resize((28, 28), Image.LANCZOS)
    return (np.asarray(small, np.float32) / 255.0)[..., None]


def from_upload(array):
    """An uploaded image (h, w[, channels]) as one image (28, 28, 1) in [0, 1], white on black.

    Raises:
        DemoInputError: when there is none, or it is not 28x28 (as `kgen complete --input`).
    """
    if array is None:
        raise DemoInputError("Upload a 28x28 PNG first.")
    array = np.asarray(array)
    if array.ndim == 3:
        array = array[..., :3].mean(axis=-1) if array.shape[-1] >= 3 else array[..., 0]
    if array.shape != (28, 28):
        raise DemoInputError(
            f"The image must be 28x28 grey, as the models' digits; resize it first. "
            f"Received: size={array.shape[1]}x{array.shape[0]}"
        )
    image = array.astype(np.float32)
    image = image / 255.0 if image.max() > 1.0 else image
    if image.mean() > 0.5:  # a dark digit on a light page
        image = 1.0 - image
    return image[..., None]


def test_digit(loaded, index):
    """Test digit number `index` of the model's data set, (28, 28, 1)."""
    if loaded.test_images is None:
        raise DemoInputError(f"{loaded.name}: its test digits cannot be read here; draw or upload a digit.")
    index = _whole(index, "test digit", 0, len(loaded.test_images) - 1)
    return loaded.test_images[index]


def finish(loaded, image, given=8, drawn=4, seed=0):
    """Completions of one image (28, 28, 1): (picture, seconds).

    The picture is one row: the image, its given part (the rest grey), the
    mean-field completion, then `drawn` completions drawn pixel by pixel.
    """
    from kgen.data import fill_missing

    given = _whole(given, "patches given", 1, 15)
    drawn = _whole(drawn, "completions", 0, 16)
    image = np.asarray(image, np.float32).reshape(1, 28, 28, 1)
    model = loaded.model

    def work():
        mean = model.complete(image, given=given, sampling="mean")
        if not drawn:
            return mean
        return np.concatenate([mean, model.complete(np.repeat(image, drawn, 0), given=given, sampling="bernoulli",
                                                    seed=_seed(seed))])

    completions, seconds = _timed(work)
    row = np.concatenate([image, fill_missing(image, 0.25, given), completions])
    return picture(row, ncol=len(row)), seconds


# ---- side by side -----------------------------------------------------------


def side_by_side(models, seed, n=8, digit=None):
    """The same seed through each model: [(picture, caption)], and the seconds in all.

    A conditional model draws `digit` (None: 0, 1, ... in turn).
    """
    n, seed = _whole(n, "how many", 1, 64), _seed(seed)
    out, total = [], 0.0
    for loaded in models:
        extra = {"labels": digit} if digit is not None and loaded.can(caps.CONDITIONAL) else {}
        images, seconds = _timed(lambda: loaded.model.generate(n, seed=seed, **extra))
        total += seconds
        out.append((picture(images, ncol=min(n, 8), scale=3), f"{loaded.name} ({seconds:.2f} s)"))
    return out, total


# ---- checks -----------------------------------------------------------------


def _whole(value, what, low, high):
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DemoInputError(f"{what} must be a whole number from {low} to {high}. Received: {value!r}") from None
    if not number.is_integer() or not low <= number <= high:
        raise DemoInputError(f"{what} must be a whole number from {low} to {high}. Received: {value!r}")
    return int(number)


def _seed(value):
    return _whole(value, "seed", 0, 2**31 - 1)


# ---- the page ---------------------------------------------------------------


def _safely(handler, status_outputs):
    """Wraps a page handler: a bad input or a failure becomes a message (and a Gradio warning), never a traceback.

    The handler returns its outputs, the last of which is the status text;
    on an error every other output is left as it is.
    """
    import functools

    import gradio as gr

    @functools.wraps(handler)
    def wrapped(*args):
        try:
            return handler(*args)
        except DemoInputError as e:
            message = str(e)
        except (KgenError, ValueError) as e:
            message = str(e).splitlines()[0] if str(e) else type(e).__name__
        except Exception as e:  # the server stays up: one line, no traceback
            message = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'failed'}"
        gr.Warning(message)
        return (*[gr.update() for _ in range(status_outputs - 1)], f"**Error:** {message}")

    return wrapped


def _took(seconds, what):
    return f"{what} in {seconds * 1000:.0f} ms"


def build(models):
    """The Gradio page (`gradio.Blocks`) for the loaded models; tabs by capability."""
    import gradio as gr

    conditional = [m for m in models if m.can(caps.CONDITIONAL)]
    latent = [m for m in models if m.can(caps.LATENT) and m.latent_dim]
    completes = [m for m in models if m.can(caps.COMPLETES)]
    _LOADS.clear()
    with gr.Blocks(title="kgen demo", analytics_enabled=False) as page:
        gr.Markdown(
            "# kgen demo\n" + ", ".join(f"**{m.name}** ({type(m.model).__name__})" for m in models)
        )
        with gr.Tabs():
            if conditional:
                with gr.Tab("Ask for a digit", elem_id="tab-ask"):
                    _per_model(conditional, _ask_tab)
            if latent:
                with gr.Tab("Walk the latent space", elem_id="tab-latent"):
                    _per_model(latent, _latent_tab)
            if completes:
                with gr.Tab("Finish my digit", elem_id="tab-finish"):
                    _per_model(completes, _finish_tab)
            if len(models) > 1:
                with gr.Tab("Side by side", elem_id="tab-side"):
                    _side_tab(models)
        for function, inputs, output in _LOADS:
            page.load(function, inputs, output)
    _LOADS.clear()
    return page


def _per_model(models, make):
    """One section per model: its own sub-tab when there are several."""
    import gradio as gr

    if len(models) == 1:
        make(models[0], _slug(models[0].name))
        return
    with gr.Tabs():
        for m in models:
            with gr.Tab(m.name):
                make(m, _slug(m.name))


def _slug(name):
    return "".join(c if c.isalnum() else "-" for c in name.lower())


def _ask_tab(m, key):
    import gradio as gr

    with gr.Row():
        with gr.Column(scale=1):
            digit = gr.Slider(0, m.model.num_classes - 1, value=7, step=1, label="digit", elem_id=f"ask-digit-{key}")
            n = gr.Slider(1, 64, value=16, step=1, label="how many")
            seed = gr.Number(0, precision=0, label="seed", minimum=0)
            truncation = guidance = steps = None
            if m.adversarial:
                truncation = gr.Slider(0.25, 3.0, value=3.0, step=0.05, label="truncation of the noise (3: almost none)")
            if m.takes("guidance"):
                guidance = gr.Slider(0.0, 8.0, value=float(getattr(m.model, "guidance", 1.0)), step=0.1,
                                     label="guidance weight (1: none)")
            if m.takes("steps"):
                steps = gr.Slider(1, 100, value=int(getattr(m.model, "steps", 20)), step=1, label="sampler steps")
            go = gr.Button("Draw", variant="primary", elem_id=f"ask-go-{key}")
        with gr.Column(scale=2):
            out = gr.Image(label="samples", format="png", interactive=False, elem_id=f"ask-out-{key}")
            status = gr.Markdown(elem_id=f"ask-status-{key}")
    extras = [c for c in (truncation, guidance, steps) if c is not None]

    def draw(digit, n, seed, *rest):
        values = dict(zip([name for name, c in (("truncation", truncation), ("guidance", guidance), ("steps", steps))
                           if c is not None], rest))
        t = values.get("truncation")
        values["truncation"] = None if t is None or t >= 3.0 else t
        image, seconds = ask_for_digit(m, digit, n, seed, **values)
        return image, _took(seconds, f"{int(n)} images")

    go.click(_safely(draw, 2), [digit, n, seed, *extras], [out, status])


def _latent_tab(m, key):
    import gradio as gr

    digit = None
    if m.can(caps.CONDITIONAL):
        digit = gr.Slider(0, m.model.num_classes - 1, value=3, step=1, label="digit (the label it is drawn with)")
    digit_inputs = [digit] if digit is not None else []

    def label(*values):
        return values[0] if values else 0

    if m.can(caps.ENCODES) and m.latent_dim == 2 and m.test_images is not None:
        extent = {}
        with gr.Row():
            with gr.Column(scale=2):
                gr.Markdown("Test digits by their code; click a point to decode it. " + legend())
                picture_map = gr.Image(label="latent map (click a point)", format="png", interactive=False,
                                       elem_id=f"latent-map-{key}")
            with gr.Column(scale=1):
                decoded = gr.Image(label="its decoding", format="png", interactive=False,
                                   elem_id=f"latent-decoded-{key}")
                status = gr.Markdown(elem_id=f"latent-status-{key}")

        def show_map():
            image, extent["value"] = latent_map(m)
            return image

        def click(evt: gr.SelectData, *values):
            x, y = evt.index[:2]
            z = map_point(extent["value"], x, y)
            image, seconds = _timed(lambda: decode(m, z[None], label(*values)))
            canvas, _ = latent_map(m, point=z)
            return canvas, picture(image, scale=8), f"z = ({z[0]:.2f}, {z[1]:.2f}); {_took(seconds, 'decoded')}"

        picture_map.select(_safely(click, 3), digit_inputs, [picture_map, decoded, status])
        _on_load(show_map, picture_map)
    else:
        origin_seed = None
        with gr.Row():
            with gr.Column(scale=1):
                what = "principal directions of the test digits' codes" if m.can(caps.ENCODES) else "the noise's first axes"
                gr.Markdown(f"Sliders along the {what} (in standard deviations).")
                if not m.can(caps.ENCODES):
                    origin_seed = gr.Number(0, precision=0, label="start from the noise of seed", minimum=0)
                sliders = [gr.Slider(-3, 3, value=0, step=0.1, label=f"direction {i + 1}")
                           for i in range(min(DIRECTIONS, m.latent_dim))]
            with gr.Column(scale=1):
                decoded = gr.Image(label="decoding", format="png", interactive=False, elem_id=f"latent-decoded-{key}")
                status = gr.Markdown(elem_id=f"latent-status-{key}")
        seeds = [origin_seed] if origin_seed is not None else []

        def move(*values):
            values = list(values)
            seed = values.pop(0) if seeds else 0
            d = values.pop(0) if digit is not None else 0
            image, seconds = along(m, values, seed=seed, digit=d)
            return image, _took(seconds, "decoded")

        inputs = seeds + digit_inputs + sliders
        for control in inputs:
            control.change(_safely(move, 2), inputs, [decoded, status])
        _on_load(lambda *v: move(*v)[0], decoded, inputs)
    gr.Markdown("**Interpolation** between the noise of two seeds")
    with gr.Row():
        seed_a = gr.Number(1, precision=0, label="seed A", minimum=0)
        seed_b = gr.Number(2, precision=0, label="seed B", minimum=0)
        frames = gr.Slider(2, 16, value=10, step=1, label="frames")
        go = gr.Button("Interpolate", elem_id=f"latent-interpolate-{key}")
    strip = gr.Image(label="strip", format="png", interactive=False, height=180, elem_id=f"latent-strip-{key}")
    strip_status = gr.Markdown()

    def strip_of(a, b, frames, *values):
        image, seconds = interpolate(m, a, b, frames, label(*values))
        return image, _took(seconds, f"{int(frames)} frames")

    go.click(_safely(strip_of, 2), [seed_a, seed_b, frames, *digit_inputs], [strip, strip_status])


_LOADS = []  # (function, inputs, output) run when the page loads; filled while `build` makes the page


def _on_load(function, output, inputs=None):
    """Fills `output` when the page loads."""
    _LOADS.append((function, inputs or None, output))


def _finish_tab(m, key):
    import gradio as gr

    with gr.Row():
        with gr.Column(scale=1):
            source = gr.Radio(["sketch", "upload", "test digit"], value="sketch", label="the digit to finish",
                              elem_id=f"finish-source-{key}")
            sketch = gr.Sketchpad(label="draw the top of a digit", canvas_size=(280, 280), fixed_canvas=True,
                                  type="numpy", image_mode="RGBA", elem_id=f"finish-sketch-{key}",
                                  brush=gr.Brush(default_size=18, colors=["#000000"], color_mode="fixed"))
            upload = gr.Image(label="or upload a 28x28 PNG", sources=["upload"], type="numpy", image_mode="L",
                              format="png", elem_id=f"finish-upload-{key}")
            limit = len(m.test_images) - 1 if m.test_images is not None else 0
            index = gr.Number(0, precision=0, label="or test digit number", minimum=0, maximum=limit)
        with gr.Column(scale=1):
            given = gr.Slider(1, 15, value=8, step=1, label="patches given, of 16 (8: the top half)")
            drawn = gr.Slider(0, 8, value=4, step=1, label="completions drawn beside the mean-field one")
            seed = gr.Number(0, precision=0, label="seed", minimum=0)
            go = gr.Button("Finish it", variant="primary", elem_id=f"finish-go-{key}")
            out = gr.Image(label="the digit, its given part, the mean-field completion, drawn ones", format="png",
                           interactive=False, height=180, elem_id=f"finish-out-{key}")
            status = gr.Markdown(elem_id=f"finish-status-{key}")

    def run(source, sketch, upload, index, given, drawn, seed):
        if source == "upload":
            image = from_upload(upload)
        elif source == "test digit":
            image = test_digit(m, index)
        else:
            image = from_sketch(sketch)
        picture_, seconds = finish(m, image, given, drawn, seed)
        return picture_, _took(seconds, f"{1 + int(drawn)} completions")

    go.click(_safely(run, 2), [source, sketch, upload, index, given, drawn, seed], [out, status])
    upload.upload(lambda: "upload", None, source)


def _side_tab(models):
    import gradio as gr

    names = [m.name for m in models]
    with gr.Row():
        chosen = gr.CheckboxGroup(names, value=names, label="models")
        seed = gr.Number(0, precision=0, label="seed", minimum=0)
        n = gr.Slider(1, 32, value=8, step=1, label="how many")
        digit = gr.Dropdown(["in turn"] + [str(k) for k in range(10)], value="in turn",
                            label="digit (conditional models)")
        go = gr.Button("Draw", variant="primary", elem_id="side-go")
    gallery = gr.Gallery(label="the same seed through each model", columns=min(len(models), 4), height="auto",
                         object_fit="contain", elem_id="side-out")
    status = gr.Markdown(elem_id="side-status")

    def run(chosen, seed, n, digit):
        picked = [m for m in models if m.name in chosen]
        if not picked:
            raise DemoInputError("Pick at least one model.")
        pictures, seconds = side_by_side(picked, seed, n, None if digit == "in turn" else int(digit))
        return pictures, _took(seconds, f"{len(picked)} models")

    go.click(_safely(run, 2), [chosen, seed, n, digit], [gallery, status])


def serve(models, host="127.0.0.1", port=7860, ready=None):
    """Serves the page until interrupted.

    Args:
        models: the `Loaded` models.
        host, port: where to listen.
        ready: called with the page's address once it answers.
    """
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    page = build(models)
    page.queue(default_concurrency_limit=1)
    _, url, _ = page.launch(server_name=host, server_port=port, prevent_thread_lock=True, quiet=True,
                            show_error=False, ssr_mode=False, footer_links=[])
    if ready:
        ready(url)
    try:
        page.block_thread()
    except KeyboardInterrupt:
        pass
    finally:
        page.close()
