"""`%load_ext` must be instant: nothing heavy is imported in the foreground."""

import subprocess
import sys

CODE = """
import sys, time
start = time.perf_counter()
from IPython.testing.globalipapp import start_ipython
ip = start_ipython()
t0 = time.perf_counter()
ip.run_line_magic("load_ext", "chatterbox_nb")
took = time.perf_counter() - t0
import chatterbox_nb
heavy = sorted(m for m in ("torch", "chatterbox", "transformers", "ipywidgets") if m in sys.modules)
print(",".join(heavy) or "none", "chatterbox" in ip.magics_manager.magics["line"])
"""


def test_load_ext_imports_nothing_heavy():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["none", "True"]


def test_lazy_api_attributes():
    code = "import sys, chatterbox_nb as c; c.say; c.Utterance; print('torch' in sys.modules, callable(c.say))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True"]
