"""An overlapped say (issue #23 item 3, long text): S3Gen renders chunk i on the say's
render worker while T3 samples chunk i+1 (the first and the last chunk render in the say's
thread); the two stages share the threads; each stage draws from its own generator, so a
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
from chatterbox_nb.engine.request import SayOptions

REDUCED = "dummy:reduced"
CHUNKS = ["The first sentence is here.", "A second one follows it.", "And this is the third."]
TOKENS = 8
#: a generous bound on a wait for an event the code under test must cause
EVENT_WAIT_S = 60


@pytest.fixture(scope="module")
def model(english_reduced_float32):
    return english_reduced_float32


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


def test_a_render_draws_only_from_its_own_generator(model):
    """The worker renders while T3 samples from torch's own generator in the other thread:
    a render that also drew from it (HiFiGAN's sine phases once did, through
    `torch.distributions`) changed T3's tokens, and its own audio, with the timing."""
    import torch

    from chatterbox_nb.engine.generation import rng, synth
    from chatterbox_nb.engine.specs import SPEECH_VOCAB_SIZE

    tokens = (torch.arange(30) * 37) % SPEECH_VOCAB_SIZE
    audio = []
    for other_seed in (1, 2):
        torch.manual_seed(other_seed)  # what T3 would have left in torch's generator by then
        before = torch.random.get_rng_state()
        with model.use(user=True), synth.rendering(rng.stage_seeds(3)[1]):
            wav, _ = model.tts.s3gen.inference(speech_tokens=tokens, ref_dict=model.tts.conds.gen)
        assert torch.equal(torch.random.get_rng_state(), before)
        audio.append(wav.float().numpy())
    np.testing.assert_array_equal(*audio)


def test_t3_of_the_next_chunk_starts_while_the_chunk_before_renders(model, stages):
    events, before = stages
    t3_of_chunk_2 = threading.Event()
    waited: list[bool] = []
    before["t3"] = lambda chunk: t3_of_chunk_2.set() if chunk == 2 else None
    # S3Gen of chunk 1 goes on only once T3 has started chunk 2: sequential stages would never get there
    before["s3gen"] = lambda chunk: waited.append(t3_of_chunk_2.wait(EVENT_WAIT_S)) if chunk == 1 else None
    made = _run(model)
    assert waited == [True]
    assert [p.index for p in made] == [0, 1, 2]
    order = [(s, c, e) for s, c, e, _ in events]
    assert order.index(("t3", 2, "start")) < order.index(("s3gen", 1, "end"))
    # the first chunk renders before T3 goes on (its audio comes no later than a sequential say's)
    assert order.index(("s3gen", 0, "end")) < order.index(("t3", 1, "start"))
    here = threading.current_thread().name
    render = {c: name for s, c, e, name in events if s == "s3gen" and e == "start"}
    sampler = {name for s, _, _, name in events if s == "t3"}
    assert sampler == {here} and render[0] == render[2] == here  # the first and the last render here
    assert render[1].startswith("chatterbox_nb-render")  # the one between on the render worker
    assert not _render_threads()


def test_the_stages_share_the_threads_while_they_overlap(model, stages, monkeypatch):
    import torch

    events, before = stages
    threads: dict[int, int] = {}
    t3_of_chunk_2 = threading.Event()
    before["t3"] = lambda chunk: t3_of_chunk_2.set() if chunk == 2 else None

    def s3gen_starts(chunk: int) -> None:
        if chunk == 1:
            t3_of_chunk_2.wait(EVENT_WAIT_S)
        threads[chunk] = torch.get_num_threads()

    before["s3gen"] = s3gen_starts
    previous = torch.get_num_threads()
    torch.set_num_threads(4)
    try:
        _run(model)
        assert torch.get_num_threads() == 4  # the say's thread has all of them back
        later: list[int] = []
        fresh = threading.Thread(target=lambda: later.append(torch.get_num_threads()))
        fresh.start()
        fresh.join()
        assert later == [4]  # and so does the next say's thread
    finally:
        torch.set_num_threads(previous)
    # alone, a render takes every thread; beside T3 (a quarter of 4 for T3), the other three
    assert threads == {0: 4, 1: 3, 2: 4}


def test_a_render_takes_every_thread_at_its_next_estimator_call_once_t3_waits(model, stages, monkeypatch):
    """Chunk 1 renders on the worker: as it starts and at its first estimator call, beside T3
    (sampling chunk 2), it has the render's share, 3 of 4; T3 then finishes and waits for the
    worker, and the render's later calls get all 4: the core T3 left is not idle while the
    render ends. The float32 model's estimator has a runner for the say only."""
    import torch

    from chatterbox_nb.engine.generation import compiled
    from chatterbox_nb.engine.generation.overlap import ThreadShare
    from chatterbox_nb.engine.seams import estimator as seam

    events, before = stages
    t3_of_chunk_2, first_call, t3_waits = threading.Event(), threading.Event(), threading.Event()
    waited: list[bool] = []
    before["t3"] = lambda chunk: (t3_of_chunk_2.set(), waited.append(first_call.wait(EVENT_WAIT_S))) if chunk == 2 else None
    before["s3gen"] = lambda chunk: waited.append(t3_of_chunk_2.wait(EVENT_WAIT_S)) if chunk == 1 else None
    waiting, render_tick, ticks = ThreadShare.waiting, ThreadShare.render_tick, []

    def t3_done_waits(self) -> None:
        waiting(self)
        if ("t3", 2, "end", threading.current_thread().name) in events:  # not the drain before chunk 0's render
            t3_waits.set()

    def counted_tick(self) -> None:
        if len(ticks) == 2:  # the tick of the second estimator call comes once T3 waits
            waited.append(t3_waits.wait(EVENT_WAIT_S))
        render_tick(self)
        ticks.append(torch.get_num_threads())
        if len(ticks) == 2:
            first_call.set()  # T3 samples chunk 2 from here on

    monkeypatch.setattr(ThreadShare, "waiting", t3_done_waits)
    monkeypatch.setattr(ThreadShare, "render_tick", counted_tick)
    estimator = compiled.estimator(model.tts)
    assert seam.current(estimator) is None  # float32: upstream's forward
    previous = torch.get_num_threads()
    torch.set_num_threads(4)
    try:
        assert [p.index for p in _run(model)] == [0, 1, 2]
    finally:
        torch.set_num_threads(previous)
    assert waited and all(waited)
    assert ticks == [3, 3] + [4] * 9, ticks  # as it starts, then at each of the ten estimator calls
    assert seam.current(estimator) is None  # the say's runner is gone with it


def test_the_worker_removes_only_the_eager_runner_it_put_in_place():
    """A worker on a CPU puts an eager-mode runner on an estimator that has none, for the
    say, and removes it after; one that a precision (or a package) took on meanwhile stays."""
    import contextlib

    import torch
    from chatterbox.models.s3gen.decoder import ConditionalDecoder

    from chatterbox_nb.engine.generation.overlap import RenderWorker, ThreadShare
    from chatterbox_nb.engine.seams import estimator as seam

    est = ConditionalDecoder(in_channels=320, out_channels=80, causal=True, channels=[32], n_blocks=1,
                             num_mid_blocks=1, num_heads=2, attention_head_dim=16).eval()
    with RenderWorker("cpu", ThreadShare(2), contextlib.nullcontext, est):
        assert seam.current(est) is not None and seam.current(est).mode == "eager"
    assert seam.current(est) is None
    with RenderWorker("cpu", ThreadShare(2), contextlib.nullcontext, est):
        seam.runner(est).autocast = torch.bfloat16  # the precision's, from now on
    assert seam.current(est) is not None and seam.current(est).mode == "autocast"
    seam.remove(est)


def test_t3_takes_its_share_while_a_render_runs_and_all_when_none():
    import torch

    from chatterbox_nb.engine.generation.overlap import ThreadShare, t3_threads_beside

    assert [t3_threads_beside(n) for n in (1, 2, 3, 4, 8, 16)] == [1, 1, 1, 1, 2, 4]
    previous = torch.get_num_threads()
    share = ThreadShare(8)
    try:
        with share.sampling():
            share.t3_tick()
            assert torch.get_num_threads() == 8
            share.handed_over()
            share.t3_tick()
            assert torch.get_num_threads() == 2
            seen: list[int] = []

            def render() -> None:
                with share.render():
                    seen.append(torch.get_num_threads())

            worker = threading.Thread(target=render)
            worker.start()
            worker.join()
            assert seen == [6] and not share.rendering
            share.t3_tick()
            assert torch.get_num_threads() == 8
            share.handed_over()
            ticks: list[int] = []

            def render_while_t3_waits() -> None:
                with share.render():
                    share.render_tick()
                    ticks.append(torch.get_num_threads())
                    share.waiting()  # what drain() says in T3's thread
                    share.render_tick()
                    ticks.append(torch.get_num_threads())

            worker = threading.Thread(target=render_while_t3_waits)
            worker.start()
            worker.join()
            assert ticks == [6, 8]
    finally:
        torch.set_num_threads(previous)


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


# -- a streamed chunk, overlapped: the pieces between the first and the last on the worker -----------------------

def _streamed_run(model, seed: int = 4, overlap: bool = True) -> list[speak.Piece]:
    made: list[speak.Piece] = []
    opts = SayOptions.defaults(model.spec, seed=seed, max_tokens=40, stream=True)
    with model.use(user=True):
        speak.run(model, opts, CHUNKS[:1], emit=made.append, overlap=overlap)
    return made


@pytest.fixture
def small_pieces(monkeypatch):
    from chatterbox_nb.engine.generation import streaming

    monkeypatch.setattr(streaming, "piece_tokens", lambda spec, prompt, context: 8)


def test_an_overlapped_streamed_say_renders_its_middle_pieces_on_the_worker(model, stages, small_pieces):
    events, before = stages
    sampled: list[int] = []
    from chatterbox_nb.engine.generation import streaming

    record = streaming.Streamer.record
    tokens_when_rendered: dict[int, int] = {}

    def counting(self, token):
        sampled.append(1)
        return record(self, token)

    before["s3gen"] = lambda n: tokens_when_rendered.setdefault(n, len(sampled))
    import unittest.mock

    with unittest.mock.patch.object(streaming.Streamer, "record", counting):
        made = _streamed_run(model)
    assert len(made) >= 3 and [p.part for p in made] == list(range(len(made)))
    here = threading.current_thread().name
    starts = [(c, name) for s, c, e, name in events if s == "s3gen" and e == "start"]
    assert starts[0][1] == here and starts[-1][1] == here  # the first piece and the last here
    assert all(name.startswith("chatterbox_nb-render") for _, name in starts[1:-1])  # the rest on the worker
    assert made[-1].last and len(made[-1].kept) == sum(len(p.audio) for p in made)
    assert not _render_threads()


def test_a_seeded_overlapped_streamed_say_is_the_same_audio_run_after_run(model, small_pieces):
    import torch

    torch.manual_seed(1)
    first = _streamed_run(model)
    torch.manual_seed(2)
    torch.rand(1000)
    second = _streamed_run(model)
    assert len(first) == len(second) >= 3
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a.audio, b.audio)
    np.testing.assert_array_equal(first[-1].kept, second[-1].kept)
    assert not np.array_equal(_streamed_run(model, seed=5)[0].audio, first[0].audio)  # the seed decides it


def test_an_overlapped_streamed_say_samples_the_tokens_of_an_unstreamed_one(model, small_pieces):
    overlapped = _streamed_run(model, seed=6)
    plain: list[speak.Piece] = []
    with model.use(user=True):
        speak.run(model, SayOptions.defaults(model.spec, seed=6, max_tokens=40, stream=False), CHUNKS[:1],
                  emit=plain.append)
    assert sum(p.stages["speech_tokens"] for p in overlapped) == plain[0].stages["speech_tokens"] > 20
    assert sum(len(p.audio) for p in overlapped) == len(plain[0].audio)


# -- the setting: "auto" (the default) overlaps a streamed chunk's pieces, not a paragraph's chunks ---------------

def test_the_overlap_setting_is_auto_by_default_and_read_from_the_environment(monkeypatch):
    from chatterbox_nb.config import ENV_OVERLAP, Chatterbox

    monkeypatch.delenv(ENV_OVERLAP, raising=False)
    assert Chatterbox().overlap == "auto"
    for value, expected in (("1", True), ("on", True), ("0", False), ("off", False), ("auto", "auto")):
        monkeypatch.setenv(ENV_OVERLAP, value)
        assert Chatterbox().overlap == expected


def test_auto_overlaps_the_pieces_of_a_streamed_say_and_not_the_chunks_of_a_paragraph(model, stages, small_pieces,
                                                                                     monkeypatch):
    from chatterbox_nb import config

    events, _ = stages
    monkeypatch.setattr(config.settings(), "overlap", "auto")
    here = threading.current_thread().name

    def render_threads(run) -> list[str]:
        events.clear()
        run()
        return [name for s, _, e, name in events if s == "s3gen" and e == "start"]

    made: list[speak.Piece] = []
    streamed = SayOptions.defaults(model.spec, seed=4, max_tokens=40, stream=True)
    with model.use(user=True):
        pieces = render_threads(lambda: speak.run(model, streamed, CHUNKS[:1], emit=made.append))
        chunks = render_threads(lambda: speak.run(model, _opts(model), CHUNKS, emit=made.append, group=False))
    assert len(pieces) >= 3 and any(name != here for name in pieces)  # the middle pieces on the worker
    assert len(chunks) == 3 and set(chunks) == {here}  # a paragraph's chunks one after another
