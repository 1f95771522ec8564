import json
import os
import shutil
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from hdr_gan_tf.config import ModelConfig, RunConfig, build_generator, write_config
from hdr_gan_tf.image_io import read_ldr
from tests.helpers import (CHROMEDRIVER, CHROMIUM, assert_each_refused, free_port,
                           headless_chromium, run_program, wait_for)


@pytest.fixture(scope="session")  # not "module": the tests may run on different workers
def small_log_dir(tmp_path_factory):
    """A log dir of an untrained small generator: the page and the program must merge alike,
    whatever the weights."""
    logdir = tmp_path_factory.mktemp("small") / "run"
    logdir.mkdir()
    config = RunConfig(model=ModelConfig(base_filters=8))
    write_config(logdir, config)
    tf.train.Checkpoint(generator=build_generator(config.model)).save(str(logdir / "ckpt"))
    return logdir


@pytest.fixture()
def bracket(tiny_data, tmp_path):
    """A built-in test scene's three photos, each alone in a folder as an upload is, and their
    EVs as one would type them."""
    scene = tiny_data / "Test" / "001"
    photos = []
    for n, photo in enumerate(sorted(scene.glob("*.tif"))):
        photos.append(tmp_path / "uploads" / str(n) / photo.name)
        photos[-1].parent.mkdir(parents=True)
        shutil.copy(photo, photos[-1])
    return photos, (scene / "exposure.txt").read_text().split()


def _merger(small_log_dir, **kwargs):
    from hdr_gan_tf.web_page import BracketMerger

    return BracketMerger(str(small_log_dir), log=lambda line: None, **kwargs)


def test_bad_brackets_are_named_by_their_file_names_and_the_page_words(small_log_dir, bracket,
                                                                       tmp_path):
    from hdr_gan_tf.image_io import write_ldr
    from hdr_gan_tf.web_page import page_message

    photos, ev = bracket
    small = tmp_path / "uploads" / "abc" / "small.tif"
    write_ldr(small, np.zeros((8, 8, 3)), 16)
    broken = tmp_path / "uploads" / "def" / "broken.tif"
    broken.parent.mkdir()
    broken.write_bytes(b"II*\x00" + b"\x00" * 20)
    merger = _merger(small_log_dir)
    cases = {
        "too many pixels": (photos, ev, {"max_pixels": 96 * 128 - 1},
                            "more than the limit of 12,287"),
        "sizes differ": ([*photos[:2], small], ev, {}, "photos differ in size"),
        "corrupt": ([*photos[:2], broken], ev, {}, "broken.tif"),
        "no exposures": (photos, "", {}, "no exposures given: pass the EV box"),
        "two photos": (photos[:2], ev[:2], {}, "a bracket is 3 to 9 photos"),
        "EV count": (photos, ev[:2], {}, "the EV box has 2 values for 3 photos"),
        "tiled fusion": (photos, ev, {"method": "mertens", "tile": 128},
                         "the tile size: Mertens' fusion writes no HDR file"),
        "negative tile": (photos, ev, {"tile": -1}, "the tile size: give 0"),
        "small tile": (photos, ev, {"tile": 64}, "the tile size: 0 (the whole image) or at least"),
    }
    for name, (paths, exposures, options, expected) in cases.items():
        folder = tmp_path / name
        merger.max_pixels = options.pop("max_pixels", 96 * 128)
        with pytest.raises((ValueError, OSError)) as err:
            merger.merge(paths, " ".join(exposures), folder, **options)
        message = page_message(err.value, paths)
        assert expected in message, (name, message)
        assert str(tmp_path) not in message and "--exposure_bias" not in message, (name, message)
        assert not folder.exists(), name  # refused before anything was written
    assert merger.merges == 0


@pytest.mark.slow
def test_a_merge_writes_what_infer_writes_and_the_preview_renders_without_the_network(
        small_log_dir, bracket, tmp_path):
    from hdr_gan_tf.display import tonemap_for_display
    from hdr_gan_tf.web_page import render_preview

    photos, ev = bracket
    merger = _merger(small_log_dir)
    merged = merger.merge(photos, ", ".join(ev), tmp_path / "page", compare=True)
    assert merger.merges == 1
    assert [p.name for p in merged.downloads] == [
        "merged.hdr", "merged.exr", "merged.png", "merged.json"]
    result = run_program("infer", f"--checkpoint={small_log_dir}",
                         f"--inputs={','.join(map(str, photos))}",
                         f"--exposure_bias={','.join(ev)}", f"--output={tmp_path / 'cli.hdr'}",
                         "--exr")
    assert result.returncode == 0, result.stderr
    for suffix in (".hdr", ".exr", ".png"):
        assert (tmp_path / "page" / f"merged{suffix}").read_bytes() == (
            tmp_path / f"cli{suffix}").read_bytes(), suffix
    record = json.loads((tmp_path / "page" / "merged.json").read_text())
    assert record["program"] == "hdr-gan-app" and record["options"] == json.loads(
        (tmp_path / "cli.json").read_text())["options"]
    assert [caption.split(":")[0] for _, caption in merged.pictures] == [
        "short", "reference", "long", "Debevec's classical merge, for comparison"]
    assert (tmp_path / "page" / "debevec" / "merged.hdr").is_file()

    # Tiled, the photos are spooled and the result streamed.
    tiled = merger.merge(photos, ", ".join(ev), tmp_path / "tiled", tile=128, align="none")
    result = run_program("infer", f"--checkpoint={small_log_dir}",
                         f"--inputs={','.join(map(str, photos))}", "--tile=128",
                         f"--exposure_bias={','.join(ev)}", f"--output={tmp_path / 'tiled.hdr'}",
                         "--exr", "--align=none")
    assert result.returncode == 0, result.stderr
    assert tiled.downloads[0].read_bytes() == (tmp_path / "tiled.hdr").read_bytes()
    assert merger.merges == 2

    assert render_preview(merged, 0, "reinhard") == merged.preview
    # +1 EV: twice the light of the Reinhard picture (scale-free), or μ-law of twice the HDR.
    hdr, shown = np.load(merged.preview_hdr), read_ldr(merged.preview)
    for tonemap, expected in (("reinhard", tonemap_for_display(hdr) * 2 ** (1 / 2.2)),
                              ("mu_law", tonemap_for_display(hdr * 2, "mu_law"))):
        got = read_ldr(render_preview(merged, 1.0, tonemap))
        # one 8-bit step: the PNG's rounding
        np.testing.assert_allclose(got, np.clip(expected, 0, 1), atol=1 / 255 + 1e-6)
    assert read_ldr(render_preview(merged, 1.0)).mean() > shown.mean() * 1.2
    assert merger.merges == 2


def _fetch(url):
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read()


def _upload(port, size):
    """The HTTP status of an upload of `size` bytes to the page's upload route."""
    boundary = "hdr-gan-test-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; "
            f"filename=\"big.tif\"\r\nContent-Type: image/tiff\r\n\r\n").encode() + (
        b"\0" * size) + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/gradio_api/upload", data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


def _decoded_png(data, tmp_path):
    path = tmp_path / f"fetched_{time.time_ns()}.png"
    path.write_bytes(data)
    return read_ldr(path)


@pytest.mark.slow
def test_the_page_in_a_browser_merges_as_infer_does_and_survives_bad_photos(
        small_log_dir, bracket, tmp_path):
    """Upload, merge, compare with hdr-gan-infer, move the exposure slider, a corrupt photo and
    the next bracket, in headless Chromium; the page fetches nothing from elsewhere and its
    files go when the browser leaves."""
    pytest.importorskip("gradio")
    pytest.importorskip("selenium")
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        pytest.skip("needs Debian's chromium and chromium-driver (.ci/run installs them)")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    from hdr_gan_tf.cli.app import start

    photos, ev = bracket
    shots = Path(os.environ.get("HDR_GAN_SCREENSHOTS", tmp_path / "screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    result = run_program("infer", f"--checkpoint={small_log_dir}",
                         f"--inputs={','.join(map(str, photos))}",
                         f"--exposure_bias={','.join(ev)}", f"--output={tmp_path / 'cli.hdr'}")
    assert result.returncode == 0, result.stderr
    broken = tmp_path / "broken" / "IMG_0005.tif"
    broken.parent.mkdir()
    broken.write_bytes(photos[1].read_bytes()[:300])  # a truncated TIFF

    merger = _merger(small_log_dir)
    port = free_port()
    page, stop = start(merger, port=port, block=False, max_file_mb=1)
    browser = None
    try:
        sessions = Path(page.GRADIO_CACHE).parent / "sessions"
        browser = headless_chromium()
        browser.get(f"http://127.0.0.1:{port}/")
        wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#merge"), "the page")
        browser.save_screenshot(str(shots / "1_page.png"))

        def upload(paths, exposures):
            for clear in browser.find_elements(By.CSS_SELECTOR, "#photos button[aria-label="
                                                                "'Clear']"):
                clear.click()
            browser.find_element(By.CSS_SELECTOR, "#photos input[type=file]").send_keys(
                "\n".join(map(str, paths)))
            wait_for(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#photos tr.file"))
                  == len(paths), "the uploads")
            box = browser.find_element(By.CSS_SELECTOR, "#exposures textarea")
            box.clear()
            box.send_keys(", ".join(exposures))
            before = browser.find_element(By.ID, "status").text
            browser.find_element(By.ID, "merge").click()
            return wait_for(lambda: (lambda text: text != before and (
                "Merged" in text or "Could not merge" in text) and text)(
                    browser.find_element(By.ID, "status").text), "the merge")

        status = upload([photos[0], broken, photos[2]], ev)
        browser.save_screenshot(str(shots / "2_corrupt_photo.png"))
        assert "Could not merge" in status and "IMG_0005.tif" in status, status
        assert "Traceback" not in browser.page_source and merger.merges == 0

        status = upload(photos, ev)
        assert "Merged (merge 1 of this page)" in status, status
        browser.save_screenshot(str(shots / "3_merged.png"))
        links = {Path(a.get_attribute("href")).name: a.get_attribute("href")
                 for a in browser.find_elements(By.CSS_SELECTOR, "#downloads a")}
        assert sorted(links) == ["merged.exr", "merged.hdr", "merged.json", "merged.png"]
        assert _fetch(links["merged.hdr"]) == (tmp_path / "cli.hdr").read_bytes()

        def shown():
            return browser.find_element(By.CSS_SELECTOR, "#preview img").get_attribute("src")

        first = shown()
        np.testing.assert_array_equal(_decoded_png(_fetch(first), tmp_path),
                                      read_ldr(tmp_path / "cli.png"))
        slider = browser.find_element(By.CSS_SELECTOR, "#exposure input[type=range]")
        for _ in range(4):  # +1 EV
            slider.send_keys(Keys.ARROW_RIGHT)
        brighter = wait_for(lambda: shown().endswith("reinhard_1.00EV.png") and shown(),
                         "the preview re-rendered at +1 EV")
        browser.save_screenshot(str(shots / "4_exposure_plus_1.png"))
        assert _decoded_png(_fetch(brighter), tmp_path).mean() > read_ldr(
            tmp_path / "cli.png").mean() * 1.2
        assert merger.merges == 1  # the slider ran no merge

        addresses = set()  # host:port, or the scheme of a data: or blob: address
        for entry in browser.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message["method"] == "Network.requestWillBeSent":
                url = urllib.parse.urlsplit(message["params"]["request"]["url"])
                addresses.add(url.netloc or url.scheme)
        assert f"127.0.0.1:{port}" in addresses, addresses  # the log did record requests
        assert addresses <= {f"127.0.0.1:{port}", "data", "blob"}, addresses
        assert _upload(port, 2 ** 20 + 1) == 413 and _upload(port, 1000) == 200  # the file cap
        cache = Path(page.GRADIO_CACHE)
        assert any(sessions.iterdir()) and list(cache.rglob("merged.hdr"))
        browser.quit()
        browser = None
        wait_for(lambda: not any(sessions.iterdir()), "the session's files to go", timeout=60)
        # Its uploads and the copies the page served went too (the HTTP upload is no
        # session's; Gradio's upload parser leaves empty placeholders until the program stops).
        left = [p.name for p in cache.rglob("*") if p.is_file() and p.stat().st_size]
        assert left == ["big.tif"], left
    finally:
        if browser is not None:
            browser.quit()
        stop()
    assert not sessions.parent.exists()
    shutil.copy(tmp_path / "cli.png", shots / "0_infer_preview.png")


def test_the_program_refuses_what_it_cannot_serve(small_log_dir, tmp_path):
    pytest.importorskip("gradio")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert_each_refused({
            "no model": ("app", [], "--checkpoint: the network needs a trained model"),
            "two models": ("app", [f"--checkpoint={small_log_dir}",
                                   f"--saved_model={tmp_path}"], "--saved_model: give one of"),
            "no checkpoint": ("app", [f"--checkpoint={tmp_path / 'none'}"],
                              f"{tmp_path / 'none'}: neither a log dir nor a checkpoint"),
            "port taken": ("app", [f"--checkpoint={small_log_dir}", f"--port={port}"],
                           str(port)),
        })


def test_a_file_two_sessions_hold_goes_when_the_last_ends_and_not_during_a_merge(tmp_path):
    pytest.importorskip("gradio")
    from gradio.processing_utils import hash_file

    from hdr_gan_tf.web_page import Sessions

    cache = tmp_path / "cache"
    sessions = Sessions(tmp_path / "sessions", cache=cache)
    upload = cache / "abc" / "photo.tif"  # Gradio names an upload's folder by its contents
    upload.parent.mkdir(parents=True)
    upload.write_bytes(b"photo")
    merges = {}
    for session in ("a", "b"):  # the same photo merged alike in two tabs
        merges[session] = sessions.next_merge(session) / "merged.hdr"
        merges[session].parent.mkdir(parents=True)
        merges[session].write_bytes(b"merge")
        sessions.hold(session, uploads=[upload], served=[merges[session]])
    served = cache / hash_file(merges["a"]) / "merged.hdr"  # the copy Gradio served both
    served.parent.mkdir()
    served.write_bytes(b"merge")
    with sessions.working("a"):
        sessions.end("a")  # the tab closed while it merged: its files stay until it is done
        assert merges["a"].is_file()
    assert not sessions.folder("a").exists()
    assert upload.is_file() and served.is_file()  # b still holds them
    sessions.end("b")
    assert not upload.parent.exists() and not served.parent.exists()
    assert not sessions.folder("b").exists()
