"""Loads deltacheck's pytest plugin (tests/harness/plugin.py) and pins threads.

Thread counts are pinned before any framework is imported: on a 2-core machine,
BLAS and XLA thread pools fight each other (torch runs several times slower beside
jax in one process), and one thread per process is the fastest configuration;
use ``pytest -n auto`` (pytest-xdist) to use more cores.
"""

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
# XLA reads flags up to the first token without "--" and ignores the rest silently, so
# only real XLA flags go here (intra_op_parallelism_threads is a TensorFlow option).
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")
# jax takes 75% of a GPU's memory at start by default; pytest-xdist workers share the card,
# so each allocates as it goes instead.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

pytest_plugins = ("harness.plugin", "harness.report_plugin")
