"""Background loading in a real kernel: the notebook never freezes, the stop button
stops only the waiting, and unload stops background work."""

from __future__ import annotations

import pytest

from kernel_utils import Kernel

_ok = Kernel.ok
pytestmark = pytest.mark.slow


def test_kernel_answers_while_a_model_loads(kernel):
    _ok(kernel.execute("%load_ext chatterbox_nb"))
    started = _ok(kernel.execute("t = %chatterbox load --weights dummy:reduced --device cpu --warmup light"))
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in started["outputs"])
    trivial = _ok(kernel.execute("print(1 + 1, t.done)"))
    assert kernel.text(trivial).split() == ["2", "False"]  # answered before the load finished
    assert kernel.value("'torch' in __import__('sys').modules") is True  # the thread imports it

    _ok(kernel.execute('u = %chatterbox say "After loading" --weights dummy:reduced --device cpu --max-tokens 4 --seed 2'))
    # issued while the load ran (its imports alone take seconds): the say waited for it,
    # said so, and reports where the load took the model from
    assert kernel.value("u.timings['model_source']") in ("dummy", "disk-cache")
    assert kernel.value("u.timings['wait_s']") > 0.0
    # the default dtype (auto, or CHATTERBOX_NB_DTYPE's) made concrete: what ran is what params and timings show
    default = kernel.value("__import__('chatterbox_nb.engine.models.precision').engine.models.precision.resolve_dtype("
                           "__import__('chatterbox_nb.config').config.settings().dtype, 'cpu')")
    assert kernel.value("u.params['dtype']") == kernel.value("u.timings['dtype']") == default
    assert kernel.value("t.wait().warmed") == "light"


def test_stop_button_during_wait_keeps_kernel_and_load(kernel):
    _ok(kernel.execute("%chatterbox unload --all"))
    # the stop button once the load has reached its warm-up (whatever the machine's speed)
    warming = "any(t.stage.startswith('warm-up') for t in list(__import__('chatterbox_nb')._state.STATE.tasks.values()))"
    result = kernel.execute(Kernel.interrupting_when(
        warming, "r = %chatterbox load --weights dummy:reduced --device cpu --warmup full --wait"
    ))
    assert result["status"] == "ok", result["reply"]
    assert kernel.value("_interrupted_at") == [True]
    assert "Stopped waiting" in kernel.text(result)
    assert kernel.value("1 + 1") == 2
    status = _ok(kernel.execute("s = %chatterbox status\nprint(s)"))
    assert "background: english: warm-up (full)" in kernel.text(status)

    # unload stops the warm-up between its steps; nothing stays behind
    _ok(kernel.execute("%chatterbox unload --all"))
    assert kernel.value("[t for t in __import__('chatterbox_nb')._state.STATE.tasks.values() if not t.done]") == []
    assert kernel.value("len(__import__('chatterbox_nb').status().models)") == 0


def test_unload_ext_stops_background_work(kernel):
    _ok(kernel.execute("t2 = %chatterbox load --weights dummy:reduced --device cpu --warmup full"))
    _ok(kernel.execute("%unload_ext chatterbox_nb"))
    assert kernel.value("t2.done") is True
    assert kernel.value("t2.stage") in ("cancelled", "ready")
    _ok(kernel.execute("%load_ext chatterbox_nb"))
