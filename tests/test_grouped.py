"""A paragraph rendered in groups (issue #23, long text): the first sentence renders alone,
the later ones are held after their T3 and rendered together, one S3Gen call a group,
until a group holds as many tokens as the voice's reference prompt. T3 samples what a
sequential say samples; each sentence keeps its own samples; the stop keeps its meaning.

S3Gen's calls are watched through a spy on upstream's class; nothing here compares times.
"""

from __future__ import annotations

import numpy as np
import pytest

import chatterbox_nb as cnb
from chatterbox_nb import config, progressive
from chatterbox_nb.engine.generation import speak, stopping
from chatterbox_nb.engine.generation.stopping import Stop
from chatterbox_nb.engine.request import SayOptions
from chatterbox_nb.engine.specs import SAMPLES_PER_TOKEN

REDUCED = "dummy:reduced"
CHUNKS = ["The first sentence is here.", "A second one follows it.", "And this is the third.",
          "A fourth comes after.", "The fifth ends it all."]
TOKENS = 8
FADE = 24000 // 50  # upstream's S3Gen starts every render with 20 ms of silence


@pytest.fixture(scope="module")
def model(english_reduced_float32):
    return english_reduced_float32


@pytest.fixture
def s3gen_calls(monkeypatch, model) -> list[int]:
    """The number of tokens of each S3Gen call, in order."""
    calls: list[int] = []
    cls = type(model.tts.s3gen)
    original = cls.inference

    def inference(self, *args, **kwargs):
        calls.append(int(kwargs.get("speech_tokens", args[0] if args else None).numel()))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cls, "inference", inference)
    return calls


def _run(model, group: bool, chunks=CHUNKS, stop: Stop | None = None, **opts) -> list[speak.Piece]:
    made: list[speak.Piece] = []
    options = SayOptions.defaults(model.spec, **{"seed": 7, "max_tokens": TOKENS, "stream": False, **opts})
    with model.use(user=True):
        speak.run(model, options, chunks, emit=made.append, stop=stop, overlap=False, group=group)
    return made


def _tokens(pieces: list[speak.Piece]) -> list[int]:
    return [p.stages["speech_tokens"] for p in pieces]


def test_later_sentences_render_in_one_call_and_keep_their_own_tokens_and_samples(model, s3gen_calls):
    plain = _run(model, group=False)
    assert len(s3gen_calls) == len(CHUNKS)  # one call a sentence
    s3gen_calls.clear()
    grouped = _run(model, group=True)
    # the reduced dummy's voice prompt is 50 tokens: the four later sentences (8 tokens at most each) are one group
    assert s3gen_calls == [_tokens(grouped)[0], sum(_tokens(grouped)[1:])]
    assert [p.index for p in grouped] == [p.index for p in plain] == list(range(len(CHUNKS)))
    assert _tokens(grouped) == _tokens(plain)  # T3 sampled the same tokens as a sequential say
    for g, p in zip(grouped, plain):
        assert len(g.audio) == len(p.audio) == g.stages["speech_tokens"] * SAMPLES_PER_TOKEN
        assert g.text == p.text and g.stages["s3gen_s"] > 0
        # each sentence starts as a render of its own does: 20 ms of silence (but the watermark), then the fade in
        loud = np.abs(g.audio).max()
        assert np.abs(g.audio[:FADE]).max() < 0.05 * loud < np.abs(g.audio[FADE:2 * FADE]).max()
    np.testing.assert_array_equal(grouped[0].audio, plain[0].audio)  # the first renders alone, as before
    import torch

    torch.manual_seed(2)  # what the process-wide generator did before plays no part: seeded, the same audio
    torch.rand(1000)
    for again, first in zip(_run(model, group=True), grouped, strict=True):
        np.testing.assert_array_equal(again.audio, first.audio)
    assert not np.array_equal(grouped[1].audio, plain[1].audio)  # the others with their group
    # the sentence before a cut fades out to silence (the last one ends as its render does)
    before_cut = grouped[1].audio
    assert abs(before_cut[-1]) < 0.05 * np.abs(before_cut).max() < np.abs(before_cut[-2 * FADE:-FADE]).max()


def test_a_group_closes_once_it_holds_as_many_tokens_as_the_prompt(model, s3gen_calls):
    grouped = _run(model, group=True, prompt_tokens=10)  # the voice prompt cut to 10 tokens
    counts, expected, group = _tokens(grouped), [_tokens(grouped)[0]], 0
    for n in counts[1:]:
        group += n
        if group >= 10:
            expected.append(group)
            group = 0
    expected += [group] if group else []
    assert s3gen_calls == expected and 2 < len(expected) < len(CHUNKS), (counts, s3gen_calls)


def test_a_stop_after_the_chunk_renders_what_is_held(model, s3gen_calls):
    stop = Stop()

    def progress(stage: str, n: int) -> None:
        if stage == "tokens" and stop.chunk == 2:
            stop.after_chunk()  # while T3 samples the third sentence; the second is held

    with stopping.watching(progress):
        made = _run(model, group=True, stop=stop)
    assert [p.index for p in made] == [0, 1, 2]  # the chunk under way is kept, nothing after it
    assert s3gen_calls == [_tokens(made)[0], sum(_tokens(made)[1:])]  # what was held rendered in one call
    assert all(len(p.audio) == p.stages["speech_tokens"] * SAMPLES_PER_TOKEN for p in made)


def test_the_stop_button_during_the_last_sentence_s_t3_cuts_it(model, monkeypatch):
    """The last sentence's T3 may run before the one before it was emitted (held in its
    group): a press then cuts it at its next token, as it does in a sequential say."""
    monkeypatch.setattr(config.settings(), "group_renders", True)

    def progress(stage: str, n: int) -> None:
        (run,) = progressive.running()
        if stage == "tokens" and n == 2 and run.stop_request.chunk == 2 and not run.stopped:
            assert run.done == 1  # the second sentence is held: not emitted yet
            run.stop()

    with stopping.watching(progress):
        cut = cnb.say(" ".join(CHUNKS[:3]), weights=REDUCED, device="cpu", dtype="float32", max_tokens=16, seed=5)
    assert cut.timings["stopped"] is True and cut.timings["chunks_done"] == 3
    last = round((cut.chunks[2].end - cut.chunks[2].start) * 24000)
    assert 0 < last <= 2 * SAMPLES_PER_TOKEN  # cut at its next token, not made to the cap


def test_groups_are_on_where_auto_says_and_read_from_the_environment(model, monkeypatch):
    assert speak.groups_renders(model, "auto") is True  # a CPU
    assert speak.groups_renders(model, False) is False
    monkeypatch.delenv(config.ENV_GROUP_RENDERS, raising=False)
    assert config.Chatterbox().group_renders == "auto"
    for value, expected in (("0", False), ("off", False), ("1", True), ("auto", "auto")):
        monkeypatch.setenv(config.ENV_GROUP_RENDERS, value)
        assert config.Chatterbox().group_renders == expected
