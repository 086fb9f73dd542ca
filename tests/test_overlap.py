"""An overlapped say (issue #23 item 3, long text): S3Gen renders chunk i on the say's
render worker while T3 samples chunk i+1; each stage draws from its own generator, so a
seeded say is the same audio run after run; the stop keeps its meaning; no thread is left.

Stages are watched through spies on upstream's classes that record events; nothing here
waits on or compares wall-clock times.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest

import chatterbox_nb as cnb
from chatterbox_nb import progressive
from chatterbox_nb.engine.generation import speak
from chatterbox_nb.engine.generation.stopping import Stop
from chatterbox_nb.engine.models import loader
from chatterbox_nb.engine.request import SayOptions

REDUCED = "dummy:reduced"
CHUNKS = ["The first sentence is here.", "A second one follows it.", "And this is the third."]
TOKENS = 8
#: a generous bound on a wait for an event the code under test must cause
EVENT_WAIT_S = 60


@pytest.fixture(scope="module")
def model():
    cnb.load("english", weights=REDUCED, device="cpu", dtype="float32", warmup="off", wait=True)
    (found,) = [m for m in loader.loaded_models()
                if m.name == "english" and m.weights == REDUCED and m.device == "cpu" and m.dtype == "float32"]
    return found


@pytest.fixture
def stages(monkeypatch, model):
    """Spies on T3's sampler and S3Gen: `events` lists (stage, chunk, "start"/"end", thread
    name); `before[stage]` may hold a callback `f(chunk)` run as that stage starts."""
    events: list[tuple[str, int, str, str]] = []
    before: dict[str, object] = {}
    count = {"t3": 0, "s3gen": 0}
    lock = threading.Lock()

    def spy(stage: str, original):
        def method(self, *args, **kwargs):
            with lock:
                chunk = count[stage]
                count[stage] += 1
                events.append((stage, chunk, "start", threading.current_thread().name))
            if stage in before:
                before[stage](chunk)
            try:
                return original(self, *args, **kwargs)
            finally:
                with lock:
                    events.append((stage, chunk, "end", threading.current_thread().name))

        return method

    t3_cls, s3_cls = type(model.tts.t3), type(model.tts.s3gen)
    monkeypatch.setattr(t3_cls, "inference", spy("t3", t3_cls.inference))
    monkeypatch.setattr(s3_cls, "inference", spy("s3gen", s3_cls.inference))
    return events, before


def _opts(model, seed: int = 7) -> SayOptions:
    return SayOptions.defaults(model.spec, seed=seed, max_tokens=TOKENS, stream=False)


def _run(model, chunks=CHUNKS, stop: Stop | None = None, seed: int = 7, overlap: bool = True) -> list[speak.Piece]:
    made: list[speak.Piece] = []
    with model.use(user=True):
        speak.run(model, _opts(model, seed), chunks, emit=made.append, stop=stop, overlap=overlap)
    return made


def _render_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("chatterbox_nb-render")]


def test_a_seeded_overlapped_say_is_the_same_audio_run_after_run(model):
    import torch

    torch.manual_seed(1)
    first = _run(model)
    torch.manual_seed(2)  # the process-wide generator plays no part
    torch.rand(1000)
    second = _run(model)
    assert [p.index for p in first] == [p.index for p in second] == [0, 1, 2]
    for a, b in zip(first, second):
        assert len(a.audio) > 0
        np.testing.assert_array_equal(a.audio, b.audio)
    assert not np.array_equal(first[0].audio[:2000], first[1].audio[:2000])  # each chunk its own seed
    assert not np.array_equal(_run(model, seed=8)[0].audio, first[0].audio)  # and the seed matters


def test_t3_of_the_next_chunk_starts_while_the_chunk_before_renders(model, stages):
    events, before = stages
    t3_of_chunk_1 = threading.Event()
    waited: list[bool] = []
    before["t3"] = lambda chunk: t3_of_chunk_1.set() if chunk == 1 else None
    # S3Gen of chunk 0 goes on only once T3 has started chunk 1: sequential stages would never get there
    before["s3gen"] = lambda chunk: waited.append(t3_of_chunk_1.wait(EVENT_WAIT_S)) if chunk == 0 else None
    made = _run(model)
    assert waited == [True]
    assert [p.index for p in made] == [0, 1, 2]
    order = [(s, c, e) for s, c, e, _ in events]
    assert order.index(("t3", 1, "start")) < order.index(("s3gen", 0, "end"))
    render = {name for s, _, _, name in events if s == "s3gen"}
    sampler = {name for s, _, _, name in events if s == "t3"}
    assert len(render) == 1 and render.isdisjoint(sampler)  # S3Gen on the render worker, T3 here
    assert not _render_threads()


def test_a_one_chunk_say_has_no_second_thread(model, stages):
    events, _ = stages
    made = _run(model, chunks=CHUNKS[:1])
    assert len(made) == 1
    assert {name for *_, name in events} == {threading.current_thread().name}


def _stopped_in_chunk_1(model: Any, stages: Any, level: str) -> list[Any]:
    """The pieces of an overlapped say whose Stop is raised to `level` as T3 starts chunk 1."""
    _, before = stages
    stop = Stop()
    before["t3"] = lambda chunk: getattr(stop, level)() if chunk == 1 else None
    return _run(model, stop=stop)


def test_stop_after_the_chunk_keeps_the_chunk_under_way_and_nothing_after(model, stages):
    events, _ = stages
    made = _stopped_in_chunk_1(model, stages, "after_chunk")
    assert [p.index for p in made] == [0, 1]
    assert all(len(p.audio) > 0 for p in made)  # both rendered and kept
    assert ("t3", 2, "start") not in [(s, c, e) for s, c, e, _ in events]
    assert not _render_threads()


def test_stop_at_the_next_token_renders_what_was_sampled(model, stages):
    made = _stopped_in_chunk_1(model, stages, "at_next_token")
    assert [p.index for p in made] == [0, 1]
    assert made[1].stages["speech_tokens"] < made[0].stages["speech_tokens"]  # cut, still rendered
    assert not _render_threads()


def test_a_failed_render_ends_the_say_with_its_error_and_no_thread_left(model, stages):
    _, before = stages

    def fail(chunk: int) -> None:
        if chunk == 1:
            raise RuntimeError("render broke")

    before["s3gen"] = fail
    made: list[speak.Piece] = []
    with pytest.raises(RuntimeError, match="render broke"), model.use(user=True):
        speak.run(model, _opts(model), CHUNKS, emit=made.append, overlap=True)
    assert [p.index for p in made] == [0]  # nothing after the failed chunk
    assert not _render_threads()
    assert len(_run(model)) == 3  # the model still speaks


def test_cnb_stop_keeps_the_chunks_made_in_an_overlapped_say(model, stages, monkeypatch):
    _, before = stages
    from chatterbox_nb import config

    monkeypatch.setattr(config.settings(), "overlap", True)
    stoppers: list[threading.Thread] = []

    def stop_from_outside(chunk: int) -> None:
        # cnb.stop() waits for the say, so it is called from another thread (as from the notebook)
        if chunk == 1:
            (run,) = progressive.running()
            stoppers.append(threading.Thread(target=cnb.stop))
            stoppers[0].start()
            while not run.stopped and stoppers[0].is_alive():  # until the say's Stop is asked
                time.sleep(0.01)

    before["t3"] = stop_from_outside
    u = cnb.say(" ".join(CHUNKS), weights=REDUCED, device="cpu", dtype="float32", max_tokens=TOKENS, seed=3)
    stoppers[0].join(EVENT_WAIT_S)
    assert u.timings["chunks_done"] == 2  # the chunk under way when it was asked is kept
    assert not _render_threads()
