"""The local web page: drop a bracket on it, merge it, look at the result, download the files.

`BracketMerger` does the work and knows nothing of the page: each merge writes, into a folder
of its own, the very files `hdr-gan-infer` writes for the same photos and options
(`merge_files.merge_and_write`). `build_page` lays the Gradio page out around it
(`hdr-gan-app` serves it). The page takes no file-system path from the browser, only uploaded
files; each browser session's merges go to a folder of its own, removed when the session ends.
"""

import logging
import math
import re
import threading
import typing
from pathlib import Path

import numpy as np

from hdr_gan_tf.alignment import ALIGN_MODES, check_align, reduced_copy
from hdr_gan_tf.display import (DEFAULT_TONEMAPPER, TONEMAPPERS, check_tonemapper,
                                tonemap_for_display)
from hdr_gan_tf.formats import FORMATS
from hdr_gan_tf.hdr_photos import MIN_SIDE as MIN_HDR_PHOTO_SIDE
from hdr_gan_tf.image_io import MAX_PIXELS, write_ldr
from hdr_gan_tf.merge import MERGE_PRECISIONS, InferenceOptions, tile_setting
from hdr_gan_tf.methods import DEFAULT_METHOD, METHODS, check_method, load_merger
from hdr_gan_tf.merge_files import check_fusion_options, merge_and_write, streams
from hdr_gan_tf.photos import ROLES, check_bracket_files, exposures_for, load_bracket
from hdr_gan_tf.settings import ConfigError, worded

# The preview's exposure slider: stops either way, applied in linear light to the tonemapped
# preview where the tonemapper normalises the image (scaling the HDR before it would change
# nothing), else to the HDR image.
EXPOSURE_STOPS = 4.0
EXPOSURE_STEP = 0.25
# Renderings of other exposures and tonemappers kept per merge (the newest).
KEPT_VIEWS = 4
DISPLAY_GAMMA = 2.2
# A merge's files in its folder: `merged.hdr`, those of `PAGE_FORMATS`, `.png` (the preview),
# `.json`.
STEM = "merged"
# Written beside `merged.hdr`: OpenEXR, and the HDR photos that HDR screens show (the page shows
# the Ultra HDR JPEG).
PAGE_FORMATS = ("exr", "jpg", "avif")
# Smaller tiles would need less than hdr-gan-infer's overlap and take very many tiles.
MIN_TILE = 128
# Mergers kept loaded (a network restored per precision and tile size): the most recent ones.
KEPT_MERGERS = 4
# The classical merge shown beside the network's when asked for.
CLASSICAL = "debevec"
# The settings the page has a field for, by the field's name (the others are hdr-gan-app's flags).
PAGE_LABELS = {"exposure_bias": "the EV box", "tile": "the tile size",
               "precision": "the precision", "method": "the merge method",
               "align": "the alignment", "tonemap": "the tonemapper"}


class PageMerge(typing.NamedTuple):
    """One merge as the page shows it."""
    folder: Path  # where its files are
    downloads: list  # `merged.hdr`, `.exr`, `.jpg`, `.avif`, `.png`, `.json` (those written)
    preview: Path  # the preview PNG, as written
    preview_hdr: typing.Any  # `.npy` of the result at the preview's size (None: Mertens')
    tonemap: str  # the preview's tonemapper
    pictures: list  # `(PNG, caption)`: the merged photos, then the classical merge if asked for
    log: list  # the lines the merge logged
    hdr_photo: typing.Any = None  # `merged.jpg`, the Ultra HDR photo (None: Mertens')


class BracketMerger:
    """Merges brackets as `hdr-gan-infer` does, one at a time, with one model loaded once.

    Args:
      checkpoint: a training log dir or checkpoint prefix; or
      saved_model: an exported SavedModel folder (exactly one of the two).
      max_pixels: the largest photo (width x height) read; larger ones are refused from their
        headers, before they are decoded.
      log: where the merges' progress lines go besides the page (the console).
    """

    def __init__(self, checkpoint=None, saved_model=None, max_pixels=MAX_PIXELS, log=print):
        check_method(DEFAULT_METHOD, checkpoint, saved_model)
        self.checkpoint, self.saved_model = checkpoint, saved_model
        self.max_pixels, self.log = max_pixels, log
        self.merges = 0  # merges done; re-rendering a preview is not one
        self._mergers = {}
        self._lock = threading.RLock()  # one merge at a time: the model's memory, the cores

    def idle(self):
        """A context in which no merge runs (it waits for the one under way to end)."""
        return self._lock

    def merger(self, method=DEFAULT_METHOD, options=InferenceOptions()):
        """The `Merger` of `method` with `options` (`methods.load_merger`), loaded on
        first use; the `KEPT_MERGERS` used last are kept."""
        key = (method, options)
        with self._lock:
            if key not in self._mergers:
                loaded = load_merger(options, method=method, log=self.log, **self._model(method))
                while len(self._mergers) >= KEPT_MERGERS:
                    del self._mergers[next(iter(self._mergers))]
                self._mergers[key] = loaded
            self._mergers[key] = self._mergers.pop(key)  # the most recent last
            return self._mergers[key]

    def _model(self, method):
        """The model `method` merges with: the page's for the network, none for the others."""
        if method not in METHODS or not METHODS[method].needs_model:
            return {}  # an unknown method is refused by `check_method`, naming the setting
        return {"checkpoint": self.checkpoint, "saved_model": self.saved_model}

    def merge(self, photos, exposures, folder, method=DEFAULT_METHOD, align="auto",
              precision="float32", tile="auto", tonemap=DEFAULT_TONEMAPPER, compare=False,
              progress=None):
        """Merges `photos` (3 to 9 paths) into the new folder `folder`, writing what
        `hdr-gan-infer --formats=exr,jpg,avif` writes for them; returns a `PageMerge`.

        Args:
          exposures: the EV of each photo in the order of `photos`, as text ("-2, 0, 2"); empty:
            from their EXIF ExposureTime.
          method, align, precision, tile, tonemap: as `hdr-gan-infer`'s flags of these names
            (`tile`: "auto", 0 or a side in pixels).
          compare: also merge with Debevec's classical method (into `folder/debevec/`).
          progress: called with each line the merge logs.

        Raises:
          ValueError (ConfigError names its field) or OSError for anything the photos or
          options make impossible, before the model runs where the headers tell.
        """
        photos = [str(p) for p in photos]
        check_method(method, **self._model(method))
        check_align(align)
        check_tonemapper(tonemap)
        side, auto = tile_setting(tile)
        if 0 < side < MIN_TILE:
            raise ConfigError(f"auto, 0 (the whole image) or at least {MIN_TILE} pixels, not "
                              f"{tile}", field="tile")
        options = InferenceOptions(tile=side, precision=precision, auto_tile=auto)
        check_fusion_options(method, options.tile)
        given = [v for v in re.split(r"[,;\s]+", exposures or "") if v]
        width, height = check_bracket_files(photos, self.max_pixels)
        exposures_for(photos, given)  # missing EXIF times are named before anything is read
        lines = []

        def log(line):
            lines.append(line)
            self.log(line)
            if progress:
                progress(line)

        with self._lock:
            merge = self.merger(method, options)
            decided, plan = merge.plan(height, width)  # before reading: spooled if tiled
            if plan:
                log(f"Tiles: {plan.reason}")
            bracket = load_bracket(photos, given, spool=streams(decided.tile),
                                   max_pixels=self.max_pixels)
            try:
                folder.mkdir()  # in its session's folder, which must still be there
                output, preview = folder / f"{STEM}.hdr", folder / f"{STEM}.png"
                # An HDR photo needs a few pixels each way; a tinier merge gets only the EXR.
                formats = () if merge.display_referred else (
                    PAGE_FORMATS if min(height, width) >= MIN_HDR_PHOTO_SIDE else ("exr",))
                written = merge_and_write(merge, bracket, output, preview, tonemap=tonemap,
                                          log=log, align=align, program="hdr-gan-app",
                                          decided=decided, plan=plan, formats=formats)
                pictures = _photo_pictures(bracket, folder, written.factor)
                preview_hdr = None
                if written.preview_hdr is not None:  # kept on disk: it goes with the session
                    preview_hdr = folder / "preview_hdr.npy"
                    np.save(preview_hdr, written.preview_hdr)
                if compare and method != CLASSICAL:
                    classical = folder / CLASSICAL / f"{STEM}.hdr"
                    classical.parent.mkdir()
                    merge_and_write(self.merger(CLASSICAL, InferenceOptions(
                                        tile=decided.tile)),
                                    bracket, classical, classical.with_suffix(".png"),
                                    tonemap=tonemap, log=log, align=align,
                                    program="hdr-gan-app")
                    pictures.append((classical.with_suffix(".png"),
                                     "Debevec's classical merge, for comparison"))
            finally:
                if hasattr(bracket.ldrs, "close"):  # a spooled bracket's temporary file
                    bracket.ldrs.close()
            self.merges += 1
        hdr_photo = output.with_suffix(FORMATS["jpg"].suffix) if "jpg" in formats else None
        return PageMerge(folder, [Path(p) for p in written.files], preview, preview_hdr,
                         tonemap, pictures, lines, hdr_photo)


def _photo_pictures(bracket, folder, factor):
    """`(PNG, caption)` of the three merged photos, each side divided by `factor` (the
    preview's)."""
    small, _ = reduced_copy(bracket.ldrs, factor=factor)
    pictures = []
    for role, photo, ev, image in zip(ROLES, bracket.photos, bracket.ev, small):
        path = folder / "photos" / f"{role}.png"
        write_ldr(path, image)
        pictures.append((path, f"{role}: {Path(photo).name} (EV {float(ev):+g})"))
    return pictures


def render_preview(merged, exposure=0.0, tonemap=None):
    """The preview of `merged` (a `PageMerge`) with another tonemapper and `exposure` stops,
    written beside it; the preview itself when neither changes. Never runs the network.

    A tonemapper that does not normalise (μ-law) takes the HDR image scaled by `2**exposure`;
    for those that do (a scaled image maps to the same picture), and for a display-referred
    picture, the exposure scales the displayed light (gamma 2.2) instead.
    """
    tonemap = tonemap or merged.tonemap
    # On the slider's steps: a client cannot make more renderings than the slider offers.
    exposure = round(check_preview_options(exposure, tonemap) / EXPOSURE_STEP) * EXPOSURE_STEP
    if exposure == 0 and tonemap == merged.tonemap:
        return merged.preview
    path = merged.folder / "views" / f"{tonemap}_{exposure:.2f}EV.png"  # no "+" in a URL
    if path.exists():
        return path
    path.parent.mkdir(exist_ok=True)  # only while the merge's folder is there
    earlier = sorted(path.parent.glob("*.png"), key=lambda p: p.stat().st_mtime)
    for old in earlier[:max(len(earlier) - (KEPT_VIEWS - 1), 0)]:
        old.unlink(missing_ok=True)  # renderings the page no longer shows
    gain = 2.0 ** exposure
    if merged.preview_hdr is None:  # Mertens' fusion: the picture itself
        from hdr_gan_tf.image_io import read_ldr

        shown = read_ldr(merged.preview) * gain ** (1 / DISPLAY_GAMMA)
    elif not TONEMAPPERS[tonemap].normalises:
        shown = tonemap_for_display(np.load(merged.preview_hdr) * gain, tonemap)
    else:
        shown = tonemap_for_display(np.load(merged.preview_hdr), tonemap) * gain ** (
            1 / DISPLAY_GAMMA)
    write_ldr(path, np.clip(shown, 0, 1))
    return path


def check_preview_options(exposure, tonemap):
    """The preview's exposure as a float; ValueError naming the slider or the tonemapper when
    either is not one the page offers."""
    check_tonemapper(tonemap)
    try:
        value = float(exposure)
    except (TypeError, ValueError):
        value = math.nan
    if not -EXPOSURE_STOPS <= value <= EXPOSURE_STOPS:  # also refuses nan
        raise ValueError(f"the preview exposure: from {-EXPOSURE_STOPS:g} to "
                         f"{EXPOSURE_STOPS:g} EV, not {exposure}")
    return value


def page_message(err, photos=()):
    """A one-paragraph message for the page from an error of the library: uploads named by
    their file names, the settings it names by what the page calls them (`page_label`)."""
    text = worded(err, page_label)
    for photo in sorted(map(str, photos), key=len, reverse=True):
        text = text.replace(photo, Path(photo).name)
    return text


def page_label(name):
    """What the page calls a setting: its field, or the flag `hdr-gan-app` was started with."""
    return PAGE_LABELS.get(name, f"hdr-gan-app --{name}")


# ------------------------------------------------------------------ the page
def build_page(merger, sessions):
    """The Gradio page (`gradio.Blocks`) around a `BracketMerger`, its merges kept in
    `sessions` (a `Sessions`)."""
    import gradio as gr

    def session_of(request):
        return request.session_hash if request else None

    def uploaded(files, request: gr.Request):
        try:
            sessions.claim(session_of(request), _paths(files))
        except ValueError as err:
            gr.Warning(page_message(err))

    def run_merge(files, exposures, method, compare, align, precision, tile, tonemap,
                  request: gr.Request, progress=gr.Progress()):
        session = session_of(request)
        progress(0, desc="Checking the photos")
        again = False
        try:
            with sessions.working(session) as disconnected:
                paths = sessions.claim(session, _paths(files))
                key = (tuple(paths), exposures, method, bool(compare), align, precision,
                       str(tile).strip().lower(), tonemap)
                merged = sessions.kept(session, key)
                again = merged is not None
                if merged is None:
                    merged = merger.merge(
                        paths, exposures, sessions.next_merge(session), method=method,
                        align=align, precision=precision, tile=tile, tonemap=tonemap,
                        compare=compare, progress=lambda line: progress(None, desc=line[:120]))
                    if disconnected():  # its tab may never see it: shown on the next click
                        sessions.keep(session, key, merged)
        except Exception as err:  # noqa: BLE001 - the page says what went wrong and goes on
            foreseen = isinstance(err, (ValueError, OSError)) or _is_tensorflow_error(err)
            if not foreseen:
                logging.getLogger(__name__).exception("merge failed")
            message = page_message(err, _paths(files)) if foreseen else (
                f"the merge failed unexpectedly ({type(err).__name__}: {err}); the console "
                f"shows the details")
            return (f"**Could not merge:** {_escape(message)}", gr.skip(), gr.skip(),
                    gr.skip(), gr.skip(), gr.skip(), gr.skip())
        heading = (f"**Merged** (merge {merger.merges} of this page)" if not again else
                   "**Merged** (this merge finished while the page was disconnected)")
        status = "\n".join([heading, ""] + [
            f"- {_escape(line.strip())}" for line in merged.log
            if not line.startswith(("Wrote", "  tile"))])
        hdr_photo = str(merged.hdr_photo) if merged.hdr_photo else None
        return (status, str(merged.preview), [(str(p), c) for p, c in merged.pictures],
                [str(p) for p in merged.downloads], merged, 0,
                gr.update(value=hdr_photo, visible=hdr_photo is not None))

    def rerender(merged, exposure, tonemap, request: gr.Request):
        if merged is None or not merged.folder.is_dir():
            return gr.skip()
        with sessions.working(session_of(request)):
            try:
                return str(render_preview(merged, exposure, tonemap))
            except ValueError as err:  # an exposure or tonemapper the page does not offer
                gr.Warning(page_message(err))
            except FileNotFoundError:  # the session's files went meanwhile
                pass
        return gr.skip()

    def end_session(request: gr.Request):
        sessions.end(session_of(request))

    # No `delete_cache`: `sessions` removes what the page's sessions held, and nothing else.
    with gr.Blocks(title="HDR-GAN: merge a bracket", analytics_enabled=False) as page:
        gr.Markdown("## HDR-GAN: merge a bracket of photos into one HDR image\n"
                    "Upload 3 to 9 photos of one scene at different exposures (TIFF, PNG, JPEG "
                    "or RAW). Exposures come from the photos' EXIF, or type one EV per photo.")
        with gr.Row():
            with gr.Column(scale=1):
                files = _photo_files(gr.File(label="Photos", file_count="multiple",
                                             elem_id="photos"))
                exposures = gr.Textbox(label="EV of each photo, in upload order (empty: EXIF)",
                                       placeholder="-2, 0, 2", elem_id="exposures")
                method = gr.Radio(list(METHODS), value=DEFAULT_METHOD, label="Merge with",
                                  elem_id="method")
                compare = gr.Checkbox(label="Also show Debevec's classical merge",
                                      elem_id="compare")
                align = gr.Radio(list(ALIGN_MODES), value="auto", label="Alignment",
                                 elem_id="align")
                precision = gr.Radio(list(MERGE_PRECISIONS), value="float32",
                                     label="Precision", elem_id="precision")
                tile = gr.Textbox("auto", elem_id="tile", max_lines=1,
                                  label=f"Tiles (auto: the whole image when the memory allows, "
                                        f"else tiles that fit; 0: the whole image; a side of "
                                        f"{MIN_TILE} pixels or more, e.g. 512)")
                button = gr.Button("Merge", variant="primary", elem_id="merge")
            with gr.Column(scale=2):
                status = gr.Markdown("Nothing merged yet.", elem_id="status")
                preview = gr.Image(label="Preview", type="filepath", format="png",
                                   interactive=False, height=520, elem_id="preview")
                with gr.Row():
                    tonemap = gr.Radio(list(TONEMAPPERS), value=DEFAULT_TONEMAPPER,
                                       label="Tonemapper", elem_id="tonemap")
                    exposure = gr.Slider(-EXPOSURE_STOPS, EXPOSURE_STOPS, value=0,
                                         step=EXPOSURE_STEP,
                                         label="Preview exposure (EV)", elem_id="exposure")
                # The browser shows the Ultra HDR JPEG as it is: in HDR where the screen and
                # the browser can, else its SDR picture.
                hdr_view = gr.Image(label="HDR photo (merged.jpg: in HDR on HDR screens)",
                                    type="filepath", interactive=False, height=520,
                                    visible=False, elem_id="hdr_photo")
                pictures = gr.Gallery(label="The photos merged (and the classical merge)",
                                      columns=4, height=300, object_fit="contain",
                                      elem_id="pictures")
                downloads = gr.File(label="Downloads", file_count="multiple",
                                    interactive=False, elem_id="downloads")
        merged = gr.State(None)
        files.upload(uploaded, files, None)
        # Progress shows on the preview, so that the status changes only when a merge ends;
        # then the preview follows the tonemapper and exposure chosen while the merge ran.
        button.click(run_merge, [files, exposures, method, compare, align, precision, tile,
                                 tonemap],
                     [status, preview, pictures, downloads, merged, exposure, hdr_view],
                     show_progress_on=[preview]).then(
                         rerender, [merged, exposure, tonemap], preview, show_progress="hidden")
        for control in (exposure, tonemap):
            control.change(rerender, [merged, exposure, tonemap], preview,
                           trigger_mode="always_last", show_progress="hidden")
        page.unload(end_session)
    return page


def _photo_files(files):
    """The `gradio.File` `files`, passing the uploads' paths to events as they are: as it
    comes, it leaves an empty temporary file in the upload folder per file per event. (Changed
    on the one component rather than by a subclass: Gradio writes a `.pyi` file beside the
    source of every subclass of its components.)"""
    from gradio.utils import NamedString

    files._process_single_file = lambda data: NamedString(data.path)
    return files


def _paths(files):
    """Paths of the uploads a `gradio.File` passes (paths, or objects naming them)."""
    return [str(getattr(f, "name", f)) for f in files or []]


def _is_tensorflow_error(err):
    import tensorflow as tf

    return isinstance(err, tf.errors.OpError)


def _escape(text):
    """`text` shown as plain text in Markdown."""
    return re.sub(r"([\\`*_{}\[\]<>()#+!|])", r"\\\1", str(text))
