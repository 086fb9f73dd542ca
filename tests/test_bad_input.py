"""Every user mistake, typed into a real kernel: one clear line (an IPython UsageError,
no traceback), and nothing lost — models, voices, history and the disk cache are as
they were. Table-driven, after a kernel has a model loaded, a voice and a history."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from kernel_utils import HAS_CUDA, HAS_MPS, Kernel
from test_voices import _wav

pytestmark = pytest.mark.slow
MODEL = "--weights dummy:reduced --device cpu"

SNAPSHOT = """
import hashlib, json
from pathlib import Path
from chatterbox_nb import config
from chatterbox_nb._state import STATE
_root = config.cache_dir()
_reg = _root / "voices" / "voices.json"
print(json.dumps({
    "models": sorted(str(k) for k in STATE.models),
    "history": [u.text for u in STATE.history],
    "voices": hashlib.sha256(_reg.read_bytes()).hexdigest() if _reg.exists() else None,
    "cache": sorted(str(p.relative_to(_root)) for p in _root.rglob("*") if ".lock" not in p.name),
}))
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("inputs")
    (d / "text.wav").write_text("not audio")
    sf.write(d / "silent.wav", np.zeros(48000, np.float32), 24000)
    (d / "empty").mkdir()
    _wav(d / "short.wav", seconds=0.3)
    _wav(d / "good.wav", seed=301)
    (d / "a_file").write_text("x")
    return d


def cases(d) -> list[tuple[str, str]]:
    """(what the user types, words the one-line answer must contain)"""
    return [
        ('%chatterbox say ""', "Nothing to say"),
        ("%chatterbox say", "Nothing to say"),
        ("%chatterbox frobnicate", "Unknown subcommand 'frobnicate'"),
        ("%chatterbox say hi --no-such-option", "unrecognized arguments"),
        ("%chatterbox say hi --model klingon", "invalid choice: 'klingon'"),
        (f"%chatterbox say hi -m multilingual --lang xx {MODEL}", "Unknown language 'xx'"),
        (f"%chatterbox say hi --lang fr {MODEL}", "English only"),
        (f"%chatterbox say hi -v nobody {MODEL}", "known voices are"),
        (f"%chatterbox say hi -v /no/such.wav {MODEL}", "does not exist"),
        (f"%chatterbox say hi -v {d}/text.wav {MODEL}", "not audio that"),
        (f"%chatterbox say hi -v {d}/short.wav {MODEL}", "at least 1 s"),
        (f"%chatterbox say hi -v {d}/silent.wav {MODEL}", "silent"),
        ("%chatterbox say hi --exaggeration abc", "invalid float value"),
        ("%chatterbox say hi --exaggeration 99", "--exaggeration must be"),
        ("%chatterbox say hi --cfg -1", "--cfg must be"),
        ("%chatterbox say hi --temperature 0", "--temperature must be"),
        ("%chatterbox say hi --top-p 1.5", "--top-p must be"),
        ("%chatterbox say hi --min-p 2", "--min-p must be"),
        ("%chatterbox say hi --repetition-penalty 0", "--repetition-penalty must be"),
        ("%chatterbox say hi --max-tokens 0", "--max-tokens must be between"),
        ("%chatterbox say hi --max-tokens 99999", "--max-tokens must be between"),
        ("%chatterbox say hi --seed -3", "--seed must be between"),
        ("%chatterbox say hi --seed x", "invalid int value"),
        ("%chatterbox say hi --device tpu", "Unknown device 'tpu'"),
        # devices no machine has (or, where the machine has one, the case is left out)
        ("%chatterbox say hi --device cuda:99 --weights dummy:reduced", "'cuda:99' is not available"),
        *[("%chatterbox say hi --device cuda --weights dummy:reduced", "no CUDA GPU")] * (not HAS_CUDA),
        *[("%chatterbox say hi --device mps --weights dummy:reduced", "'mps' is not available")] * (not HAS_MPS),
        ("%chatterbox say hi --dtype float64", "invalid choice: 'float64'"),
        ("%chatterbox say hi --cfm-steps 0", "--cfm-steps must be between 1 and 50"),
        ("%chatterbox say hi --prompt-tokens 5", "--prompt-tokens must be between 10 and 1000"),
        ("%chatterbox say hi --weights /no/such/folder", "does not exist"),
        ("%chatterbox say hi --weights dummy:huge", "Unknown weights 'dummy:huge'"),
        (f"%chatterbox say hi -o /no/such/dir/out.wav {MODEL}", "does not exist"),
        (f"%chatterbox say hi -o {d} {MODEL}", "is a folder"),
        ('%chatterbox say "unclosed', "No closing quotation"),
        ("%chatterbox load --warmup lukewarm", "invalid choice: 'lukewarm'"),
        ("%chatterbox unload -m english --all", "not both"),
        ("%chatterbox unload -m klingon", "invalid choice"),
        ("%chatterbox warmup --level off", "invalid choice"),
        ("%chatterbox cache frob", "invalid choice"),
        ("%chatterbox cache info -m english", "-m goes with clear only"),
        ("%chatterbox cache clear -m klingon", "invalid choice"),
        (f"%chatterbox voice add 'bad name' {d}/good.wav", "not usable"),
        ("%chatterbox voice add ok /no/such.wav", "does not exist"),
        (f"%chatterbox voice add ok {d}/empty", "no audio files"),
        (f"%chatterbox voice add ok {d}/good.wav --weights 1 2", "one weight per file"),
        (f"%chatterbox voice add ok {d}/short.wav", "at least 1 s"),
        ("%chatterbox voice remove nobody", "Unknown voice 'nobody'"),
        ("%chatterbox voice", "required"),
        ("%chatterbox help --bogus", "unrecognized arguments"),
        ("%%chatterbox --max-tokens abc\nSome text.", "invalid int value"),
        ("%%chatterbox\n   \n", "Nothing to say"),
        (f"%config Chatterbox.cache_dir = '{d}/a_file'\n%chatterbox voice list", "is not a folder"),
    ]


def test_bad_input_in_a_real_kernel(kernel, files, cache_dir):
    ok = Kernel.ok
    ok(kernel.execute("%load_ext chatterbox_nb"))
    ok(kernel.execute(f"%chatterbox load {MODEL} --warmup off --wait"))
    ok(kernel.execute(f"%chatterbox voice add keep {files}/good.wav"))
    ok(kernel.execute(f'u = %chatterbox say "Before the mistakes." -v keep {MODEL} --max-tokens 3 --seed 1'))
    before = _snapshot(kernel)
    table = cases(files)
    assert len(table) >= 30
    for code, words in table:
        result = kernel.execute(code)
        reply = result["reply"]
        assert result["status"] == "error", f"{code!r} did not fail"
        assert reply["ename"] == "UsageError", f"{code!r}: {reply['ename']}: {reply['evalue']}"
        assert words in reply["evalue"] and "\n" not in reply["evalue"].strip(), f"{code!r}: {reply['evalue']!r}"
        shown = "".join(o.get("text", "") for o in result["outputs"] if o["type"] == "stream")
        assert "Traceback" not in shown and "Traceback" not in "".join(reply.get("traceback", [])), code
        if "%config" in code:
            ok(kernel.execute(f"%config Chatterbox.cache_dir = {str(cache_dir)!r}"))
        assert _snapshot(kernel) == before, f"{code!r} changed the kernel's state"
    after = ok(kernel.execute(f'u = %chatterbox say "After the mistakes." -v keep {MODEL} --max-tokens 3 --seed 1'))
    assert after["status"] == "ok" and kernel.value("u.timings['model_source']") == "memory"
    print(f"{len(table)} bad inputs: each one line, nothing changed")


def _snapshot(kernel: Kernel) -> dict:
    import json

    result = Kernel.ok(kernel.execute(SNAPSHOT))
    return json.loads(Kernel.text(result).strip().splitlines()[-1])


def test_interrupted_say_keeps_kernel_model_and_history(kernel):
    """The stop button in the middle of a one-sentence say: T3 ends at its next token and
    what was sampled is rendered and kept; the kernel lives, the model stays loaded and
    unlocked, the next say works."""
    ok = Kernel.ok
    ok(kernel.execute("%load_ext chatterbox_nb"))
    ok(kernel.execute(f"%chatterbox load {MODEL} --warmup off --wait"))
    history = kernel.value("len(__import__('chatterbox_nb').history)")
    # the stop button as T3 samples its fifth token (inside T3, whatever the machine's speed)
    ok(kernel.execute(Kernel.interrupting_at_token(5, f'u = %chatterbox say "This will be stopped." {MODEL} --max-tokens 600')))
    assert kernel.value("_interrupted_at") == [(0, 5)]
    assert kernel.value("u.timings['stopped']") is True
    assert 5 <= kernel.value("u.timings['speech_tokens']") < 600 and kernel.value("len(u.audio) > 0")
    assert kernel.value("len(__import__('chatterbox_nb').history)") == history + 1
    assert kernel.value("[m.lock.locked() for m in __import__('chatterbox_nb.engine.models.loader').engine.models.loader.loaded_models()]") == [False]
    ok(kernel.execute(f'u = %chatterbox say "Still here." {MODEL} --max-tokens 3 --seed 2'))
    assert kernel.value("u.timings['model_source']") == "memory" and kernel.value("u.timings['stopped']") is False
