"""The command-line programs, one module each (`python -m hdr_gan_tf.cli.<program>`).

| module | console script |
| --- | --- |
| `train` | `hdr-gan-train` |
| `evaluate` | `hdr-gan-evaluate` |
| `infer` | `hdr-gan-infer` |
| `export` | `hdr-gan-export` |
| `convert_tf1` | `hdr-gan-convert-tf1` |
| `synthesize` | `hdr-gan-synth` |

Flags are defined only here, and only when a program runs (`define_flags`), so any of these
modules can be imported next to another. Everything they do lives in the library modules.
"""

import os

# TensorFlow's C++ start-up chatter, unless the user asked for it; read when TensorFlow loads.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
