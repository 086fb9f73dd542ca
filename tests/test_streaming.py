"""Token-level streaming (engine/generation/streaming.py): pieces while T3 samples, on the reduced dummies.

What must hold: the same seed samples the same tokens streamed or not; the pieces played
back to back are the kept audio (before upstream's watermark over the whole), as long as
the unstreamed audio, and with a deterministic stand-in for S3Gen equal to it sample for
sample outside the cross-fades (a seam off by one token fails); the stop token and the
stop button end a streamed say with the last piece flushed; `--no-stream` is the old path, bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest
from IPython.core.error import UsageError
from kernel_utils import seen_after_the_first_left

import chatterbox_nb as cnb
from chatterbox_nb import progressive
from chatterbox_nb.engine.models import loader
from chatterbox_nb.engine.generation import streaming
from chatterbox_nb.engine.request import SayOptions
from chatterbox_nb.engine.specs import SAMPLE_RATE, SAMPLES_PER_TOKEN
from chatterbox_nb.engine.generation.speak import pieces
from chatterbox_nb.errors import InvalidOption

REDUCED = "dummy:reduced"
STOPPING = "dummy:reduced-stopping"
TEXT = "Hello there, this is one sentence."


def _loaded(weights: str):
    cnb.load("english", weights=weights, device="cpu", warmup="off", wait=True)
    from chatterbox_nb import config
    from chatterbox_nb.engine.models.precision import resolve_dtype

    dtype = resolve_dtype(config.settings().dtype, "cpu")  # other tests of this worker may hold other dtypes
    (found,) = [m for m in loader.loaded_models() if m.name == "english" and m.weights == weights and m.dtype == dtype]
    return found


@pytest.fixture(scope="module")
def reduced():
    return _loaded(REDUCED)


@pytest.fixture(scope="module")
def stopping():
    """A second english model: dropped afterwards, so later tests see only the session's."""
    found = _loaded(STOPPING)
    yield found
    loader.drop(found.key)


@pytest.fixture
def t3_outputs(monkeypatch, reduced):
    """What T3 returned, say by say (the raw tokens, stop token included)."""
    seen: list[list[int]] = []
    cls = type(reduced.tts.t3)
    original = cls.inference

    def spy(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        seen.append([int(t) for t in out.reshape(-1)])
        return out

    monkeypatch.setattr(cls, "inference", spy)
    return seen


def _say(weights: str, **kw):
    return cnb.say(TEXT, model="english", weights=weights, device="cpu", **kw)


def _streamed_pieces(loaded, **kw):
    opts = SayOptions.defaults(loaded.spec, stream=True, **kw)
    with loaded.use(user=True):
        return list(pieces(loaded, opts, [TEXT]))


def _watermarked(loaded, audio: np.ndarray) -> np.ndarray:
    return np.asarray(loaded.tts.watermarker.apply_watermark(audio, sample_rate=SAMPLE_RATE), np.float32)


def test_same_seed_same_tokens_and_length(reduced, t3_outputs):
    plain = _say(REDUCED, seed=7, max_tokens=40, stream=False)
    streamed = _say(REDUCED, seed=7, max_tokens=40, stream=True)
    assert len(t3_outputs) == 2 and t3_outputs[0] == t3_outputs[1]
    assert abs(len(streamed.audio) - len(plain.audio)) <= streaming.FADE
    assert len(streamed.audio) == streamed.timings["speech_tokens"] * SAMPLES_PER_TOKEN
    t = streamed.timings
    assert t["pieces"] >= 2 and plain.timings["pieces"] == 1
    assert 0 < t["first_audio_s"] < t["total_s"]  # one sentence, heard before it is all made
    assert plain.timings["first_audio_s"] == plain.timings["total_s"]
    assert streamed.params["stream"] is True and plain.params["stream"] is False


def test_pieces_joined_are_the_kept_audio(reduced):
    made = _streamed_pieces(reduced, seed=3, max_tokens=40)
    assert len(made) >= 2 and [p.part for p in made] == list(range(len(made)))
    assert [p.last for p in made] == [False] * (len(made) - 1) + [True]
    joined = np.concatenate([p.audio for p in made])
    tokens = sum(p.stages["speech_tokens"] for p in made)
    assert len(joined) == tokens * SAMPLES_PER_TOKEN  # nothing dropped or doubled at the seams
    # what is kept is upstream's watermark over the pieces joined; the pieces carry none
    np.testing.assert_array_equal(made[-1].kept, _watermarked(reduced, joined))
    assert made[0].kept is None and made[-1].stages["t3_s"] > 0


def test_no_stream_is_the_old_path_bit_for_bit(reduced):
    from chatterbox_nb.engine.generation import synth

    default = _say(REDUCED, seed=11, max_tokens=20)  # outside a notebook: no player, no streaming
    off = _say(REDUCED, seed=11, max_tokens=20, stream=False)
    with reduced.use(user=True):
        direct, _ = synth.generate(reduced.tts, reduced.spec, TEXT, max_tokens=20, seed=11,
                                   sampling=reduced.spec.defaults(), renderable_only=True)
    np.testing.assert_array_equal(off.audio, direct)
    np.testing.assert_array_equal(default.audio, direct)


def test_stop_token_ends_a_streamed_say_cleanly(stopping):
    # seed 2 of the stopping dummy stops after some tens of tokens, well under the cap
    made = _streamed_pieces(stopping, seed=2, max_tokens=200)
    plain = _say(STOPPING, seed=2, max_tokens=200, stream=False)
    tokens = sum(p.stages["speech_tokens"] for p in made)
    assert tokens == plain.timings["speech_tokens"] < 150  # the stop token ended it, not the cap
    assert len(made) >= 2 and made[-1].last and len(made[-1].audio) > 0  # the last piece flushed
    joined = np.concatenate([p.audio for p in made])
    assert len(joined) == len(plain.audio) == tokens * SAMPLES_PER_TOKEN
    np.testing.assert_array_equal(made[-1].kept, _watermarked(stopping, joined))


def test_stop_button_keeps_what_was_made(reduced):
    opts = SayOptions.defaults(reduced.spec, stream=True, seed=5, max_tokens=300)
    run = progressive.ChunkRun(reduced, [TEXT], opts, sample_rate=SAMPLE_RATE).start()
    result = run.wait(lambda p: run.stop() if not p.last else None)  # pressed when the first piece plays
    assert not run.thread.is_alive()  # the worker ended with the say
    assert result.stopped and result.chunks_done == 1 and len(result.pieces) >= 2
    joined = np.concatenate([p.audio for p in result.pieces])
    assert 0 < result.stages["speech_tokens"] < 250  # cut at the next token, long before the cap
    assert len(joined) == result.stages["speech_tokens"] * SAMPLES_PER_TOKEN
    np.testing.assert_array_equal(result.audio, _watermarked(reduced, joined))


def test_a_streamed_say_is_one_worker_thread(reduced, monkeypatch):
    """The caller and one worker that holds the model and pushes each piece onto one queue:
    no helper thread turning callbacks back into a generator; the worker is over when the say returns."""
    import threading

    started: list[threading.Thread] = []
    real_start = threading.Thread.start

    def spy(thread: threading.Thread) -> None:
        started.append(thread)
        real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", spy)
    u = _say(REDUCED, seed=3, max_tokens=40, stream=True, dtype=reduced.dtype)  # the model in memory: no load
    monkeypatch.undo()
    assert u.timings["pieces"] >= 2  # it streamed
    assert [t.name for t in started] == ["chatterbox_nb-say"], f"threads started: {[t.name for t in started]}"
    assert not started[0].is_alive()  # joined before the say returned


def test_bad_stream_values_are_one_sentence(shell):
    with pytest.raises(InvalidOption, match=r"^--stream must be True, False or None \(where it pays\), not 'yes'\.$"):
        cnb.say("Hi", stream="yes")
    with pytest.raises(UsageError, match="--stream"):
        shell.run_line_magic("chatterbox", 'say --stream=maybe "Hi"')
    from chatterbox_nb import magics

    parser = magics._build_parsers()["say"]
    assert parser.parse_args(["Hi"]).stream is None
    assert parser.parse_args(["--stream", "Hi"]).stream is True
    assert parser.parse_args(["--no-stream", "Hi"]).stream is False


def test_timings_show_first_audio_and_pieces():
    from chatterbox_nb.display.timings import timings_html

    html = timings_html({"total_s": 10.0, "first_audio_s": 3.0, "chunks_done": 1, "pieces": 3})
    assert "first audio after 3.00 s" in html and "1 chunk in 3 pieces" in html


def test_streaming_is_on_by_default_where_it_pays(monkeypatch):
    from types import SimpleNamespace

    from chatterbox_nb import api
    from chatterbox_nb.display import player
    from chatterbox_nb.engine.specs import SPECS

    def pays(model: str, device: str) -> bool:
        return api._stream_pays(SimpleNamespace(device=device, spec=SPECS[model]))

    monkeypatch.setattr(player, "_in_kernel", lambda: True)
    assert pays("turbo", "cpu") and pays("english", "cuda") and pays("multilingual", "cuda:1")
    assert not pays("english", "cpu") and not pays("multilingual", "cpu")  # S3Gen calls too dear there
    monkeypatch.setattr(player, "_in_kernel", lambda: False)  # no player takes the pieces
    assert not pays("turbo", "cuda")


def test_a_streamed_say_gives_t3_its_own_torch_back(reduced, monkeypatch):
    import torch
    from chatterbox.models.t3 import t3 as t3_module

    during: list[object] = []
    record = streaming.Streamer.record
    monkeypatch.setattr(streaming.Streamer, "record", lambda self, s: (during.append(t3_module.torch), record(self, s)))
    made = _streamed_pieces(reduced, seed=3, max_tokens=20)
    assert len(made) >= 2 and during and all(isinstance(t, streaming.SamplingTorch) for t in during)
    assert t3_module.torch is torch  # the patch lasted only as long as the streamed say


def test_the_sampling_patch_is_counted_across_threads():
    """Two models streaming in two threads share T3's module: the first to leave must not
    take the patch from under the other."""
    import torch
    from chatterbox.models.t3 import t3 as t3_module

    seen = seen_after_the_first_left(streaming.sampling, lambda: t3_module.torch)
    assert isinstance(seen, streaming.SamplingTorch)
    assert t3_module.torch is torch


LOOKAHEAD = 3  # S3Gen's flow looks this many tokens ahead


def _token_sound(around: list[int]) -> np.ndarray:
    """One token's samples from the stand-in S3Gen: a tone set by its id (`around[1]`), its
    phase by the token before and the `LOOKAHEAD` after it (-1: none), as S3Gen's sound
    depends on its context and looks ahead."""
    t = np.arange(SAMPLES_PER_TOKEN, dtype=np.float64) / SAMPLE_RATE
    phase = 2 * np.pi * (sum((n + 1) * (k + 2) for k, n in enumerate(around)) % 97) / 97
    return (0.5 * np.sin(2 * np.pi * (60 + around[1] % 613) * t + phase)).astype(np.float32)


def _stand_in_inference(self, speech_tokens, ref_dict=None, **kwargs):
    """A deterministic S3Gen: each token renders `SAMPLES_PER_TOKEN` known samples."""
    import torch

    ids = [int(t) for t in speech_tokens.reshape(-1)]
    padded = [-1, *ids] + [-1] * LOOKAHEAD
    sounds = [_token_sound(padded[i: i + 2 + LOOKAHEAD]) for i in range(len(ids))]
    wav = np.concatenate(sounds) if sounds else np.zeros(0, np.float32)
    return torch.from_numpy(wav).unsqueeze(0), None


@pytest.fixture
def stand_in_s3gen(monkeypatch, reduced):
    """S3Gen (and the watermark) replaced for these tests only, so audio is comparable sample by sample."""
    monkeypatch.setattr(type(reduced.tts.s3gen), "inference", _stand_in_inference)
    monkeypatch.setattr(type(reduced.tts.watermarker), "apply_watermark", lambda self, wav, sample_rate=None: wav)
    return reduced


@pytest.mark.parametrize("seed", [3, 8])
def test_streamed_audio_is_the_unstreamed_audio_outside_the_fades(stand_in_s3gen, t3_outputs, seed, monkeypatch):
    loaded = stand_in_s3gen
    monkeypatch.setattr(streaming, "piece_tokens", lambda spec, prompt, context: 15)  # several seams in 70 tokens
    made = _streamed_pieces(loaded, seed=seed, max_tokens=70)
    opts = SayOptions.defaults(loaded.spec, stream=False, seed=seed, max_tokens=70)
    with loaded.use(user=True):
        (plain,) = pieces(loaded, opts, [TEXT])
    assert len(t3_outputs) == 2 and t3_outputs[0] == t3_outputs[1]  # the same tokens both ways
    assert len(made) >= 3  # at least two seams
    streamed = np.concatenate([p.audio for p in made])
    assert len(streamed) == len(plain.audio) > 0
    np.testing.assert_array_equal(made[-1].kept, streamed)
    # each later piece starts with the fade into its own render; elsewhere the samples are equal
    fades = np.zeros(len(streamed), bool)
    for end in np.cumsum([len(p.audio) for p in made[:-1]]):
        fades[end: end + streaming.FADE] = True
    np.testing.assert_array_equal(streamed[~fades], plain.audio[~fades])
    # in a fade both renders agree too, so the cross-fade (weights summing to one) changes nothing audible
    np.testing.assert_allclose(streamed[fades], plain.audio[fades], atol=1e-6)


# In a real kernel: where the player takes the pieces. The kernel records, in order, each
# token T3 samples (the progress hook) and each time the player's list of pieces grows (what
# is synced to the browser), so "a piece played before the last token" is an event ordering.
_RECORDER = """
import ipywidgets
from chatterbox_nb.display.live import ChunkPlayer
from chatterbox_nb.engine.generation.stopping import watching
events = []
def _seen(widget):
    if isinstance(widget, ChunkPlayer):
        widget.observe(lambda c: events.append(('piece', len(c['new']), sum(len(b) for b in c['new']) // 2)),
                       names='chunks')
ipywidgets.Widget.on_widget_constructed(_seen)
def _progress(stage, n):
    if stage == 'tokens':
        events.append(('token', n))
"""


@pytest.mark.slow
@pytest.mark.parametrize("model, extra", [("turbo", ""), ("multilingual", "--stream --lang fr")], ids=["turbo", "multilingual"])
def test_a_streamed_say_in_a_kernel_plays_pieces_while_t3_samples(kernel, model, extra):
    """Turbo streams by default on a CPU; multilingual when asked."""
    from kernel_utils import Kernel

    Kernel.ok(kernel.execute("%load_ext chatterbox_nb\n" + _RECORDER))
    Kernel.ok(kernel.execute(
        "events.clear()\nwith watching(_progress):\n"
        f"    u = %chatterbox say 'Bonjour, ceci est une phrase.' -m {model} {extra} "
        "--weights dummy:reduced --device cpu --max-tokens 60 --seed 2"
    ))
    events = kernel.value("events")
    stream, tokens, samples, pieces = kernel.value(
        "(u.params['stream'], u.timings['speech_tokens'], len(u.audio), u.timings['pieces'])")
    played = [e for e in events if e[0] == "piece"]
    assert stream is True and tokens > 20 and pieces >= 2
    assert [e[1] for e in played] == list(range(1, pieces + 1))  # each piece once, in order
    assert played[-1][2] == samples == tokens * SAMPLES_PER_TOKEN  # the player got the whole say
    last_token = max(i for i, e in enumerate(events) if e[0] == "token")
    assert events.index(played[0]) < last_token  # the first piece reached the player while T3 still sampled
    Kernel.ok(kernel.execute(f"%chatterbox unload -m {model}"))


# Upstream alone: `from_local` on the dummy folder (benchmarks/_upstream.py builds a reduced T3 and
# S3Gen the way our loader does) and its own `generate`, in a process that never imports the
# streaming patch. Upstream caps T3 at 1000 tokens; the stopping dummy stops long before.
_UPSTREAM = """
import random, sys
import numpy as np, torch
sys.path.insert(0, sys.argv[1])
from _upstream import from_local
from chatterbox_nb.engine.specs import SPECS
import chatterbox.models.t3.t3 as t3_module
tts = from_local(SPECS["english"], __import__("pathlib").Path(sys.argv[2]), "cpu")
seed = int(sys.argv[3])
random.seed(seed); np.random.seed(seed); torch.manual_seed(seed)
wav = tts.generate(sys.argv[4])
assert "chatterbox_nb.engine.generation.streaming" not in sys.modules and t3_module.torch is torch
np.save(sys.argv[5], wav.reshape(-1).float().numpy())
"""


def test_no_stream_float32_is_upstreams_own_generate_bit_for_bit(cache_dir, tmp_path):
    """Bit identity in float32 holds only where both load the same bytes at the same
    alignment (see the git log); so the dtype is set, not left to `auto`."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from chatterbox_nb.engine.store import sources
    from chatterbox_nb.engine.specs import SPECS

    root = Path(__file__).resolve().parents[1]
    seed = 2
    try:
        ours = _say(STOPPING, seed=seed, max_tokens=1000, stream=False, dtype="float32")
    finally:  # later tests see only the session's models
        for m in loader.loaded_models():
            if m.key.dtype == "float32" and m.source.fingerprint.split(":")[2] == "reduced-stopping":
                loader.drop(m.key)
    assert 0 < ours.timings["speech_tokens"] < 1000  # the stop token ended it: upstream's cap never bit
    folder = sources.resolve(SPECS["english"], STOPPING, cache_dir).folder
    out = tmp_path / "upstream.npy"
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run(
        [sys.executable, "-c", _UPSTREAM, str(root / "benchmarks"), str(folder), str(seed), TEXT, str(out)],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    np.testing.assert_array_equal(ours.audio, np.load(out))


def test_pieces_are_cut_by_tokens_not_by_the_clock(reduced, monkeypatch):
    """The same seeded say cuts its pieces at the same tokens however long each render took
    (a fake clock: each token takes 1 s, each render `render_s`)."""
    monkeypatch.setattr(streaming, "piece_tokens", lambda spec, prompt, context: 12)
    clock = [0.0]
    monkeypatch.setattr(streaming.time, "perf_counter", lambda: clock[0])
    record, piece = streaming.Streamer.record, streaming.Streamer._piece
    runs = []
    for render_s in (0.001, 1000.0):
        def timed_record(self, sampled):
            clock[0] += 1.0
            return record(self, sampled)

        def timed_piece(self, *args, render_s=render_s, **kwargs):
            clock[0] += render_s
            return piece(self, *args, **kwargs)

        monkeypatch.setattr(streaming.Streamer, "record", timed_record)
        monkeypatch.setattr(streaming.Streamer, "_piece", timed_piece)
        runs.append(_streamed_pieces(reduced, seed=5, max_tokens=60))
    first, second = ([(p.part, p.stages["speech_tokens"]) for p in run] for run in runs)
    assert first == second and len(first) >= 3
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a.audio, b.audio)


def test_the_plan_takes_few_large_pieces_where_renders_are_dear():
    from chatterbox_nb.engine.specs import SPECS

    english, turbo = SPECS["english"], SPECS["turbo"]
    # built-in prompt: 150 tokens; english re-reads it at 52 ms a token, so one extra render is all it affords
    assert streaming.piece_tokens(english, 150, 8) > 500
    assert english.stream_first_tokens < streaming.piece_tokens(turbo, 150, 10) < 100
    assert streaming.piece_tokens(turbo, 10, 10) == turbo.stream_first_tokens  # never below the first piece
