"""The web page's cost (docs/web_page.md): what it adds to hdr-gan-infer.

Prints, on this machine's CPU, for a 1500x1000 hand-held bracket (16-bit TIFFs):
- hdr-gan-infer --exr (the files the page writes) in a fresh process: the whole command, and
  the merge itself (its sidecar's `seconds`);
- the page (hdr-gan-app's, in this process, the model loaded first as the program does) in
  headless Chromium: its first paint and the time until it can be used, the upload, the time
  from the click until the result is shown and the merge itself (its sidecar's `seconds`); and
  whether its `.hdr` equals the program's.
With --screenshot, saves a picture of the page after the merge.

    python experiments/bench_app.py [--checkpoint=runs/demo] [--screenshot=docs/web_page.png]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "experiments")]

from bench_align import cpu_name, write_bracket  # noqa: E402

EV = "-2,0,2"


def infer_times(checkpoint, photos, output):
    """`(whole command, merge)` seconds of hdr-gan-infer in a fresh process."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "hdr_gan_tf.cli.infer", f"--checkpoint={checkpoint}",
                    f"--inputs={','.join(map(str, photos))}", f"--exposure_bias={EV}",
                    f"--output={output}", "--exr"], check=True, capture_output=True, cwd=REPO)
    whole = time.perf_counter() - start
    return whole, json.loads(Path(output).with_suffix(".json").read_text())["seconds"]


def browser_cpu_seconds():
    """CPU seconds used so far by every Chromium process (from /proc)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if "chrom" in (stat.parent / "comm").read_text():
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            continue
    return total


def page_times(checkpoint, photos, screenshot):
    """Seconds to the page's first paint and to its Merge button, of the upload and of the
    merge (click to result), and the `.hdr` it offers for download."""
    from selenium.webdriver.common.by import By

    from hdr_gan_tf.cli.app import start
    from hdr_gan_tf.web_page import BracketMerger
    from tests.helpers import free_port, headless_chromium, wait_for

    def wait(condition):  # seldom: the browser and its driver take CPU from the merge
        return wait_for(condition, "the page", timeout=600, every=0.5)

    merger = BracketMerger(checkpoint, log=lambda line: None)
    merger.merger()
    port = free_port()
    _, stop = start(merger, port=port, block=False)
    browser = headless_chromium(1400, 1750)
    try:
        begin = time.perf_counter()
        browser.get(f"http://127.0.0.1:{port}/")
        wait(lambda: browser.find_elements(By.ID, "merge"))
        usable = time.perf_counter() - begin
        paint = browser.execute_script(
            "return performance.getEntriesByName('first-contentful-paint')[0].startTime") / 1000
        begin = time.perf_counter()
        browser.find_element(By.CSS_SELECTOR, "#photos input[type=file]").send_keys(
            "\n".join(map(str, photos)))
        wait(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#photos tr.file")) == 3)
        wait(lambda: not browser.find_elements(By.CSS_SELECTOR, "#photos .uploading"))
        upload = time.perf_counter() - begin
        browser.find_element(By.CSS_SELECTOR, "#exposures textarea").send_keys(EV)
        begin, cpu = time.perf_counter(), browser_cpu_seconds()
        browser.find_element(By.ID, "merge").click()
        wait(lambda: "Merged" in browser.find_element(By.ID, "status").text)
        wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#downloads a"))
        merge = time.perf_counter() - begin
        print(f"the browser took {browser_cpu_seconds() - cpu:.1f} CPU-s during the merge",
              flush=True)
        if screenshot:
            browser.save_screenshot(str(screenshot))
        files = {}
        for a in browser.find_elements(By.CSS_SELECTOR, "#downloads a"):
            with urllib.request.urlopen(a.get_attribute("href")) as response:
                files[Path(a.get_attribute("href")).suffix] = response.read()
    finally:
        browser.quit()
        stop()
    return paint, usable, upload, merge, json.loads(files[".json"])["seconds"], files[".hdr"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=str(REPO / "runs" / "demo"))
    parser.add_argument("--screenshot", help="PNG of the page after the merge")
    args = parser.parse_args()
    print(f"CPU: {cpu_name()}", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        write_bracket(folder, 1000, 1500)
        photos = [Path(folder) / f"{n}.tif" for n in ("short", "mid", "long")]
        whole, merged = infer_times(args.checkpoint, photos, Path(folder) / "cli.hdr")
        print(f"hdr-gan-infer, fresh process: {whole:.2f} s in all, merge {merged:.2f} s",
              flush=True)
        paint, usable, upload, merge, merged, hdr = page_times(args.checkpoint, photos,
                                                               args.screenshot)
        print(f"page: first paint {paint:.2f} s, usable {usable:.2f} s, upload {upload:.2f} s, "
              f"click to result {merge:.2f} s, merge {merged:.2f} s", flush=True)
        same = hdr == (Path(folder) / "cli.hdr").read_bytes()
        print(f"page's .hdr equals hdr-gan-infer's: {same}")


if __name__ == "__main__":
    main()
