"""Shared fixtures: tiny real digits, a temporary artifacts folder, other backends.

The test process runs on the torch backend (set here, before Keras is
imported). Tests for jax and tensorflow run a short script in a subprocess with
`KERAS_BACKEND` set (one long-lived process per backend), through the
`run_on_backend` fixture.
"""

import json
import os
import queue
import subprocess
import sys
import tempfile
import textwrap
import threading

os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    # One jax compilation cache for the session: the jax subprocesses (every
    # test file's, and both xdist workers' through the environment they
    # inherit) compile the same kernels again, the initializers' random draws
    # of every weight shape first (0.3 s each), so a later process loads what
    # an earlier one compiled (a tiny flow's script: 19 s on its own, 6 s
    # after another). The size limit makes jax lock the folder between
    # processes. Removed when the process that made it exits.
    import atexit
    import shutil
    import tempfile

    _jax_cache = tempfile.mkdtemp(prefix="kgen-tests-jax-cache-")
    atexit.register(shutil.rmtree, _jax_cache, ignore_errors=True)
    os.environ.update(
        JAX_COMPILATION_CACHE_DIR=_jax_cache,
        JAX_COMPILATION_CACHE_MAX_SIZE=str(2**30),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
    )

if "XLA_FLAGS" not in os.environ:
    # Most of a jax subprocess's time is XLA compiling each train step and
    # initializer for the CPU, and most of that is LLVM optimizing code that
    # then runs a few tiny steps: at level 0 a jax script takes about a third
    # less CPU time. The tests check behaviour, which does not depend on it.
    os.environ["XLA_FLAGS"] = "--xla_backend_optimization_level=0"
    try:
        from importlib.metadata import version

        _jaxlib = tuple(int(part) for part in version("jaxlib").split(".")[:2])
    except Exception:  # no jaxlib, or a version string of another form
        _jaxlib = (0, 0)
    if _jaxlib >= (0, 10):
        # and XLA's newer CPU code generators (fusion emitters, code split to be compiled in
        # parallel) cost a jax script about a seventh more CPU time for these tiny steps. The
        # flags exist from jaxlib 0.10, the version measured; XLA stops at a flag it does not know.
        os.environ["XLA_FLAGS"] += " --xla_cpu_use_fusion_emitters=false --xla_cpu_parallel_codegen_split_count=1"

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Under `pytest -n N` each worker has its share of the cores: one thread
    # each for torch, the workers' jax and tensorflow subprocesses and the
    # CLI's, where threads of several workers would otherwise wait on each
    # other (tiny steps ran many times slower on two busy cores).
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
    os.environ["XLA_FLAGS"] += " --xla_cpu_multi_thread_eigen=false"

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from kgen.data import load_bundled  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def real_digits():
    """256 real training digits (float32 (256, 28, 28, 1) in [0, 1]) and their labels."""
    images, labels = load_bundled("train")
    return (images[:256, :, :, None] / 255.0).astype("float32"), labels[:256]


@pytest.fixture
def tiny_images(real_digits):
    """32 real digits, a batch-sized slice for train-step tests."""
    return real_digits[0][:32]


@pytest.fixture
def artifacts(tmp_path):
    """An empty root for run directories."""
    path = tmp_path / "artifacts"
    path.mkdir()
    return path


@pytest.fixture
def one_torch_thread():
    """Runs a test's small steps on one torch thread: on two busy shared cores,
    a second thread mostly waits for the first (steps measured ~10x slower).

    Example:

        pytestmark = pytest.mark.usefixtures("one_torch_thread")
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# The first line of a jax script: Keras would import TensorFlow (seconds of CPU in every
# subprocess) only to check for its types when serializing and to seed it. The `kgen`
# command runs so; no jax script of the tests uses TensorFlow.
HIDE_TENSORFLOW = "from kgen.backend.common import hide_tensorflow; hide_tensorflow()\n"


def _prelude(backend):
    """What a process of `backend` runs before any snippet: `HIDE_TENSORFLOW` on jax."""
    return HIDE_TENSORFLOW if backend == "jax" else ""


# What a snippet's process prints after the snippet ends: this marker, then its result as JSON.
_DONE = "\x1ekgen-snippet-done "

# A Python process that runs snippets one after another, each in a fresh namespace, with the
# state a snippet may leave (the dtype policy, Keras's global names and seeds) reset before the
# next: one import of Keras and the backend per backend and worker, where each snippet paid
# 2 to 5 seconds for its own.
_SNIPPETS = """
import contextlib, io, json, sys, traceback
import keras
out = sys.stdout
for line in sys.stdin:
    buffer, error = io.StringIO(), None
    try:
        keras.config.set_dtype_policy("float32")
        keras.utils.clear_session()
        with contextlib.redirect_stdout(buffer):
            exec(compile(json.loads(line), "<snippet>", "exec"), {"__name__": "__main__"})
    except BaseException:  # SystemExit included: the snippet failed, the process goes on
        error = traceback.format_exc()
    out.write(DONE + json.dumps({"stdout": buffer.getvalue(), "error": error}) + "\\n")
    out.flush()
"""


class _Snippets:
    """One long-lived process of `backend` that runs snippets (`run`) in turn; see `_SNIPPETS`."""

    def __init__(self, backend, env):
        self.stderr = tempfile.TemporaryFile("w+")  # a file, not a pipe: nothing to drain
        code = _prelude(backend) + f"DONE = {_DONE!r}\n" + _SNIPPETS
        self.process = subprocess.Popen(
            [sys.executable, "-c", code], env=env, cwd=ROOT, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
        )
        self.results = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stdout:  # other lines: output written below Python's sys.stdout
            if line.startswith(_DONE):
                self.results.put(json.loads(line[len(_DONE):]))
        self.results.put(None)  # the process has ended

    def run(self, code, timeout):
        """The snippet's stdout, or `None` and the reason when it failed or the process died."""
        self.stderr.seek(0, os.SEEK_END)
        start = self.stderr.tell()
        self.process.stdin.write(json.dumps(code) + "\n")
        self.process.stdin.flush()
        try:
            result = self.results.get(timeout=timeout)
        except queue.Empty:
            self.close()
            return None, f"timed out after {timeout} s"
        if result is None or result["error"]:
            self.stderr.seek(start)
            return None, self.stderr.read()[-4000:] + (result["error"] if result else "\nthe process ended")
        return result["stdout"], None

    def alive(self):
        return self.process.poll() is None

    def close(self):
        self.process.kill()
        self.process.wait()
        self.stderr.close()


@pytest.fixture(scope="session")
def run_on_backend():
    """Runs a Python snippet under another Keras backend (`env`: more environment); returns its stdout.

    Snippets of jax and tensorflow without `env` run in one long-lived
    process per backend (`_Snippets`); torch snippets and those with their own
    environment (flags read when the backend starts) in a process of their own.

    Example:

        out = run_on_backend("jax", "import keras; print(keras.config.backend())")
    """
    shared = {}

    def run(backend, code, timeout=600, env=None):
        code = textwrap.dedent(code)
        env_all = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3", **(env or {}))
        if backend in ("jax", "tensorflow") and not env:
            if backend not in shared or not shared[backend].alive():
                shared[backend] = _Snippets(backend, env_all)
            stdout, error = shared[backend].run(code, timeout)
            assert error is None, f"{backend} script failed:\n{error}"
            return stdout
        proc = subprocess.run(
            [sys.executable, "-c", _prelude(backend) + code],
            env=env_all,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert proc.returncode == 0, f"{backend} script failed:\n{proc.stderr[-4000:]}"
        return proc.stdout

    yield run
    for snippets in shared.values():
        snippets.close()


# The test files that take longest (subprocesses of other backends, of the `kgen` command, a
# browser), longest first: `pytest -n 2 --dist loadfile` hands whole files to the workers in
# collection order (addopts turns xdist's own order, by number of tests, off), so the long ones
# start first and the short ones fill in at the end, and both workers finish together.
LONGEST_FIRST = (
    "test_keras_citizen.py", "test_devices.py", "test_reliability.py", "test_cli.py", "test_gan.py",
    "test_presets.py", "test_demo.py", "test_readme.py", "test_flow.py", "test_backends.py",
    "test_cross_backend.py", "test_benchmarks.py", "test_patch_lstm.py", "test_evaluate.py",
)


def pytest_collection_modifyitems(items):
    """Puts the longest files first (`LONGEST_FIRST`); marks the jax and tensorflow halves of the backend matrix `backends`.

    The latter are the tests parametrized with `backend` "jax" or "tensorflow"
    (except `test_backends.py`, one short train-save-load smoke test per
    backend that the default run keeps) and those of the two-device jax
    subprocess (`jax_results`). Each starts a subprocess that compiles its
    models for that backend: together they are half the suite's time, so the
    default run leaves them out and CI (`-m "not slow"`) runs them.
    """
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each file's own order kept
    for item in items:
        callspec = getattr(item, "callspec", None)
        other = callspec is not None and callspec.params.get("backend") in ("jax", "tensorflow")
        if (other and item.path.name != "test_backends.py") or "jax_results" in item.fixturenames:
            item.add_marker(pytest.mark.backends)


def assert_finite(values):
    assert np.all(np.isfinite(np.asarray(values, dtype=np.float64)))
