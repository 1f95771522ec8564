"""The files a merge writes: the HDR file(s), the preview PNG, the sidecar JSON and the panel.

`hdr-gan-infer` and the web page (`hdr_gan_tf.web_page`) both write a merge through
`merge_and_write`, so the page's downloads are the very files the program writes for the same
photos and options.
"""

import contextlib
import time
import typing
from pathlib import Path

from hdr_gan_tf.formats import FORMATS, band_writer, format_of
from hdr_gan_tf.hdr_photos import DEFAULT_HEADROOM, Rendering, white_of
from hdr_gan_tf.settings import ConfigError


class Written(typing.NamedTuple):
    """What `merge_and_write` wrote, and the preview's HDR image for a caller that shows it."""
    files: list  # every file written: HDR files, the preview, the sidecar (the panel)
    preview_hdr: typing.Any  # the result reduced to the preview's size (None: display-referred)
    factor: int  # the preview's reduction: each side divided by it


def check_fusion_options(method, tile=0, exr=False, formats=()):
    """ConfigError naming `exr`, `formats` or `tile` when `method` is display-referred (Mertens'
    fusion), which writes no HDR file, only the preview (made at the preview's size)."""
    from hdr_gan_tf.methods import METHODS

    for field, value in (("exr", exr), ("formats", list(formats)), ("tile", tile)):
        if METHODS[method].display_referred and value:
            raise ConfigError(f"the {method} method makes a picture to look at and writes no "
                              f"HDR file, only the preview (made at the preview's size); leave "
                              f"{{{field}}} out", field=field, mentions=[field])


def streams(tile):
    """Whether a merge is written band by band: whenever it is tiled and its merger streams.
    Formats with a band writer take each band as it comes; the others (a float TIFF) gather the
    image, and the HDR photos a compact copy of it, and write when the merge ends."""
    return bool(tile)


def hdr_outputs(output, exr=False, formats=()):
    """The files a merge to `output` writes: `output`, and beside it (its name with their
    suffixes) one per format named in `formats` (`formats.check_formats`); `exr` adds an
    OpenEXR copy unless there is one already."""
    output = Path(output)
    names = list(formats)
    if exr and "exr" not in names and format_of(output).name != "exr":
        names.append("exr")
    return [output] + [output.with_suffix(FORMATS[name].suffix) for name in names]


def sidecar_path(output):
    """The JSON record written beside a merge to `output`: its name with `.json`."""
    return Path(output).with_suffix(".json")


def merge_and_write(merge, bracket, output, preview, exr=False, tonemap=None, log=print,
                    model=None, align="none", panel=False, program="hdr-gan-infer",
                    decided=None, plan=None, formats=(), headroom=DEFAULT_HEADROOM):
    """Merges a loaded bracket (`hdr_gan_tf.photos.load_bracket`) and writes the HDR file(s),
    the preview PNG and the sidecar `sidecar_path(output)`: the photos with their EVs and where
    those came from, the reference, how each photo maps onto it (`align`, one of
    `alignment.ALIGN_MODES`), the merge (`model`, by default the merger's `description`; its
    options) and the time taken. `panel`: also `panel_path(output)`, the reference photo and
    the previews without and with alignment side by side (the one without merged from a copy
    reduced to the preview's size).

    A tiled merge writes each band of rows to the `.hdr` / `.exr` file(s) as soon as it is
    final, so neither the photos (pass them spooled) nor the result is ever held whole. The
    preview is made from a copy reduced to at most `display.PREVIEW_MAX_PIXELS`. `program`
    names the writer in the sidecar, which lists every file written with its size and SHA-256
    (what `--overwrite` later asks, `outputs.check_outputs`). The files are replaced as one set
    (`outputs.output_set`): if any write fails, none of the earlier ones changes. `decided`
    and `plan`: the merge's options and `memory.TilePlan` for this image where the caller
    decided them already (`merge.plan`; it loaded the photos accordingly, spooled or not);
    else they are decided here. `formats`: more formats written beside `output`
    (`hdr_outputs`); the HDR photos among them show the radiance the reference photo records as
    white as white, with at most `headroom` stops above it (`hdr_photos.Rendering`). Returns
    `Written`.
    """
    from hdr_gan_tf.display import DEFAULT_TONEMAPPER
    from hdr_gan_tf.outputs import output_set

    tonemap = tonemap or DEFAULT_TONEMAPPER
    with output_set() as staged:
        return _merge_and_write(merge, bracket, output, preview, exr, tonemap, log, model,
                                align, panel, program, staged, decided, plan, formats,
                                headroom)


def _merge_and_write(merge, bracket, output, preview, exr, tonemap, log, model, align, panel,
                     program, staged, decided, plan, formats, headroom):
    """`merge_and_write`'s work, its files staged in `staged` (an `outputs.OutputSet`)."""
    import dataclasses
    import json

    from hdr_gan_tf import __version__
    from hdr_gan_tf.display import PreviewImage, tonemap_for_display
    from hdr_gan_tf.image_io import write_ldr
    from hdr_gan_tf.outputs import fingerprint, write_text

    from hdr_gan_tf.alignment import align_bracket

    ev = bracket.ev
    start = time.perf_counter()
    height, width = bracket.ldrs.shape[1:3]
    if decided is None:
        decided, plan = merge.plan(height, width)
        if plan:
            log(f"Tiles: {plan.reason}")
    ldrs, alignments = align_bracket(bracket.ldrs, ev, align, log)
    tile = decided.tile
    log(f"Merging {width}x{height} photos at EV {ev.tolist()}"
        + (f" in {tile}-pixel tiles" if tile else ""))
    progress = progress_printer(log)
    reduced = PreviewImage(height, width)
    paths = hdr_outputs(output, exr, formats)
    rendering = Rendering(white_of(ev), headroom)
    if merge.display_referred:
        # A fused picture, not radiance: made at the preview's size, written as the preview.
        from hdr_gan_tf.alignment import reduced_copy

        small, _ = reduced_copy(ldrs, factor=reduced.factor)
        shown = merge(small, ev, decided=decided)["main"]
        paths = []
        log(f"{merge.description}: a picture to look at, so no HDR file is written, only the "
            f"preview")
    elif merge.streams and streams(tile):
        with contextlib.ExitStack() as stack:
            writers = [stack.enter_context(band_writer(p, height, width, rendering))
                       for p in paths]
            for _, rows in merge.bands(ldrs, ev, progress, wanted=["main"], decided=decided):
                for write in writers:
                    write(rows["main"])
                reduced.add(rows["main"])
    else:
        if hasattr(ldrs, "rows"):
            ldrs = ldrs.rows(0, height)
        hdr = merge(ldrs, ev, progress, wanted=["main"], decided=decided)["main"]
        for path in paths:
            format_of(path).write(path, hdr, rendering)
        reduced.add(hdr)
        del hdr
    preview_hdr = reduced.image() if paths else None
    if paths:
        shown = tonemap_for_display(preview_hdr, tonemap)
    write_ldr(preview, shown)
    images = paths + [Path(preview)]
    if panel:
        write_ldr(panel_path(output), _panel(merge, bracket, shown, reduced.factor, tonemap,
                                             align))
        images.append(panel_path(output))
    record = {
        "program": program, "version": __version__,
        "photos": sorted(
            [{"path": str(photo), "ev": float(value), "role": role, **found.record()}
             for photo, value, role, found in zip(bracket.photos, ev,
                                                  ("short", "reference", "long"), alignments)]
            + [{"path": str(photo), "ev": value, "role": "unused"}
               for photo, value in bracket.unused], key=lambda p: p["ev"]),
        "ev_source": bracket.ev_source, "reference": str(bracket.photos[1]),
        "chosen_by": bracket.chosen_by,
        "merged_by": model or merge.description,
        "options": dataclasses.asdict(decided), "size": [width, height],
        **({"tile_plan": plan.reason} if plan else {}),
        "outputs": [str(p) for p in paths], "preview": str(preview),
        # How each HDR photo shows the radiance: white, headroom, quality, its SDR base.
        **({"renderings": rendering.chosen} if rendering.chosen else {}),
        # What this merge wrote, as it wrote it: `--overwrite` replaces only files listed here.
        "files": [fingerprint(p, staged.temporary(p), sidecar_path(output)) for p in images],
        "seconds": round(time.perf_counter() - start, 3)}
    write_text(sidecar_path(output), json.dumps(record, indent=2) + "\n")
    written = paths + [preview, sidecar_path(output)] + ([panel_path(output)] if panel else [])
    log(f"Wrote {', '.join(map(str, written))}")
    return Written(written, preview_hdr, reduced.factor)


def _panel(merge, bracket, shown, factor, tonemap, align):
    """The reference photo, the merge without alignment and the preview `shown` (with it), each
    reduced by `factor` and labelled, side by side."""
    import cv2
    import numpy as np

    from hdr_gan_tf.alignment import reduced_copy
    from hdr_gan_tf.display import label, tonemap_for_display

    small, _ = reduced_copy(bracket.ldrs, factor=factor)
    merged = merge(small, bracket.ev)["main"]
    unaligned = merged if merge.display_referred else tonemap_for_display(
        merged, tonemap)
    size = (shown.shape[1], shown.shape[0])
    tiles = [(small[1], "reference photo"), (unaligned, "align: none"),
             (shown, f"align: {align}")]
    return np.concatenate([label(cv2.resize(image, size, interpolation=cv2.INTER_AREA), text)
                           for image, text in tiles], axis=1)


def progress_printer(log=print):
    """`progress(done, total)` that logs the tile count, the rate and the time left."""
    start = time.perf_counter()

    def progress(done, total):
        elapsed = time.perf_counter() - start
        left = elapsed / done * (total - done)
        log(f"  tile {done}/{total}  {elapsed / done:.2f} s/tile  {left / 60:.1f} min left")

    return progress


def panel_path(output):
    """Where `--panel` puts the side-by-side picture of a merge: `<output stem>_panel.png`."""
    output = Path(output)
    return output.with_name(f"{output.stem}_panel.png")
