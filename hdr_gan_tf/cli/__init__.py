"""The command-line programs, one module each (`python -m hdr_gan_tf.cli.<program>`).

| module | console script |
| --- | --- |
| `train` | `hdr-gan-train` |
| `evaluate` | `hdr-gan-evaluate` |
| `infer` | `hdr-gan-infer` |
| `app` | `hdr-gan-app` (the web page) |
| `export` | `hdr-gan-export` |
| `convert_tf1` | `hdr-gan-convert-tf1` |
| `synthesize` | `hdr-gan-synth` |

Flags are defined only here, and only when a program runs (`define_flags`), so any of these
modules can be imported next to another. Everything they do lives in the library modules, whose
errors name settings; `common` words them as flags.
"""

import os

# Whether the user chose TensorFlow's C++ log level; if not, informational lines are hidden
# (read when TensorFlow loads) and `common.start_tensorflow` holds back its start-up chatter.
USER_LOG_LEVEL = "TF_CPP_MIN_LOG_LEVEL" in os.environ
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
