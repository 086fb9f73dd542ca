"""Issue 24's papercuts, items 2, 4, 7, 8, 9, 10, 13, 14: each through the API or the magic."""

from __future__ import annotations

import numpy as np
import pytest

import chatterbox_nb as cnb
from chatterbox_nb.engine import loader

REDUCED = "dummy:reduced"


@pytest.fixture(scope="module")
def multilingual():
    """The reduced multilingual dummy in this process's registry."""
    cnb.load("multilingual", weights=REDUCED, device="cpu", dtype="float32", warmup="off", wait=True)
    (loaded,) = [m for m in loader.loaded_models() if m.name == "multilingual"]
    yield loaded
    cnb.unload("multilingual")


def _spoken(monkeypatch, loaded) -> list[str]:
    """The texts the model's upstream `generate` is asked to speak, as they come."""
    said: list[str] = []
    original = type(loaded.tts).generate

    def generate(self, text, *args, **kwargs):
        said.append(text)
        return original(self, text, *args, **kwargs)

    monkeypatch.setattr(type(loaded.tts), "generate", generate)
    return said


# -- item 8: chunks joined the way the language writes them ---------------------------------


def test_japanese_sentences_are_joined_without_spaces(multilingual, monkeypatch):
    said = _spoken(monkeypatch, multilingual)
    text = "今日はいい天気です。公園に行きましょう。"  # two short sentences: one chunk
    cnb.say(text, model="multilingual", lang="ja", weights=REDUCED, device="cpu", dtype="float32",
            max_tokens=4, seed=0)
    assert said == [text]


# -- item 9: every warm-up level but off warms the watermarker ------------------------------


def test_light_warmup_runs_the_watermarker_even_when_its_say_is_silent(monkeypatch):
    from chatterbox_nb.engine import synth

    cnb.load("english", weights=REDUCED, device="cpu", dtype="float32", warmup="off", wait=True)
    (loaded,) = [m for m in loader.loaded_models() if m.name == "english" and m.source.is_dummy]
    marked: list[int] = []
    cls = type(loaded.tts.watermarker)
    original = cls.apply_watermark

    def apply_watermark(self, signal, *args, **kwargs):
        if np.any(signal):
            marked.append(len(signal))
        return original(self, signal, *args, **kwargs)

    monkeypatch.setattr(cls, "apply_watermark", apply_watermark)
    # a short warm-up say can end as silence (a real model may stop at once on "Hi."), which the
    # watermark skips: warm-up must warm it anyway
    monkeypatch.setattr(synth, "MIN_RENDERABLE_TOKENS", 10**6)
    report = cnb.warmup("english", level="light", wait=True, weights=REDUCED, device="cpu", dtype="float32")
    assert marked, "the light warm-up never ran the watermarker"
    assert report.warmup["watermarker_s"] > 0
