"""Issue 24's papercuts, items 2, 4, 7, 8, 9, 10, 13, 14: each through the API or the magic."""

from __future__ import annotations

import logging

import numpy as np
import pytest

import chatterbox_nb as cnb
from chatterbox_nb.engine.models import loader

REDUCED = "dummy:reduced"


@pytest.fixture(scope="module")
def multilingual():
    """The reduced multilingual dummy in this process's registry."""
    cnb.load("multilingual", weights=REDUCED, device="cpu", dtype="float32", warmup="off", wait=True)
    (loaded,) = [m for m in loader.loaded_models()
                 if m.name == "multilingual" and m.weights == REDUCED and m.dtype == "float32"]
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
    from chatterbox_nb.engine.generation import synth

    cnb.load("english", weights=REDUCED, device="cpu", dtype="float32", warmup="off", wait=True)
    (loaded,) = [m for m in loader.loaded_models()
                 if m.name == "english" and m.weights == REDUCED and m.dtype == "float32"]
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


# -- item 2: options a model ignores are said, once per say; the panel greys them -----------


def _lines(caplog, logger: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == logger]


def test_turbo_says_once_which_options_it_ignores(caplog):
    caplog.set_level(logging.WARNING)
    # two sentences: two chunks through upstream's generate, still one line
    cnb.say("The first sentence is here. And here is the second one.", model="turbo", weights=REDUCED,
            device="cpu", dtype="float32", max_tokens=4, seed=0, exaggeration=0.9, cfg=0.3, min_p=0.1,
            temperature=0.7)
    notes = _lines(caplog, "chatterbox_nb")
    assert len(notes) == 1, notes
    assert "turbo ignores --exaggeration, --cfg, --min-p" in notes[0] and "temperature" not in notes[0]
    assert not [m for m in _lines(caplog, "chatterbox.tts_turbo") if "not supported" in m]  # upstream's, replaced
    caplog.clear()
    cnb.say("Nothing ignored here.", model="turbo", weights=REDUCED, device="cpu", dtype="float32",
            max_tokens=4, seed=0, temperature=0.7)
    assert not _lines(caplog, "chatterbox_nb")


def test_the_panel_greys_the_sliders_turbo_ignores():
    panel = cnb.ui(model="turbo")
    greyed = {k for k, s in panel.sliders.items() if s.disabled}
    assert greyed == {"exaggeration", "cfg", "min_p"}
    panel.model.value = "english"
    assert not any(s.disabled for s in panel.sliders.values())


# -- item 4: transformers' notice about T3's own flags is silenced, real warnings stay -------


_HF = "transformers.generation.configuration_utils"


@pytest.fixture
def hf_lines():
    """What transformers' generation-config logger emits (its library logger does not propagate)."""
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    logger = logging.getLogger(_HF)
    logger.addHandler(handler)
    yield lines
    logger.removeHandler(handler)


def test_multilingual_say_prints_no_generation_flags_notice(multilingual, hf_lines):
    from transformers.utils import logging as hf_logging

    hf_logging.warning_once.cache_clear()  # transformers says it once per process: make this say the first
    cnb.say("Bonjour tout le monde.", model="multilingual", lang="fr", weights=REDUCED, device="cpu",
            dtype="float32", max_tokens=4, seed=0)
    assert not [line for line in hf_lines if "generation flags" in line], hf_lines
    # the filter was scoped to the say: a warning after it is emitted
    logging.getLogger(_HF).warning("a real warning")
    assert hf_lines[-1:] == ["a real warning"]


def test_the_filter_keeps_other_lines_of_the_same_logger(hf_lines):
    from chatterbox_nb.engine.seams.logs import translated

    logger = logging.getLogger(_HF)
    with translated():
        logger.warning("The following generation flags are not valid and may be ignored: ['output_attentions'].")
        logger.warning("The following generation flags are not valid and may be ignored: ['top_k'].")
    assert hf_lines == ["The following generation flags are not valid and may be ignored: ['top_k']."]


# -- item 13: Chinese offline speaks without segmentation, in one line ----------------------


@pytest.fixture
def fresh_pkuseg(multilingual, monkeypatch, tmp_path):
    """No pkuseg model downloaded yet (PKUSEG_HOME empty), and the model's segmenter not built."""
    from spacy_pkuseg import config

    monkeypatch.setattr(config, "pkuseg_home", str(tmp_path / "pkuseg"))
    monkeypatch.setattr(multilingual.tts.tokenizer.cangjie_converter, "_segmenter", None)
    return multilingual


ZH = "今天天气很好。我们去公园散步吧！"


def test_chinese_offline_speaks_unsegmented_with_one_line(fresh_pkuseg, monkeypatch, caplog):
    import requests
    import spacy_pkuseg.download

    def offline(*args, **kwargs):
        raise requests.exceptions.ConnectionError("Failed to resolve 'github.com'")

    monkeypatch.setattr(spacy_pkuseg.download, "urlopen", offline)
    caplog.set_level(logging.WARNING)
    said = _spoken(monkeypatch, fresh_pkuseg)
    u = cnb.say(ZH, model="multilingual", lang="zh", weights=REDUCED, device="cpu", dtype="float32",
                max_tokens=4, seed=0)
    assert said == [ZH] and len(u.audio) > 0
    notes = _lines(caplog, "chatterbox_nb")
    assert any("without word segmentation" in n and "spacy_pkuseg.pkuseg()" in n for n in notes), notes
    caplog.clear()
    cnb.say(ZH, model="multilingual", lang="zh", weights=REDUCED, device="cpu", dtype="float32", max_tokens=4)
    assert not _lines(caplog, "chatterbox_nb")  # said once, not on every say


def test_chinese_with_network_announces_the_one_time_download(fresh_pkuseg, monkeypatch, caplog):
    import spacy_pkuseg

    cuts: list[str] = []

    class Downloaded:  # stands in for a pkuseg whose model download worked
        def cut(self, text):
            cuts.append(text)
            return [text[:2], text[2:]]

    monkeypatch.setattr(spacy_pkuseg, "pkuseg", Downloaded)
    caplog.set_level(logging.WARNING)
    for _ in range(2):
        cnb.say(ZH, model="multilingual", lang="zh", weights=REDUCED, device="cpu", dtype="float32", max_tokens=4)
    notes = _lines(caplog, "chatterbox_nb")
    assert len([n for n in notes if "downloading it once" in n]) == 1, notes
    assert cuts  # the segmenter was used


# -- item 14: Hebrew and Russian name what would make them speak better ---------------------


@pytest.mark.parametrize("lang, text, missing", [("he", "שלום עולם, מה שלומך היום?", "dicta_onnx"),
                                                 ("ru", "Привет, мир, как твои дела?", "russian_text_stresser")])
def test_missing_language_packages_are_named_in_one_line(multilingual, caplog, lang, text, missing):
    try:
        __import__(missing)
        pytest.skip(f"{missing} is installed here")
    except ImportError:
        pass
    caplog.set_level(logging.WARNING)
    # three sentences, three chunks: still one line
    cnb.say(f"{text} {text} {text}", model="multilingual", lang=lang, weights=REDUCED, device="cpu",
            dtype="float32", max_tokens=4, seed=0)
    assert not [r for r in caplog.records if "not available" in r.getMessage()]  # upstream's line, replaced
    notes = _lines(caplog, "chatterbox.models.tokenizers.tokenizer")
    assert len(notes) == 1 and missing in notes[0], notes
    if lang == "he":
        assert "pip install 'chatterbox_nb[languages]'" in notes[0]


# -- item 7: a long say shows what to expect from the start, refined as chunks finish --------

_WATCH_STATUS = """
from chatterbox_nb.display import live
seen = []
_init = live.LivePlayer.__init__
def _watching_init(self, *args, **kwargs):
    _init(self, *args, **kwargs)
    seen.append([self.player.status])
    self.player.observe(lambda change: seen[-1].append(change["new"]), names="status")
live.LivePlayer.__init__ = _watching_init
"""


def test_long_say_shows_its_estimate_from_the_start_in_a_kernel(kernel):
    kernel.ok(kernel.execute("import chatterbox_nb as cnb\n" + _WATCH_STATUS))
    text = " ".join(f"This is sentence number {i} of a rather longer text." for i in range(4))
    say = (f"u = cnb.say({text!r}, weights='dummy:reduced', device='cpu', dtype='float32', max_tokens=4, "
           "seed=0, stream=False)")
    for _ in range(2):
        kernel.ok(kernel.execute(say))
    first, second = kernel.value("seen")
    # before any chunk: chunks, expected audio and time, and where the time comes from
    assert first[0].startswith("4 chunks \u00b7 about ") and " of audio \u00b7 about " in first[0], first[0]
    assert "cautious guess" in first[0] and "generating chunk 1/4" in first[0]
    # refined as chunks finish, from this say's own pace
    assert any("chunk 1/4" in s and " left \u00b7 generating chunk 2/4" in s for s in first[1:]), first
    # the next say starts from the rate the first one measured
    assert "this model's rate here" in second[0], second[0]


# -- item 10: token progress counts what was made and the audio it holds, not up to the cap --


def test_panel_progress_shows_tokens_made_and_their_audio():
    import threading

    panel = cnb.ui("Hello there, this is a short test.", model="english", weights=REDUCED, device="cpu",
                   dtype="float32", max_tokens=40, seed=0)
    shown = threading.Event()
    panel.status.observe(lambda change: shown.set() if "speech tokens: 10" in change["new"] else None,
                         names="value")
    seen: list[str] = []
    original = panel._on_progress

    def on_progress(stage: str, tokens: int) -> None:
        original(stage, tokens)
        if stage == "tokens" and tokens == 10 and not seen:  # hold T3 at its 10th token until it is drawn
            shown.wait(60)
            seen.append(panel.status.value)

    panel._on_progress = on_progress
    panel.start()
    panel.wait(300)
    assert not panel.error, panel.error
    (line,) = seen
    assert "10 made, 0.4 s of audio" in line, line  # 25 speech tokens a second
    assert "/40" not in line and "/1000" not in line


def test_the_ignored_options_line_reaches_the_cell(kernel):
    kernel.ok(kernel.execute("%load_ext chatterbox_nb"))
    for _ in range(2):  # the second say: after upstream's imports configured logging in the kernel
        result = kernel.ok(kernel.execute('%chatterbox say "Hello there." -m turbo --exaggeration 0.9 --cfg 0.4 '
                                          "--weights dummy:reduced --device cpu --dtype float32 --max-tokens 4"))
        err = "".join(o.get("text", "") for o in result["outputs"] if o["type"] == "stream" and o["name"] == "stderr")
        lines = [line for line in err.splitlines() if "ignores" in line or "not supported" in line]
        # one line: the message alone, or after the level and logger where logging is configured
        assert len(lines) == 1, err
        assert lines[0].endswith("turbo ignores --exaggeration, --cfg (chatterbox-tts's turbo does not use them)."), err
