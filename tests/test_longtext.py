"""Long text: sentence chunks, one audio out of many chunks, stopping, `%%chatterbox`."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import chatterbox_nb as cnb
from chatterbox_nb import progressive
from chatterbox_nb.engine.specs import SAMPLES_PER_TOKEN
from chatterbox_nb.text import MAX_CHARS, MAX_WORDS, chunk_text, split_sentences

REDUCED = "dummy:reduced"

PARAGRAPH = (
    "Dr. Smith went to Washington on Monday. He arrived at 3 p.m. after a long drive. "
    "The weather was cold and grey all day. Everyone at the meeting was already waiting. "
    "They talked for hours about the new bridge. Then they all went home for dinner."
)


# -- the chunker ---------------------------------------------------------------------------


def test_abbreviations_do_not_end_sentences():
    sentences = split_sentences("Dr. Smith met Mrs. Jones at 3 p.m. on Jan. 5th. They spoke, e.g. about trains.")
    assert sentences == ["Dr. Smith met Mrs. Jones at 3 p.m. on Jan. 5th.", "They spoke, e.g. about trains."]


def test_six_sentences_make_six_chunks():
    chunks = chunk_text(PARAGRAPH)
    assert len(chunks) == 6
    assert chunks[0] == "Dr. Smith went to Washington on Monday."
    assert " ".join(chunks).split() == PARAGRAPH.split()


def test_short_sentences_are_merged():
    text = "Yes. No. This sentence is long enough to stand alone. And here is another whole sentence. Okay."
    assert chunk_text(text) == [
        "Yes. No. This sentence is long enough to stand alone.",
        "And here is another whole sentence. Okay.",
    ]


def test_long_sentences_are_split_at_clauses_then_words():
    clauses = ", ".join(f"and then clause number {i} went on a little further" for i in range(20)) + "."
    chunks = chunk_text(clauses)
    assert len(chunks) > 1
    assert all(len(c) <= MAX_CHARS and len(c.split()) <= MAX_WORDS for c in chunks)
    assert all(c.endswith((",", ".")) for c in chunks)  # cut after a comma, not mid-clause
    assert " ".join(chunks).split() == clauses.split()

    words = " ".join(["word"] * 100)
    assert [len(c.split()) for c in chunk_text(words)] == [MAX_WORDS, MAX_WORDS, 20]
    assert [len(c) for c in chunk_text("x" * 700)] == [MAX_CHARS, MAX_CHARS, 100]


def test_blank_lines_end_chunks_and_newlines_are_spaces():
    assert chunk_text("Hi.\n\nThere.") == ["Hi.", "There."]
    assert chunk_text("A first sentence that\nspans two lines.") == ["A first sentence that spans two lines."]


def test_unknown_language_falls_back_to_english_rules():
    assert chunk_text("Bonjour tout le monde. Comment allez-vous ce matin ?", "fr") == [
        "Bonjour tout le monde.",
        "Comment allez-vous ce matin ?",
    ]
    assert len(chunk_text("This is the first one here. This is the second one here.", "xx")) == 2


# -- say on long text ------------------------------------------------------------------------


def test_paragraph_is_chunked_and_joined(english_reduced):
    from chatterbox_nb.engine.generation import stopping

    t3_done: list[float] = []  # when each chunk's T3 ended (its "vocoder" event)
    with stopping.watching(lambda stage, n: t3_done.append(time.perf_counter()) if stage == "vocoder" else None):
        u = cnb.say(PARAGRAPH, weights=REDUCED, device="cpu", max_tokens=8, seed=4)
    returned = time.perf_counter()
    t = u.timings
    assert u.params["chunks"] == 6 and t["chunks_done"] == 6 and t["stopped"] is False
    pause = int(round(progressive.PAUSE_S * u.sample_rate))
    assert len(u.audio) == t["speech_tokens"] * SAMPLES_PER_TOKEN + 5 * pause
    # the first audio was playable before the last chunk's T3 had ended (an order of events on
    # one clock: the say began at the latest `total_s` before it returned)
    assert len(t3_done) == 6 and returned - t["total_s"] + t["first_audio_s"] < t3_done[-1], (t, t3_done)
    assert t["audio_s"] == pytest.approx(len(u.audio) / 24000)
    stages = ("load_s", "wait_s", "conditioning_s", "t3_s", "s3gen_s", "watermark_s")
    assert sum(t[k] for k in stages) <= t["total_s"], t
    assert cnb.history[-1] is u

    # chunk 0 is seeded with the user's seed: the same as that sentence said alone
    first = cnb.say(chunk_text(PARAGRAPH)[0], weights=REDUCED, device="cpu", max_tokens=8, seed=4)
    assert first.timings["first_audio_s"] == first.timings["total_s"] and first.params["chunks"] == 1
    assert np.array_equal(u.audio[: len(first.audio)], first.audio)
    assert not u.audio[len(first.audio) : len(first.audio) + pause].any()  # then the pause


def test_stop_keeps_what_was_made(english_reduced):
    stopped = []  # what cnb.stop() answered, checked here: an assert in a thread fails no test

    def stop_after_first_chunk():
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            runs = progressive.running()
            if runs and runs[0].done >= 1:
                stopped.append(cnb.stop())
                return
            time.sleep(0.05)

    stopper = threading.Thread(target=stop_after_first_chunk)
    stopper.start()
    u = cnb.say(PARAGRAPH, weights=REDUCED, device="cpu", max_tokens=6, seed=2)
    stopper.join()
    assert stopped == [1], "the say was never stopped by cnb.stop()"
    t = u.timings
    assert t["stopped"] is True and 1 <= t["chunks_done"] < 6
    pause = int(round(progressive.PAUSE_S * u.sample_rate))
    assert len(u.audio) == t["speech_tokens"] * SAMPLES_PER_TOKEN + (t["chunks_done"] - 1) * pause
    assert "stopped after" in u.summary()
    assert cnb.history[-1] is u
    assert progressive.running() == []
    assert cnb.stop() == 0  # nothing left running; the model is free again
    assert english_reduced.lock.acquire(timeout=1)
    english_reduced.lock.release()


def test_stop_all_while_a_say_is_starting(monkeypatch):
    """A run is listed only once its thread has started: `unload` and `stop` join the
    runs they see, and joining a thread that has not started raises."""
    import contextlib
    from types import SimpleNamespace

    from chatterbox_nb.engine.request import SayOptions

    real_start = threading.Thread.start

    def slow_start(thread):
        time.sleep(0.5)  # the window a say's thread takes to start, made wide
        real_start(thread)

    unloaded = SimpleNamespace(tts=None, unloaded=True, use=lambda user: contextlib.nullcontext())
    run = progressive.ChunkRun(unloaded, ["Never spoken."], SayOptions(), sample_rate=24000)
    monkeypatch.setattr(run.thread, "start", lambda: slow_start(run.thread))
    starter = threading.Thread(target=run.start)
    starter.start()
    time.sleep(0.1)  # the starter is inside start(), the thread not yet running
    progressive.stop_all(join_s=5.0)  # raised "cannot join thread before it is started"
    starter.join()
    with pytest.raises(progressive.Evicted):
        run.wait()
    assert progressive.running() == []


def test_cell_magic_says_the_cell(shell, english_reduced):
    result = shell.run_cell(
        "%%chatterbox --weights dummy:reduced --device cpu --max-tokens 4 --seed 1\n"
        "The first sentence of the cell.\nThe second sentence of the cell.\n"
    )
    assert result.error_in_exec is None
    u = result.result
    assert u.params["chunks"] == 2 and u.timings["chunks_done"] == 2
    assert u.text == "The first sentence of the cell.\nThe second sentence of the cell."


def test_empty_cell_is_a_usage_error(shell):
    before = len(cnb.history)
    result = shell.run_cell("%%chatterbox --max-tokens 4\n   \n")
    assert type(result.error_in_exec).__name__ == "UsageError"
    assert "Nothing to say" in str(result.error_in_exec)
    assert len(cnb.history) == before


# -- in a real kernel ------------------------------------------------------------------------

_CELL = "%%chatterbox --weights dummy:reduced --device cpu --max-tokens 6 --seed 1\n"


@pytest.mark.slow
def test_cell_in_a_kernel_shows_one_progressive_player(kernel):
    from kernel_utils import Kernel

    Kernel.ok(kernel.execute("%load_ext chatterbox_nb"))
    # warm, so that the first chunk does not also carry the first call's one-off costs
    Kernel.ok(kernel.execute("%chatterbox load --weights dummy:reduced --device cpu --warmup light --wait"))
    text = "One sentence comes first here. Another sentence follows it. A third one ends it."
    result = Kernel.ok(kernel.execute(_CELL + text))
    shown = [o for o in result["outputs"] if o["type"] in ("display_data", "execute_result")]
    assert len(shown) == 2, shown  # the live player and its saved copy; the Utterance does not render again
    assert shown[0]["type"] == shown[1]["type"] == "display_data"
    assert "<audio" in shown[1]["data"]["text/html"] and "cnb-saved-only" in shown[1]["data"]["text/html"]
    assert "application/vnd.jupyter.widget-view+json" in shown[0]["data"]
    assert shown[0]["data"]["text/plain"].startswith("Progressive player: 3 chunks")
    assert kernel.value("(_.timings['chunks_done'], _.timings['stopped'])") == (3, False)
    # that the first chunk is playable before the last is made: test_paragraph_is_chunked_and_joined


@pytest.mark.slow
def test_stop_button_in_a_kernel_keeps_the_first_chunks(kernel):
    from kernel_utils import Kernel

    Kernel.ok(kernel.execute("%load_ext chatterbox_nb"))  # the interrupt must land in the say, not the load
    Kernel.ok(kernel.execute("%chatterbox load --weights dummy:reduced --device cpu --warmup off --wait"))
    text = "One sentence comes first here. Another sentence follows it. A third one goes on. The fourth ends it."
    # the stop button (SIGINT, as jupyter_client's interrupt sends it) at the first chunk's first token
    result = kernel.execute(Kernel.interrupting_at_token(1, "u = %chatterbox say " + repr(text)
                                                         + " --weights dummy:reduced --device cpu --max-tokens 6 --seed 1"))
    Kernel.ok(result)
    assert kernel.value("_interrupted_at") == [(0, 1)]  # chunk 0, token 1
    done, stopped = kernel.value("(u.timings['chunks_done'], u.timings['stopped'])")
    assert stopped is True and done == 1  # the chunk under way is kept, the rest skipped
    assert kernel.value("__import__('chatterbox_nb').history[-1] is u") is True
