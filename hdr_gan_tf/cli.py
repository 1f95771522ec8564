"""Shared plumbing of the command-line programs: quiet start-up and error exits.

Every program reports unusable input (files, checkpoints, flags) as one `error: ...` line on
stderr and exit status 2, without a traceback; nothing it was writing is left behind because all
outputs are written atomically.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

EXIT_BAD_INPUT = 2


def quiet_logs():
    """Keeps TensorFlow's informational chatter off the console."""
    from absl import logging
    logging.set_verbosity(logging.WARNING)
    import cv2
    import tensorflow as tf
    tf.get_logger().setLevel("ERROR")
    # Unreadable images are reported by our own messages; OpenCV's would only repeat them.
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


def fail(message):
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(EXIT_BAD_INPUT)


def guarded(main):
    """Wraps an absl `main` so ValueError/OSError become `error: ...` and exit status 2."""
    def wrapped(argv):
        quiet_logs()
        try:
            return main(argv)
        except (ValueError, OSError) as err:
            fail(str(err))
    return wrapped


def check_output_free(path, overwrite):
    """Refuses an existing output unless `overwrite` (checked before any work starts)."""
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path}: output exists; pass --overwrite to replace it")


def say(line):
    print(line, flush=True)
