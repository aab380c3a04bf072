"""What runs inside a trial, on a Ray worker: data, model, metrics and the HF Trainer loop.

This package never imports `search/`: the boundary is a process boundary.
"""

import os

# `datasets` imports JAX and TensorFlow as it loads, wherever they are installed (GPU images
# often ship JAX), for output formats nothing here asks for: seconds in every Ray worker, every
# trial. Set before anything imports datasets; a value already in the environment wins.
os.environ.setdefault("USE_JAX", "0")
os.environ.setdefault("USE_TF", "0")
