"""hdr-gan-app: a web page on this machine for merging brackets (`hdr_gan_tf.web_page`).

Example:
  hdr-gan-app --checkpoint=runs/paper          # then open http://127.0.0.1:7860

Upload a bracket, merge it, look at the preview (tonemapper and exposure change without another
merge), download the `.hdr`, `.exr`, preview and sidecar that `hdr-gan-infer` would write. The
page listens on 127.0.0.1 only unless `--host` says otherwise, makes no public link, sends no
usage statistics and fetches nothing from elsewhere. Uploads and merges live in a temporary
folder: a session's files are removed once its browser tab has been gone for
`--session_grace` seconds (a tab that reconnects keeps them), uploads no tab uses after
`--upload_ttl` seconds, and everything when the program stops. Needs the `app` extra: `pip install -e .[app]`.
"""

import contextlib
import ipaddress
import os
import tempfile
from pathlib import Path

from absl import flags

from hdr_gan_tf.cli.common import (define_checkpoint_flag, define_max_pixels_flag, guarded,
                                   run_program, say)

from hdr_gan_tf.page_sessions import GRACE_S, UPLOAD_TTL_S

FLAGS = flags.FLAGS
# Uploads larger than this are refused by the page (RAW photos of 100 megapixels fit).
MAX_FILE_MB = 300


def define_flags():
    define_checkpoint_flag(required=False)
    flags.DEFINE_string("saved_model", None, "An exported SavedModel folder (hdr-gan-export) "
                        "instead of --checkpoint.")
    flags.DEFINE_string("host", "127.0.0.1", "Address to listen on. Anything but a loopback "
                        "address lets other machines use the page (and this machine's CPU).")
    flags.DEFINE_integer("port", 7860, "Port to listen on.", lower_bound=1, upper_bound=65535)
    flags.DEFINE_integer("max_file_mb", MAX_FILE_MB, "Largest upload, in megabytes.",
                         lower_bound=1)
    define_max_pixels_flag()
    flags.DEFINE_float("session_grace", GRACE_S, "Seconds a browser tab's uploads and merges "
                       "are kept after its connection is lost (a tab that reconnects within "
                       "them finds everything).", lower_bound=0)
    flags.DEFINE_float("upload_ttl", UPLOAD_TTL_S, "Seconds an upload that no merge or tab "
                       "uses is kept.", lower_bound=1)


GRADIO_SETTINGS = (("GRADIO_ANALYTICS_ENABLED", "False"), ("HF_HUB_OFFLINE", "1"),
                   ("HF_HUB_DISABLE_TELEMETRY", "1"), ("GRADIO_SSR_MODE", "False"))


def check_gradio():
    """ValueError naming the extra to install if Gradio is missing (without importing it:
    Gradio must first be told where its temporary folder is, `start`)."""
    import importlib.util

    if importlib.util.find_spec("gradio") is None:
        raise ValueError("the web page needs Gradio: pip install -e .[app]")


def is_loopback(host):
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def start(merger, host="127.0.0.1", port=7860, max_file_mb=MAX_FILE_MB, block=True,
          grace=GRACE_S, upload_ttl=UPLOAD_TTL_S):
    """Serves the page of `merger` (a `web_page.BracketMerger`) on `host:port`; with `block`,
    until Ctrl-C, then removes every upload and merge. Without, returns `(page, stop)`: the
    running `gradio.Blocks` and a function that stops it and removes the files. `grace` and
    `upload_ttl`: as `page_sessions.Sessions` takes them."""
    check_gradio()
    root = tempfile.TemporaryDirectory(prefix="hdr-gan-app-")
    before = os.environ.get("GRADIO_TEMP_DIR")
    # Gradio reads it when it is first imported and when the page and its server are made:
    # uploads, and anything else it writes, go to our folder.
    os.environ.update(GRADIO_SETTINGS)
    os.environ["GRADIO_TEMP_DIR"] = os.path.join(root.name, "uploads")
    import gradio as gr
    from gradio.data_classes import _StaticFiles
    from starlette.middleware import Middleware

    from hdr_gan_tf.page_sessions import PageTraffic, Sessions
    from hdr_gan_tf.photos import MAX_PHOTOS
    from hdr_gan_tf.web_page import build_page

    sessions = Sessions(Path(root.name) / "sessions", os.environ["GRADIO_TEMP_DIR"],
                        grace=grace, upload_ttl=upload_ttl,
                        max_pending_bytes=MAX_PHOTOS * max_file_mb * 2 ** 20)
    # The merges are served from the sessions' own folders (random names), not copied into
    # Gradio's cache, so that a session's end removes every file it was shown.
    gr.set_static_paths([sessions.root])
    page = build_page(merger, sessions)
    page.sessions = sessions

    def stop():
        page.close()
        sessions.stop()
        with contextlib.suppress(ValueError):
            _StaticFiles.all_paths.remove(sessions.root.resolve())
        # A merge under way would write into the folder again: its end is awaited.
        with getattr(merger, "idle", contextlib.nullcontext)():
            root.cleanup()
        os.environ.pop("GRADIO_TEMP_DIR", None)
        if before is not None:
            os.environ["GRADIO_TEMP_DIR"] = before

    try:
        sessions.start()
        page.launch(server_name=host, server_port=port, share=False, inbrowser=False,
                    prevent_thread_lock=not block, max_file_size=f"{max_file_mb}mb",
                    show_error=False, quiet=True, footer_links=[], ssr_mode=False,
                    mcp_server=False, theme=gr.themes.Base(),
                    app_kwargs={"middleware": [Middleware(PageTraffic, sessions=sessions)]})
    except BaseException:
        stop()
        raise
    if block:
        stop()
        return None
    return page, stop


@guarded
def main(argv):
    del argv
    from hdr_gan_tf.web_page import BracketMerger

    check_gradio()
    if not is_loopback(FLAGS.host):
        say(f"warning: --host={FLAGS.host} lets other machines reach the page; anyone who can "
            f"reach it can merge photos with this machine's CPU and read what it merged")
    merger = BracketMerger(FLAGS.checkpoint, FLAGS.saved_model, max_pixels=FLAGS.max_pixels,
                           log=say)
    merger.merger()  # the model is loaded before the page opens: a bad one stops here
    say(f"Open http://{FLAGS.host}:{FLAGS.port} in a browser (Ctrl-C stops the page)")
    start(merger, FLAGS.host, FLAGS.port, FLAGS.max_file_mb, grace=FLAGS.session_grace,
          upload_ttl=FLAGS.upload_ttl)


def run(argv=None):
    """The program: from its console script, or (`argv`) in this process."""
    return run_program(define_flags, main, argv)


if __name__ == "__main__":
    run()
