"""`%chatterbox history` (table, Replay, Save), the `ui` panel driven from Python, the waveform."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from chatterbox_nb._state import STATE

SAY = "--weights dummy:reduced --device cpu --max-tokens 3"


@pytest.fixture(scope="module")
def two_utterances(english_reduced):
    """Two says for the module (each costs seconds); the history holds just them meanwhile."""
    import chatterbox_nb as cnb

    with STATE.lock:
        saved = list(STATE.history)
        STATE.history.clear()
    opts = {"weights": "dummy:reduced", "device": "cpu", "max_tokens": 3}
    cnb.say("First one", seed=1, **opts)
    cnb.say("Second one", seed=2, exaggeration=0.7, **opts)
    utts = list(STATE.history)
    yield utts
    with STATE.lock:
        STATE.history[:0] = saved


def test_history_table_lists_each_utterance(shell, two_utterances):
    table = shell.run_cell("%chatterbox history").result
    assert len(table) == 2
    text = repr(table)
    lines = text.splitlines()
    assert lines[0].split()[:4] == ["#", "text", "model", "voice"]
    assert "First one" in lines[1] and "Second one" in lines[2]
    assert "english" in lines[1] and "built-in" in lines[1] and "seed=1" in lines[1]
    assert "exag=0.7" in lines[2] and "max=3" in lines[2]
    bundle = table._repr_mimebundle_()
    assert bundle["text/plain"] == text
    assert "application/vnd.jupyter.widget-view+json" not in bundle  # no kernel: no widget reprs
    assert "<table" in bundle["text/html"]


def test_history_replay_and_save(two_utterances, tmp_path, monkeypatch):
    import ipywidgets as widgets

    from chatterbox_nb.controllers.history import history_table

    table = history_table()
    grid, replay = table.widget().children
    buttons = [w for w in grid.children if isinstance(w, widgets.HBox)]
    assert len(buttons) == 2
    play, path, save, note = buttons[1].children
    play.click()
    audio = [w for w in replay.children[1].children if isinstance(w, widgets.Audio)]
    assert audio and audio[0].value == two_utterances[1].wav_bytes()

    path.value = str(tmp_path / "out" / "second.wav")
    save.click()
    data, rate = sf.read(tmp_path / "out" / "second.wav", dtype="float32")
    assert rate == 24000 and np.array_equal(data, two_utterances[1].audio)
    assert "saved" in note.value

    monkeypatch.chdir(tmp_path)
    buttons[0].children[2].click()  # empty path box: the default name
    assert (tmp_path / "utterance_0.wav").exists()


def test_empty_history_says_so(shell):
    from chatterbox_nb.display.history import History

    assert "No utterances" in repr(History([]))


def test_ui_panel_generates_in_the_background(shell, english_reduced, monkeypatch):
    import chatterbox_nb as cnb
    from chatterbox_nb.controllers import panel as panel_module

    monkeypatch.setattr(panel_module, "_TICK_S", 0.0001)  # the progress line redrawn all the time

    panel = shell.run_cell(f"%chatterbox ui {SAY} --seed 5").result
    assert "needs a notebook" in panel._repr_mimebundle_()["text/plain"]
    assert panel.lang.disabled and panel.voice.options[0] == "built-in"
    panel.text.value = "From the panel"
    before = len(cnb.history)
    seen = []
    panel._on_progress = lambda stage, n: seen.append((stage, n))  # the per-token hook
    panel.generate_button.click()
    assert panel.generate_button.disabled and panel.generate_button.description.startswith("Generating")
    utt = panel.wait(120)
    assert not panel.busy and not panel.generate_button.disabled
    assert panel.error == "" and "done in" in panel.status.value  # the outcome, not a late progress line
    assert utt.text == "From the panel" and utt.params["seed"] == 5 and utt.params["max_tokens"] == 3
    assert len(cnb.history) == before + 1 and cnb.history[-1] is utt
    assert panel.result.children and "english" in panel.models.value
    assert ("tokens", 1) in seen and seen[-1][0] == "vocoder"


def test_ui_panel_errors_are_one_line(shell, english_reduced):
    from chatterbox_nb.controllers.panel import ui

    panel = ui(weights="dummy:reduced", device="cpu", max_tokens=3)
    panel.start()
    panel.wait(60)
    assert "Nothing to say" in panel.error and "cnb-ui-error" in panel.status.value
    panel.text.value, panel.seed.value = "hi", "abc"
    panel.start()
    panel.wait(60)
    assert "seed must be a whole number" in panel.error
    assert panel.last is None and not panel.generate_button.disabled


def test_waveform_svg_is_the_envelope():
    from chatterbox_nb.display.waveform import envelope, waveform_svg

    audio = np.sin(np.linspace(0, 200, 48_000)).astype(np.float32)
    low, high = envelope(audio)
    assert len(low) == len(high) == 600
    assert high.max() == pytest.approx(1.0, abs=1e-3) and low.min() == pytest.approx(-1.0, abs=1e-3)
    svg = waveform_svg(audio)
    assert svg.startswith("<svg") and svg.count(",") == 2 * 600 + 1
    assert "<polyline" in waveform_svg(np.zeros(0, np.float32))


def test_ui_panel_keeps_a_long_texts_progressive_player(english_reduced, monkeypatch):
    """Several sentences: the live player goes into the panel (not the last cell), and stays."""
    from chatterbox_nb.display import player
    from chatterbox_nb.display.live import LivePlayer
    from chatterbox_nb.controllers.panel import ui

    shown = []
    monkeypatch.setattr(player, "_in_kernel", lambda: True)  # as in a kernel: say shows a live player
    monkeypatch.setattr(LivePlayer, "_repr_mimebundle_", lambda self, *a, **k: shown.append(self) or {})
    panel = ui(weights="dummy:reduced", device="cpu", max_tokens=3)
    panel.text.value = "The first sentence is here. The second sentence follows it."
    panel.start()
    utt = panel.wait(180)
    assert panel.error == "" and utt.params["chunks"] == 2
    (box,) = panel.result.children
    assert box.children[-2].done and "2 chunks" in box.children[-2].status  # the ChunkPlayer, finished
    assert "total" in box.children[-1].value  # its timing bars
    assert shown == []  # never displayed through IPython


# -- the panel is made from the declared say options (issue 22, item 2) ----------------------


def test_ui_panel_widgets_are_the_declared_options():
    """Each say option with a place in the panel has its widget there (main or advanced), the
    numeric ones with the declared range and step: a slider's ends are values the parser
    takes, one step beyond them it refuses. The others are passed to every say as given.
    (Before, the panel had a slider table of its own: exaggeration 0-2, cfg 0-1, against
    0-10 in the parser, and a `max=4096` of its own.)"""
    import ipywidgets as widgets

    import chatterbox_nb as cnb
    from chatterbox_nb import options
    from chatterbox_nb.errors import InvalidOption

    panel = cnb.ui(weights="dummy:reduced", device="cpu")
    (accordion,) = [w for w in panel.box.children if isinstance(w, widgets.Accordion)]
    advanced = accordion.children[0].children
    numeric = 0
    for o in options.SAY_OPTIONS:
        if o.panel is None:
            assert o.name in panel.fixed and not hasattr(panel, o.name), o.name
            continue
        w = panel.sliders[o.name] if o.type is float else getattr(panel, o.name)  # the panel's widget of that name
        assert (w in advanced) == (o.panel == "advanced"), o.name
        if o.type is float:
            assert isinstance(w, widgets.FloatSlider), o.name
            low = o.low + o.step if o.above else o.low
            assert (w.min, w.max, w.step) == pytest.approx((low, o.high, o.step)), o.name
        elif o.type is int and o.default is not None:
            assert isinstance(w, widgets.BoundedIntText), o.name
            assert (w.min, w.max) == (o.low, o.high), o.name
        else:
            continue
        numeric += 1
        assert o.check(w.min) == pytest.approx(w.min) and o.check(w.max) == pytest.approx(w.max), o.name
        beyond = o.step or 1
        for value in (w.min - beyond, w.max + beyond):
            with pytest.raises(InvalidOption, match=f"--{o.name.replace('_', '-')} must be"):
                o.check(value)
    assert numeric >= 7  # six sampling sliders and the token cap


def test_ui_presets_out_of_range_are_refused_not_clamped(shell):
    """A preset the slider cannot show is the parser's one sentence (before, the slider
    silently clamped exaggeration 5 to 2)."""
    from IPython.core.error import UsageError

    import chatterbox_nb as cnb
    from chatterbox_nb.errors import InvalidOption

    with pytest.raises(InvalidOption, match=r"--exaggeration must be between 0 and 2, not 5"):
        cnb.ui(exaggeration=5)
    with pytest.raises(UsageError, match=r"--cfg must be between 0 and 1, not 3"):
        shell.run_line_magic("chatterbox", "ui --cfg 3")
    with pytest.raises(InvalidOption, match=r"--max-tokens must be between 1 and 4096"):
        cnb.ui(max_tokens=5000)


def test_ui_and_batch_refuse_a_misspelt_option_and_lose_nothing(shell, english_reduced, tmp_path):
    """`temprature=0.5` is one sentence naming the right option, before any work: the models
    in memory, the history and the output folder stay as they were."""
    import chatterbox_nb as cnb
    from chatterbox_nb.errors import UnknownKeyword

    with STATE.lock:
        models, history = dict(STATE.models), list(STATE.history)
    with pytest.raises(UnknownKeyword, match=r"^ui\(\) has no option 'temprature': did you mean temperature\?$"):
        cnb.ui(temprature=0.5)
    with pytest.raises(UnknownKeyword, match=r"^batch\(\) has no option 'temprature': did you mean temperature\?$"):
        cnb.batch(["Hello."], tmp_path / "out", temprature=0.5, weights="dummy:reduced", device="cpu")
    with STATE.lock:
        assert STATE.models == models and STATE.history == history
    assert english_reduced in STATE.models.values()
    assert not (tmp_path / "out").exists()
