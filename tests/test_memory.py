"""The memory budget and idle unload, in a real kernel, on reduced dummy models, in
float32 and in bfloat16 (whatever `auto` picks on this machine).

The models' sizes depend on the dtype (the reduced english holds 1.02 GiB and turbo 1.36 GiB
in float32, about half in bfloat16): the budget is made from the sizes the kernel measures,
so that it fits either model but not both.
"""

from __future__ import annotations

import re
import time

import pytest

from kernel_utils import Kernel

_ok = Kernel.ok
pytestmark = pytest.mark.slow

W = "--weights dummy:reduced --device cpu"
PY = "weights='dummy:reduced', device='cpu'"


@pytest.fixture(scope="module", params=["float32", "bfloat16"])
def kernel(request):
    """A kernel whose loads use `request.param` (the tests of one dtype run in order)."""
    k = Kernel()
    _ok(k.execute(f"%load_ext chatterbox_nb\n%config Chatterbox.dtype = '{request.param}'"))
    yield k
    k.shutdown()


def _budget(kernel: Kernel) -> float:
    """GiB that hold the larger of english and turbo but not both, from their sizes in this dtype."""
    sizes = []
    for model in ("english", "turbo"):
        _ok(kernel.execute(f"%chatterbox load -m {model} {W} --warmup off --wait"))
        sizes.append(kernel.value(f"[m['memory_gib'] for m in __import__('chatterbox_nb').status().models if m['model'] == '{model}'][0]"))
        _ok(kernel.execute("%chatterbox unload --all"))
    return round(max(sizes) + min(sizes) / 2, 2)


def _models(kernel: Kernel) -> list[str]:
    return kernel.value("sorted(m.name for m in __import__('chatterbox_nb.engine.models.loader').engine.models.loader.loaded_models())")


def test_budget_unloads_the_least_recently_used_idle_model(kernel):
    budget = _budget(kernel)
    _ok(kernel.execute(f"%config Chatterbox.memory_limit = {budget}"))
    _ok(kernel.execute(f"%chatterbox load -m english {W} --warmup off --wait"))

    out = Kernel.text(_ok(kernel.execute(f"%chatterbox load -m turbo {W} --warmup off --wait")))
    lines = [line for line in out.splitlines() if "unloaded english" in line]
    assert len(lines) == 1 and f"memory budget of {budget:.2f} GiB" in lines[0], out
    assert _models(kernel) == ["turbo"]
    status = Kernel.text(_ok(kernel.execute("print(repr(__import__('chatterbox_nb').status()))")))
    turbo_gib = kernel.value("__import__('chatterbox_nb').status().models[0]['memory_gib']")
    held = re.search(rf"host (\d+\.\d+) of {budget:.2f} GiB", status)
    assert "last used" in status and "english (memory budget" in status and held, status
    assert float(held.group(1)) == pytest.approx(turbo_gib, abs=0.01)  # only turbo is held now

    # the next say of the unloaded model maps it again from the disk cache (and makes room for it)
    out = _ok(kernel.execute(f"u = %chatterbox say 'Hello.' -m english {W} --max-tokens 4 --seed 0"))
    assert kernel.value("u.timings['model_source']") == "disk-cache"
    assert "unloaded turbo" in Kernel.text(out)
    assert _models(kernel) == ["english"]


def test_a_model_generating_is_never_unloaded(kernel):
    # three sentences in a thread hold english: its first token waits until turbo is loaded
    _ok(kernel.execute(
        "import threading, chatterbox_nb as cnb\n"
        "from chatterbox_nb.engine.models import loader\nfrom chatterbox_nb.engine.generation import stopping\n"
        "said, sampling, release = [], threading.Event(), threading.Event()\n"
        "def hold(stage, n):\n"
        "    sampling.set(); release.wait(120)\n"
        "def run():\n"
        "    with stopping.watching(hold):\n"
        "        said.append(cnb.say('The first sentence is here. The second one follows it. "
        f"And the third one ends it.', model='english', {PY}, max_tokens=6, seed=1))\n"
        "th = threading.Thread(target=run)\n"
        "th.start()\n"
        "assert sampling.wait(120), 'the say never sampled a token'"
    ))
    assert kernel.value("[m.name for m in loader.loaded_models() if m.busy]") == ["english"]
    out = Kernel.text(_ok(kernel.execute(f"%chatterbox load -m turbo {W} --warmup off --wait")))
    assert "unloaded english" not in out and "the other models are in use" in out, out
    _ok(kernel.execute("release.set(); th.join(120)"))
    assert kernel.value("th.is_alive()") is False
    assert kernel.value("(said[0].timings['chunks_done'], said[0].timings['stopped'])") == (3, False)
    assert _models(kernel) == ["english", "turbo"]


def test_idle_models_are_unloaded_and_memory_returns(kernel):
    _ok(kernel.execute(
        "import gc, os, psutil\n"
        "def rss():\n"
        "    gc.collect(); return psutil.Process(os.getpid()).memory_info().rss / 2**30\n"
        "%config Chatterbox.memory_limit = None"
    ))
    before = kernel.value("rss()")
    english_gib = kernel.value("[m['memory_gib'] for m in cnb.status().models if m['model'] == 'english'][0]")
    _ok(kernel.execute("%config Chatterbox.idle_unload = 0.02"))  # 1.2 s
    deadline = time.monotonic() + 120  # the timer's event; the limit only ends a hung test
    while _models(kernel) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _models(kernel) == []
    # the weights english's say paged in are given back (RSS counts only the pages touched, about
    # half the model in either dtype: a quarter of its size in this dtype is the floor)
    assert kernel.value("rss()") < before - english_gib / 4, english_gib
    status = Kernel.text(_ok(kernel.execute("print(repr(cnb.status()))")))
    assert "idle unload after 0.02 min idle" in status and "turbo (idle 0.02 min" in status

    # the next say brings the model back from the disk cache; unload --all stops the timer
    _ok(kernel.execute(f"u = %chatterbox say 'Back again.' -m turbo {W} --max-tokens 4 --seed 0"))
    assert kernel.value("u.timings['model_source']") == "disk-cache"
    assert kernel.value("any(t.name == 'chatterbox_nb-idle-unload' for t in threading.enumerate())") is True
    _ok(kernel.execute("%chatterbox unload --all"))
    assert kernel.value("any(t.name == 'chatterbox_nb-idle-unload' for t in threading.enumerate())") is False


def test_settings_and_their_environment_variables(monkeypatch):
    from traitlets import TraitError

    from chatterbox_nb.config import Chatterbox
    from chatterbox_nb.errors import InvalidOption

    monkeypatch.setenv("CHATTERBOX_NB_MEMORY_LIMIT", "6.5")
    monkeypatch.setenv("CHATTERBOX_NB_IDLE_UNLOAD", "30")
    s = Chatterbox()
    assert (s.memory_limit, s.idle_unload) == (6.5, 30.0)
    monkeypatch.setenv("CHATTERBOX_NB_MEMORY_LIMIT", "auto")
    monkeypatch.delenv("CHATTERBOX_NB_IDLE_UNLOAD")
    s = Chatterbox()
    assert (s.memory_limit, s.idle_unload) == (None, 0.0)  # a share of the memory; never unload when idle
    with pytest.raises(TraitError, match="above 0"):
        s.memory_limit = 0
    with pytest.raises(TraitError, match="0 \\(off\\) or more"):
        s.idle_unload = -1
    monkeypatch.setenv("CHATTERBOX_NB_MEMORY_LIMIT", "lots")
    with pytest.raises(InvalidOption, match="not a number"):
        Chatterbox().memory_limit
