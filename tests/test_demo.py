"""`kgen demo` in a real browser: headless Chromium (Debian's) driven by Selenium.

One `kgen demo` serves three tiny one-epoch runs (a cGAN, a VAE with a 2-D
latent, a PatchLSTM) and the shipped flow preset on a free local port; the
tests ask for a digit, click on the latent map, finish a drawn and an
uploaded digit, and check that a blank sketch or a wrong-size upload shows a
message while the server keeps answering. The request times of a grid of 16
are printed (run with `-s` to see them), not asserted: the flow preset's is
the slowest request a user of the shipped models meets.

`KGEN_DEMO_SCREENSHOTS=docs/images` saves a screenshot of each tab there
(docs/images/demo_*.png, as docs/demo.md shows them); `KGEN_DEMO_RUNS` (runs
separated by spaces) serves those runs instead of the tiny ones, for
screenshots of trained models. The tests skip, with the reason, only when
Gradio, Selenium or Chromium is not installed (`pip install -e ".[demo,dev]"`,
`apt-get install chromium chromium-driver`).
"""

import os
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner

from kgen import specs, training
from kgen.cli.main import main

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _missing():
    try:
        import gradio  # noqa: F401
    except ImportError:
        return 'Gradio is not installed (pip install -e ".[demo]")'
    try:
        import selenium  # noqa: F401
    except ImportError:
        return 'Selenium is not installed (pip install -e ".[dev]")'
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        return "Chromium is not installed (apt-get install chromium chromium-driver)"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=str(_missing()))

TINY = [  # model, options: each one epoch on 64 bundled digits
    ("cgan", {"arch": "mlp", "latent_dim": 8}),
    ("vae", {"latent_dim": 2}),
    ("lstm", {"units": 16, "num_layers": 1}),
]
SHIPPED = ["flow-mnist"]  # served as `kgen demo` serves it to a user, with its own sampler settings


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The address of `kgen demo` serving the tiny runs (or $KGEN_DEMO_RUNS), on a free port."""
    import torch

    runs = os.environ.get("KGEN_DEMO_RUNS", "").split()
    if not runs:
        out = str(tmp_path_factory.mktemp("artifacts"))
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            for model, options in TINY:
                config = specs.TrainConfig(model=model, epochs=1, batch_size=32, limit=64, val_images=0, offline=True,
                                           out=out, model_options=options)
                runs.append(training.train(config, verbose=0))
        finally:
            torch.set_num_threads(threads)
        runs += SHIPPED
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # both cores, as a user's server has them: the request times printed are a user's
    env = dict(os.environ, OMP_NUM_THREADS="2", KERAS_BACKEND="torch", GRADIO_ANALYTICS_ENABLED="False")
    log = tmp_path_factory.mktemp("demo") / "demo.log"
    with open(log, "w") as f:
        proc = subprocess.Popen([sys.executable, "-m", "kgen", "demo", *runs, "--port", str(port)],
                                stdout=f, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    start = time.monotonic()
    try:
        while "at http" not in log.read_text():
            assert proc.poll() is None, f"kgen demo exited {proc.returncode}:\n{log.read_text()[-3000:]}"
            assert time.monotonic() - start < 180, f"kgen demo did not start:\n{log.read_text()[-3000:]}"
            time.sleep(0.2)
        line = next(line for line in log.read_text().splitlines() if "at http" in line)
        assert line.startswith("kgen demo: ") and f"http://127.0.0.1:{port}/" in line, line
        print(f"\nkgen demo started in {time.monotonic() - start:.1f} s")
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


@pytest.fixture(scope="module")
def browser(served):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1280,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.get(served)
    _wait(lambda: driver.find_elements("css selector", "button[role=tab]"), "the page's tabs")
    yield driver
    driver.quit()


def _wait(condition, what, timeout=60):
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            value = condition()
        except Exception:  # an element replaced while it was read: look again
            value = None
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _find(driver, css):
    return driver.find_element("css selector", css)


def _tab(driver, label, required=True):
    """Clicks the (sub-)tab whose text starts with `label` (a model's sub-tab: only when there are several)."""
    tabs = [b for b in driver.find_elements("css selector", "button[role=tab]") if b.text.startswith(label)]
    if not tabs and not required:
        return
    assert tabs, f"no tab {label!r}"
    tabs[0].click()
    time.sleep(0.3)


def _image(driver, css):
    """The src of the image inside the element `css`, or None."""
    images = driver.find_elements("css selector", f"{css} img")
    return images[0].get_attribute("src") if images and images[0].get_attribute("src") else None


def _new_image(driver, css, before, what):
    return _wait(lambda: (src := _image(driver, css)) and src != before and src, what)


def _text(driver, css):
    return _find(driver, css).text


def _screenshot(driver, name):
    folder = os.environ.get("KGEN_DEMO_SCREENSHOTS")
    if folder:
        os.makedirs(folder, exist_ok=True)
        for close in driver.find_elements("css selector", ".toast-close, [data-testid=toast-close]"):
            close.click()  # the messages of the bad inputs
        driver.execute_script("window.scrollTo(0, 0)")
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1280, min(max(height + 40, 800), 1600))
        time.sleep(0.3)
        driver.save_screenshot(os.path.join(folder, f"demo_{name}.png"))
        driver.set_window_size(1280, 1000)


def _click_and_time(driver, button, output, what):
    """Clicks `button`, waits for a new image in `output`; the browser's round trip in seconds."""
    before = _image(driver, output)
    start = time.perf_counter()
    _find(driver, button).click()
    _new_image(driver, output, before, what)
    return time.perf_counter() - start


def test_without_gradio_or_presets_it_says_so_in_one_line(monkeypatch):
    from kgen import demo, presets

    monkeypatch.setattr(presets, "ROOT", os.path.join(ROOT, "no-presets-here"))
    result = CliRunner().invoke(main, ["demo"])
    assert result.exit_code == 2 and result.output.strip().splitlines() == [
        "Error: No presets ship with this kgen yet; name the runs to serve: kgen demo RUN..."
    ], result.output

    def no_gradio():
        raise ImportError(demo.INSTALL)

    monkeypatch.setattr(demo, "check_gradio", no_gradio)
    result = CliRunner().invoke(main, ["demo"])
    assert result.exit_code == 2 and result.output.strip() == f"Error: {demo.INSTALL}", result.output


def test_sketch_and_upload_checks():
    from kgen import demo

    canvas = np.zeros((280, 280, 4), np.uint8)
    with pytest.raises(demo.DemoInputError, match="blank"):
        demo.from_sketch({"composite": canvas})
    canvas[40:80, 60:220] = (0, 0, 0, 255)  # a dark stroke on a clear page: the top bar of a 7
    image = demo.from_sketch({"composite": canvas})
    assert image.shape == (28, 28, 1) and image[5, 10:20].mean() > 0.9 and image[20:].max() == 0
    with pytest.raises(demo.DemoInputError, match="28x28.*size=40x28"):
        demo.from_upload(np.zeros((28, 40), np.uint8))
    light = np.full((28, 28), 255, np.uint8)
    light[4:8, 4:20] = 0
    assert demo.from_upload(light)[5, 10, 0] == 1.0  # a dark digit on a light page is inverted


def test_ask_for_a_digit(browser, capsys):
    _tab(browser, "Ask for a digit")
    _tab(browser, "cgan", required=False)
    seconds = _click_and_time(browser, "[id^=ask-go-cgan]", "[id^=ask-out-cgan]", "the cgan's grid")
    status = _wait(lambda: "images in" in _text(browser, "[id^=ask-status-cgan]") and _text(browser, "[id^=ask-status-cgan]"), "its time")
    assert status.startswith("16 images in"), status
    _screenshot(browser, "ask")
    times = [f"cgan: {status} on the server, {seconds * 1000:.0f} ms in the browser"]
    flows = [b for b in browser.find_elements("css selector", "button[role=tab]") if b.text.startswith("flow")]
    if flows:  # the flow's sub-tab: guidance and steps
        flows[0].click()
        seconds = _click_and_time(browser, "[id^=ask-go-flow]", "[id^=ask-out-flow]", "the flow's grid")
        status = _wait(lambda: "images in" in _text(browser, "[id^=ask-status-flow]") and _text(browser, "[id^=ask-status-flow]"), "its time")
        assert "guidance weight" in _find(browser, "#tab-ask").text and "sampler steps" in _find(browser, "#tab-ask").text
        times.append(f"flow: {status} on the server, {seconds * 1000:.0f} ms in the browser")
    with capsys.disabled():
        print("\nkgen demo, a grid of 16: " + "; ".join(times))


def test_click_on_the_latent_map_decodes_the_point(browser):
    from selenium.webdriver.common.action_chains import ActionChains

    _tab(browser, "Walk the latent space")
    _tab(browser, "vae", required=False)
    _wait(lambda: _image(browser, "[id^=latent-map-vae]"), "the latent map")
    picture = _find(browser, "[id^=latent-map-vae] img")
    before = _image(browser, "[id^=latent-decoded-vae]")
    ActionChains(browser).move_to_element_with_offset(picture, 30, -40).click().perform()
    _new_image(browser, "[id^=latent-decoded-vae]", before, "the decoding of the point clicked")
    status = _wait(lambda: "z = (" in _text(browser, "[id^=latent-status-vae]") and _text(browser, "[id^=latent-status-vae]"), "the code")
    assert "decoded in" in status, status
    _click_and_time(browser, "[id^=latent-interpolate-vae]", "[id^=latent-strip-vae]", "the interpolation strip")
    _screenshot(browser, "latent")
    _tab(browser, "cgan", required=False)  # a larger latent: sliders along its noise's axes, decoded when the page loads
    _wait(lambda: _image(browser, "[id^=latent-decoded-cgan]"), "the cgan's decoding")


def test_finish_my_digit_and_bad_inputs(browser, tmp_path):
    from PIL import Image
    from selenium.webdriver.common.action_chains import ActionChains

    _tab(browser, "Finish my digit")
    status = "[id^=finish-status]"
    _find(browser, "[id^=finish-go]").click()  # nothing drawn yet
    message = _wait(lambda: "blank" in _text(browser, status) and _text(browser, status), "the blank-sketch message")
    assert message == "Error: Draw a digit first: the sketch is blank.", message
    assert "Traceback" not in browser.page_source

    sketch = _find(browser, "[id^=finish-sketch]")
    sketch.find_element("css selector", "button[aria-label='Brush']").click()
    canvas = sketch.find_element("css selector", "canvas")
    stroke = ActionChains(browser).move_to_element_with_offset(canvas, -50, -70).click_and_hold()
    for _ in range(12):
        stroke.move_by_offset(9, 0)
    for _ in range(10):
        stroke.move_by_offset(-3, 10)
    stroke.release().perform()
    _click_and_time(browser, "[id^=finish-go]", "[id^=finish-out]", "the completions of the sketch")
    done = _wait(lambda: "completions in" in _text(browser, status) and _text(browser, status), "its time")
    assert done.startswith("5 completions in"), done  # the server answered after the bad input
    _screenshot(browser, "finish")

    wrong = tmp_path / "wrong.png"
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(wrong)
    _find(browser, "[id^=finish-upload] input[type=file]").send_keys(str(wrong))
    _wait(lambda: _image(browser, "[id^=finish-upload]"), "the uploaded image")
    time.sleep(0.5)  # the upload event picks the "upload" source
    _find(browser, "[id^=finish-go]").click()
    message = _wait(lambda: "size=" in _text(browser, status) and _text(browser, status), "the wrong-size message")
    assert "28x28" in message and "size=40x40" in message, message

    right = tmp_path / "seven.png"
    digit = np.zeros((28, 28), np.uint8)
    digit[5:8, 6:22] = 255
    digit[8:22, 17:20] = 255
    Image.fromarray(digit).save(right)
    _find(browser, "[id^=finish-upload] button[aria-label='Clear']").click() if browser.find_elements(
        "css selector", "[id^=finish-upload] button[aria-label='Clear']") else None
    _find(browser, "[id^=finish-upload] input[type=file]").send_keys(str(right))
    time.sleep(0.5)
    _click_and_time(browser, "[id^=finish-go]", "[id^=finish-out]", "the completions of the upload")
    assert _wait(lambda: "completions in" in _text(browser, status), "its time")


def test_side_by_side(browser):
    _tab(browser, "Side by side")
    _find(browser, "#side-go").click()
    served = len(browser.find_elements("css selector", "#side-go ~ * input[type=checkbox], [type=checkbox]"))
    _wait(lambda: len(browser.find_elements("css selector", "#side-out img")) >= served, "a grid of each model")
    assert f"{served} models in" in _wait(lambda: _text(browser, "#side-status"), "its time")
    _screenshot(browser, "side")
