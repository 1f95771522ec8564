import concurrent.futures
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from hdr_gan_tf.image_io import read_ldr
from tests.helpers import (CHROMEDRIVER, CHROMIUM, REPO, assert_each_refused, free_port,
                           headless_chromium, run_program, wait_for)
from tests.page_client import PageClient, file_data


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
    from tests.test_raw_photos import _scene, write_dng

    raws = []
    for n, seconds in enumerate((1 / 400, 1 / 100, 1 / 25)):
        raws.append(tmp_path / "uploads" / f"raw{n}" / f"IMG_{n}.dng")
        raws[-1].parent.mkdir()
        write_dng(raws[-1], np.clip(_scene() * 4 ** n / 8, 0, 1), seconds=seconds)
    raws[1].write_bytes(raws[1].read_bytes()[:2000])  # the reference, truncated
    merger = _merger(small_log_dir)
    cases = {
        "truncated RAW reference": (raws, "", {}, "IMG_1.dng: LibRaw could not"),
        "too many pixels": (photos, ev, {"max_pixels": 96 * 128 - 1},
                            "more than the limit of 12,287"),
        "sizes differ": ([*photos[:2], small], ev, {}, "photos differ in size"),
        "corrupt": ([*photos[:2], broken], ev, {}, "broken.tif"),
        "no exposures": (photos, "", {}, "no exposures given: give the EV box"),
        "two photos": (photos[:2], ev[:2], {}, "a bracket is 3 to 9 photos"),
        "EV count": (photos, ev[:2], {}, "the EV box: 2 values for 3 photos"),
        "tiled fusion": (photos, ev, {"method": "mertens", "tile": 128},
                         "the tile size: the mertens method makes a picture to look at"),
        "negative tile": (photos, ev, {"tile": -1}, "the tile size: give 0"),
        "unknown method": (photos, ev, {"method": "magic"},
                           "the merge method: one of network, debevec, mertens, not 'magic'"),
        "small tile": (photos, ev, {"tile": 64}, "the tile size: auto, 0 (the whole image) or at "
                                                 "least"),
        "tile text": (photos, ev, {"tile": "big"}, "the tile size: auto, 0 (the whole image) or "
                                                   "a tile side in pixels, not 'big'"),
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
        "merged.hdr", "merged.exr", "merged.jpg", "merged.avif", "merged.png", "merged.json"]
    assert merged.hdr_photo == tmp_path / "page" / "merged.jpg"
    result = run_program("infer", f"--checkpoint={small_log_dir}",
                         f"--inputs={','.join(map(str, photos))}",
                         f"--exposure_bias={','.join(ev)}", f"--output={tmp_path / 'cli.hdr'}",
                         "--formats=exr,jpg,avif")
    assert result.returncode == 0, result.stderr
    for suffix in (".hdr", ".exr", ".jpg", ".avif", ".png"):
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
                         "--formats=exr,jpg,avif", "--align=none")
    assert result.returncode == 0, result.stderr
    for page_file in tiled.downloads[:4]:  # .hdr, .exr, .jpg, .avif
        assert page_file.read_bytes() == (tmp_path / f"tiled{page_file.suffix}").read_bytes()
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
                         f"--exposure_bias={','.join(ev)}", f"--output={tmp_path / 'cli.hdr'}",
                         "--formats=jpg")
    assert result.returncode == 0, result.stderr
    broken = tmp_path / "broken" / "IMG_0005.tif"
    broken.parent.mkdir()
    broken.write_bytes(photos[1].read_bytes()[:300])  # a truncated TIFF

    merger = _merger(small_log_dir)
    port = free_port()
    page, stop = start(merger, port=port, block=False, max_file_mb=1, grace=0)
    browser = None
    try:
        sessions = page.sessions.root
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
        assert sorted(links) == ["merged.avif", "merged.exr", "merged.hdr", "merged.jpg",
                                 "merged.json", "merged.png"]
        assert all(str(sessions) in link for link in links.values())  # served, not copied
        assert _fetch(links["merged.hdr"]) == (tmp_path / "cli.hdr").read_bytes()
        # The HDR photo is shown as it was written, and the browser decodes it.
        hdr_photo = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#hdr_photo img"),
                             "the HDR photo")[0]
        assert _fetch(hdr_photo.get_attribute("src")) == (tmp_path / "cli.jpg").read_bytes()
        assert wait_for(lambda: browser.execute_script(
            "return arguments[0].complete && arguments[0].naturalWidth", hdr_photo),
            "the HDR photo decoded") == 128
        browser.execute_script("window.avif = new Image(); window.avif.src = arguments[0];",
                               links["merged.avif"])
        assert wait_for(lambda: browser.execute_script(
            "return window.avif.complete && window.avif.naturalWidth"), "the AVIF decoded") == 128

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
        # Reinhard's picture with twice the light (gamma 2.2), from the unrounded picture: within
        # the two PNGs' rounding of the program's preview.
        expected = np.clip(read_ldr(tmp_path / "cli.png") * 2 ** (1 / 2.2), 0, 1)
        np.testing.assert_allclose(_decoded_png(_fetch(brighter), tmp_path), expected,
                                   atol=(2 ** (1 / 2.2) + 1) / 2 / 255 + 1e-6)
        assert merger.merges == 1  # the slider ran no merge

        addresses = set()  # host:port, or the scheme of a data: or blob: address
        for entry in browser.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message["method"] == "Network.requestWillBeSent":
                url = urllib.parse.urlsplit(message["params"]["request"]["url"])
                addresses.add(url.netloc or url.scheme)
        assert f"127.0.0.1:{port}" in addresses, addresses  # the log did record requests
        assert addresses <= {f"127.0.0.1:{port}", "data", "blob"}, addresses
        client = PageClient(port)  # the file cap
        assert client.upload([("big.tif", b"\0" * (2 ** 20 + 1))])[0] == 413
        assert client.upload([("big.tif", b"\0" * 1000)])[0] == 200
        uploads = Path(page.GRADIO_CACHE)
        # The tab holds the photos it shows (the truncated one it showed first is gone) and
        # the HTTP upload is no tab's.
        assert any(sessions.iterdir())
        assert sorted(p.name for p in uploads.rglob("*.tif")) == sorted(
            [p.name for p in photos] + ["big.tif"])
        browser.quit()
        browser = None
        # The session's end is one step: once it is no longer active, its files are gone.
        wait_for(lambda: not page.sessions.active(), "the session's end", timeout=60)
        assert not any(sessions.iterdir())
        left = [p.name for p in uploads.rglob("*") if p.is_file()]
        assert left == ["big.tif"], left  # the HTTP upload is no session's: it expires
        page.sessions.upload_ttl = 0
        wait_for(lambda: not list(uploads.rglob("*")), "the unclaimed upload to expire",
                 timeout=60)
    finally:
        if browser is not None:
            browser.quit()
        stop()
    assert not sessions.parent.exists()  # the program's whole folder went when it stopped
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


@pytest.fixture()
def served_page(small_log_dir):
    """The page on a free port with a 3 s grace and a 3 s upload expiry: `(page, merger,
    port)`; stopped (every file removed) after the test."""
    pytest.importorskip("gradio")
    from hdr_gan_tf.cli.app import start

    merger, port = _merger(small_log_dir), free_port()
    page, stop = start(merger, port=port, block=False, grace=3, upload_ttl=3)
    try:
        yield page, merger, port
    finally:
        stop()


def _merge_args(paths, ev, **options):
    """The merge event's inputs, in the page's order."""
    options = {"method": "network", "compare": False, "align": "none",
               "precision": "float32", "tile": 0, "tonemap": "reinhard", **options}
    return [[file_data(p) for p in paths], ", ".join(ev), *options.values()]


def _tab_with(port, photos):
    """A connected tab of the page and the paths of `photos` uploaded to it."""
    tab = PageClient(port)
    tab.connect()
    status, paths = tab.upload([(p.name, p.read_bytes()) for p in photos])
    assert status == 200, paths
    return tab, paths


def _hold_merges(merger):
    """Makes each merge of `merger` wait, once begun, until the test says: `(started,
    release)`, two events."""
    original, started, release = merger.merge, threading.Event(), threading.Event()

    def held_merge(*args, **kwargs):
        started.set()
        release.wait(60)
        return original(*args, **kwargs)

    merger.merge = held_merge
    return started, release


def _status(message):
    """The merge's status line (a successful event's first output)."""
    assert message["success"], message
    return message["output"]["data"][0] if message["output"]["data"] else None


@pytest.mark.slow
def test_a_hostile_client_touches_no_other_sessions_files(served_page, bracket):
    """Names the upload folder, another session's upload folder and merge, and the sessions'
    folder as its photos, then leaves: the other session keeps everything."""
    page, merger, port = served_page
    photos, ev = bracket
    victim, attacker = PageClient(port), PageClient(port)
    victim.connect()
    status, uploads = victim.upload([(p.name, p.read_bytes()) for p in photos])
    assert status == 200
    _status(victim.call("uploaded", [[file_data(p) for p in uploads]]))
    merged = victim.call("run_merge", _merge_args(uploads, ev))
    assert "Merged" in _status(merged)
    preview = Path(merged["output"]["data"][1]["path"])
    victims = [Path(p) for p in uploads] + [p for p in preview.parent.rglob("*")]

    attacker.connect()
    status, own = attacker.upload([("x.tif", b"not a photo")])
    assert status == 200
    upload_folder = Path(own[0]).parent.parent
    _status(attacker.call("uploaded", [[file_data(own[0])]]))
    for target in (upload_folder, Path(uploads[0]).parent, preview.parent, preview,
                   page.sessions.root, Path(own[0]).parent / ".." / Path(uploads[0]).parent.name):
        _status(attacker.call("uploaded", [[file_data(own[0]), file_data(target)]]))
        text = _status(attacker.call("run_merge", _merge_args([own[0], target, own[0]], ev)))
        assert "Could not merge" in text and "not a photo uploaded to this page" in text, text
    attacker.disconnect()
    wait_for(lambda: attacker.session not in page.sessions.active(), "the attacker's end",
             timeout=60)
    assert not Path(own[0]).exists()  # its own upload went with it
    assert all(p.exists() for p in victims), [p for p in victims if not p.exists()]
    assert "Merged" in _status(victim.call("run_merge", _merge_args(uploads, ev)))
    assert merger.merges == 2


@pytest.mark.slow
def test_a_tab_that_reconnects_keeps_its_uploads_and_the_merge_it_missed(served_page, bracket):
    page, merger, port = served_page
    photos, ev = bracket
    tab, uploads = _tab_with(port, photos)
    _status(tab.call("uploaded", [[file_data(p) for p in uploads]]))

    # An idle tab's blip, longer than nothing but shorter than the grace.
    tab.disconnect()
    time.sleep(1)
    tab.connect()
    time.sleep(page.sessions.grace + 2)
    assert all(Path(p).is_file() for p in uploads)
    assert "(merge 1 of this page)" in _status(tab.call("run_merge", _merge_args(uploads, ev)))

    # A blip during a merge: the merge finishes, and the next click shows it at once.
    started, release = _hold_merges(merger)
    first = {}
    click = threading.Thread(target=lambda: first.update(
        message=tab.call("run_merge", _merge_args(uploads, ev, tonemap="drago"))))
    click.start()
    assert started.wait(60)
    tab.disconnect()
    wait_for(lambda: tab.session not in page.sessions._connections, "the drop")
    tab.connect()
    release.set()
    click.join(120)
    assert merger.merges == 2
    again = _status(tab.call("run_merge", _merge_args(uploads, ev, tonemap="drago")))
    assert "finished while the page was disconnected" in again, again
    assert merger.merges == 2  # shown, not merged again
    assert all(Path(p).is_file() for p in uploads)
    tab.disconnect()
    wait_for(lambda: not page.sessions.active(), "the tab's end", timeout=60)
    assert not any(Path(p).exists() for p in uploads)


@pytest.mark.slow
def test_uploads_no_event_claims_are_bounded_and_expire(served_page, bracket):
    page, merger, port = served_page
    photos, ev = bracket
    client = PageClient(port)
    for n in range(page.sessions.max_pending_files):
        assert client.upload([(f"{n}.tif", bytes([n]) * 100)])[0] == 200
    status, text = client.upload([("more.tif", b"x")])
    assert status == 429 and "not used by any page" in text
    uploads = Path(page.GRADIO_CACHE)
    wait_for(lambda: not [p for p in uploads.rglob("*") if p.is_file()],
             "the unclaimed uploads to expire", timeout=60)
    assert client.upload([("more.tif", b"x")])[0] == 200

    # Clicks leave nothing behind in the upload folder (Gradio's File would leave an empty
    # file per photo per click), and a re-render with an exposure of NaN writes nothing.
    client.connect()
    _, paths = client.upload([(p.name, p.read_bytes()) for p in photos])
    for _ in range(2):
        assert "Merged" in _status(client.call("run_merge", _merge_args(paths, ev)))
    assert [p.name for p in uploads.iterdir() if p.is_file()] == []
    before = sorted(page.sessions.root.rglob("*.png"))
    rerender = client.call("rerender_1", [None, float("nan"), "reinhard"])
    assert rerender["success"] and sorted(page.sessions.root.rglob("*.png")) == before
    client.disconnect()


@pytest.mark.slow
def test_the_page_leaves_no_gradio_folder_in_the_system_temporary_folder(tmp_path):
    pytest.importorskip("gradio")
    script = ("from hdr_gan_tf.cli.app import start\n"
              "from tests.helpers import free_port\n"
              "page, stop = start(object(), port=free_port(), block=False)\n"
              "stop()\n")
    temp = tmp_path / "system_temp"
    temp.mkdir()
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=REPO, env=dict(os.environ, TMPDIR=str(temp)), timeout=300)
    assert result.returncode == 0, result.stderr
    assert list(temp.iterdir()) == [], list(temp.iterdir())


@pytest.mark.slow
def test_a_client_cannot_fill_the_disk_around_the_bounds(served_page, bracket):
    """No heartbeat (a script), many files in one request, uploads side by side, a length that
    lies, the routes the page does not use; and a merge under way when the page stops."""
    page, merger, port = served_page
    photos, ev = bracket
    uploads = Path(page.GRADIO_CACHE)
    script = PageClient(port)  # never opens a heartbeat: it ends a grace after its last event
    _, paths = script.upload([(p.name, p.read_bytes()) for p in photos])
    assert "Merged" in _status(script.call("run_merge", _merge_args(paths, ev)))
    assert script.session in page.sessions.active()
    wait_for(lambda: script.session not in page.sessions.active(), "the script's end",
             timeout=60)
    assert not any(Path(p).exists() for p in paths)
    assert not any(page.sessions.root.iterdir())

    many = [(f"{n}.tif", bytes([n]) * 10) for n in range(page.sessions.max_pending_files + 1)]
    status, text = script.upload(many)
    assert status == 429 and "at once" in text
    assert not [p for p in uploads.rglob("*") if p.is_file()]  # refused and removed
    limit = page.sessions.max_pending_bytes
    page.sessions.max_pending_bytes = 10_000
    try:
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda n: script.upload([(f"p{n}.tif", b"x" * 6000)])[0],
                                    range(4)))
        assert sorted(answers).count(200) == 1 and set(answers) == {200, 429}, answers
    finally:
        page.sessions.max_pending_bytes = limit
    chunked = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    chunked.putrequest("POST", "/gradio_api/upload")
    chunked.putheader("Content-Type", "multipart/form-data; boundary=x")
    chunked.putheader("Content-Length", "10")
    chunked.putheader("Transfer-Encoding", "chunked")
    chunked.endheaders()
    chunked.send(b"0\r\n\r\n")
    assert chunked.getresponse().status == 411
    recording = urllib.request.Request(f"http://127.0.0.1:{port}/gradio_api/process_recording",
                                       data=b"x" * 1000, method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(recording, timeout=30)
    assert refused.value.code == 403
    forged = [script.upload([(f"f{n}.tif", bytes([n]))],
                            headers={"X-Forwarded-For": f"10.0.0.{n}"})[0]
              for n in range(page.sessions.max_pending_files + 1)]
    assert forged[-1] == 429 and forged[:-1] == [200] * page.sessions.max_pending_files


@pytest.mark.slow
def test_a_tab_keeps_its_last_merges_and_a_few_renderings(served_page, bracket):
    page, merger, port = served_page
    photos, ev = bracket
    tab, paths = _tab_with(port, photos)
    for _ in range(3):
        assert "Merged" in _status(tab.call("run_merge", _merge_args(paths, ev)))
    for exposure in np.arange(-2, 2, 0.01):  # a raw client's finer steps than the slider's
        assert tab.call("rerender_1", [None, float(exposure), "reinhard"])["success"]
    merges = sorted(p for p in page.sessions.root.glob("*/merge-*"))
    assert len(merges) == 2, merges
    views = list(merges[-1].glob("views/*.png"))
    assert 0 < len(views) <= 4, views
    assert all(float(v.stem.split("_")[1][:-2]) % 0.25 == 0 for v in views)
    tab.disconnect()


@pytest.mark.slow
def test_stopping_the_page_during_a_merge_leaves_nothing(small_log_dir, bracket):
    pytest.importorskip("gradio")
    from hdr_gan_tf.cli.app import start

    photos, ev = bracket
    merger, port = _merger(small_log_dir), free_port()
    page, stop = start(merger, port=port, block=False)
    folder = page.sessions.root.parent
    started, release = _hold_merges(merger)
    tab, paths = _tab_with(port, photos)
    # The click's answer never comes (the page stops): its thread is left to the process's end.
    threading.Thread(target=lambda: tab.call("run_merge", _merge_args(paths, ev), timeout=30),
                     daemon=True).start()
    assert started.wait(60)
    stopping = threading.Thread(target=stop)
    stopping.start()
    time.sleep(1)
    release.set()  # the merge ends after the stop began
    stopping.join(120)
    with merger.idle():  # the merge is over: whatever it would write, it has written
        assert not stopping.is_alive() and not folder.exists()
