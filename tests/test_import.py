"""`%load_ext` must be instant: nothing heavy is imported in the foreground (what it
imports is the machine-independent proof; how long it takes is a benchmark's figure)."""

import subprocess
import sys

CODE = """
import sys
from IPython.testing.globalipapp import start_ipython
ip = start_ipython()
ip.run_line_magic("load_ext", "chatterbox_nb")
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
