"""`cnb.compare` / `%chatterbox compare`: the product of values, each cell its say bit for
bit, the cap, bad values (one sentence, nothing lost), history tags, stopping, and in a
real kernel: the grid shows at once and fills while other cells run; the saved notebook
keeps a static grid with an `<audio>` per cell. Reduced dummy, float32, a few tokens."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from IPython.core.error import UsageError

import chatterbox_nb as cnb
from chatterbox_nb import config
from chatterbox_nb._state import STATE
from chatterbox_nb.comparison import plan
from chatterbox_nb.errors import InvalidOption, UnknownKeyword, UnknownVoice

FIXED = {"weights": "dummy:reduced", "device": "cpu", "dtype": "float32", "max_tokens": 3}
W = "--weights dummy:reduced --device cpu --dtype float32 --max-tokens 3"


def test_cells_are_the_product_and_each_is_the_say_it_shows(english_reduced, shell):
    cmp = cnb.compare("Hello there.", seed=[0, 1], exaggeration=[0.3, 0.7], **FIXED)
    assert [c.values for c in cmp.cells] == [
        {"seed": 0, "exaggeration": 0.3}, {"seed": 0, "exaggeration": 0.7},
        {"seed": 1, "exaggeration": 0.3}, {"seed": 1, "exaggeration": 0.7},
    ]
    assert [c.state for c in cmp.cells] == ["done"] * 4 and len(cmp.utterances) == 4
    for cell in cmp.cells:  # every other option held equal
        assert {k: v for k, v in cell.kwargs.items() if k not in cell.values} == FIXED
    assert not np.array_equal(cmp.cells[0].utterance.audio, cmp.cells[2].utterance.audio)  # the seed tells
    for cell in (cmp.cells[1], cmp.cells[2]):  # the say line it shows makes it again, bit for bit
        line = cell.say_line()
        assert line.startswith("%chatterbox say 'Hello there.' ") and "--seed" in line, line
        again = shell.run_line_magic("chatterbox", line.removeprefix("%chatterbox "))
        assert np.array_equal(again.audio, cell.utterance.audio), line
        assert again.params["seed"] == cell.utterance.params["seed"]


def test_every_cell_joins_the_history_tagged_with_its_comparison(english_reduced):
    before = len(cnb.history)
    cmp = cnb.compare("Tagged.", seed=[3, 4], **FIXED)
    made = cnb.history[before:]
    assert [u for u in made] == cmp.utterances
    assert {STATE.history.tag_of(u) for u in made} == {cmp.name}
    rows = cmp.rows()
    assert [r["seed"] for r in rows] == [3, 4] and all(r["audio_s"] > 0 and r["rms_dbfs"] < 0 for r in rows)
    cmp.favourite(1)
    assert cmp.favourites == [cmp.cells[1]]
    pd = pytest.importorskip("pandas")
    frame = cmp.to_dataframe()
    assert isinstance(frame, pd.DataFrame) and list(frame["favourite"]) == [False, True]


def test_without_a_seed_one_is_drawn_for_every_cell():
    _, varied, cells = plan("Hi.", {"exaggeration": [0.3, 0.5], **FIXED})
    seeds = {c.kwargs["seed"] for c in cells}
    assert len(seeds) == 1 and isinstance(seeds.pop(), int) and list(varied) == ["exaggeration"]


def test_the_magic_takes_several_values_per_option(english_reduced, shell):
    cmp = shell.run_line_magic("chatterbox", f'compare "Three seeds." --seed 0 1 2 --temperature 0.5 0.9 {W}')
    assert list(cmp.varied) == ["temperature", "seed"]  # in SAY_OPTIONS' order
    assert len(cmp.cells) == 6 and {c.state for c in cmp.cells} == {"done"}
    assert [c.values["seed"] for c in cmp.cells] == [0, 1, 2, 0, 1, 2]
    assert all(c.kwargs["max_tokens"] == 3 for c in cmp.cells)


def test_a_model_that_takes_no_language_speaks_without_it():
    """`-m english multilingual --lang fr`: the language goes to multilingual only."""
    _, _, cells = plan("Bonjour.", {"model": ["english", "multilingual"], "lang": "fr", "voice": ["built-in"], "seed": 1})
    english, multilingual = cells
    assert "lang" not in english.kwargs and "--lang" not in english.say_line()
    assert multilingual.kwargs["lang"] == "fr" and "--lang fr" in multilingual.say_line()
    assert "voice" not in english.kwargs  # built-in: the model's own voice, no -v in its line


def test_the_cap_is_one_sentence_and_makes_nothing(shell, monkeypatch):
    monkeypatch.setattr(config.settings(), "compare_max_cells", 4)
    before = len(cnb.history)
    with pytest.raises(InvalidOption, match=r"6 cells \(3 seed × 2 exaggeration\), more than the cap of 4"):
        cnb.compare("Too many.", seed=[0, 1, 2], exaggeration=[0.3, 0.7], **FIXED)
    with pytest.raises(UsageError, match="compare_max_cells"):
        shell.run_line_magic("chatterbox", f'compare "Too many." --seed 0 1 2 --exaggeration 0.3 0.7 {W}')
    assert len(cnb.history) == before


@pytest.mark.parametrize("given, error, words", [
    ({"exaggeration": [0.3, 99]}, InvalidOption, "--exaggeration must be between 0 and 2, not 99"),
    ({"voice": ["nobody-here", "built-in"]}, UnknownVoice, "nobody-here"),
    ({"temprature": [0.5, 0.7]}, UnknownKeyword, "did you mean temperature"),
    ({"out": "x.wav"}, UnknownKeyword, "out is a say option that compare"),
    ({"seed": []}, InvalidOption, "--seed was given no values"),
    ({"model": ["english", "klingon"]}, InvalidOption, "Unknown model 'klingon'"),
])
def test_bad_values_are_one_sentence_and_lose_nothing(english_reduced, given, error, words):
    before, models = len(cnb.history), set(STATE.models)
    with pytest.raises(error, match=words):
        cnb.compare("Bad.", **{**FIXED, **given})
    assert len(cnb.history) == before and set(STATE.models) == models and english_reduced.tts is not None


@pytest.mark.parametrize("line, words", [
    ('compare "Bad." --seed 0 x', "invalid int value: 'x'"),
    ('compare "Bad." --exaggeration 0.3 12', "--exaggeration must be between 0 and 2, not 12"),
    ("compare --seed 0 1", "Nothing to say"),
])
def test_bad_values_in_the_magic_are_a_usage_error(shell, line, words):
    before = len(cnb.history)
    with pytest.raises(UsageError, match=words):
        shell.run_line_magic("chatterbox", f"{line} {W}")
    assert len(cnb.history) == before


def test_stop_keeps_the_cells_made(english_reduced):
    first = threading.Event()
    cmp = cnb.compare("Stop me.", seed=[0, 1, 2, 3], wait=False, **FIXED)
    cmp.on_change(lambda cell: first.set() if cell is not None and cell.utterance is not None else None)
    assert cmp.cells[0].utterance is not None or first.wait(120)
    assert cnb.stop() >= 1  # the comparison is listed with the says that cnb.stop() stops
    cmp.wait()
    states = [c.state for c in cmp.cells]
    assert states[0] == "done" and states[-1] == "skipped", states
    assert all(c.utterance is not None for c in cmp.cells if c.state == "done")
    assert cnb.stop() == 0


# -- in a real kernel ---------------------------------------------------------------------

KSETUP = (
    "%load_ext chatterbox_nb\n"
    "import chatterbox_nb as cnb\n"
    "from chatterbox_nb._state import STATE\n"
    "F = dict(weights='dummy:reduced', device='cpu', dtype='float32', max_tokens=3)\n"
    "cnb.load('english', weights='dummy:reduced', device='cpu', dtype='float32', warmup='off', wait=True);"
)


def _data(result: dict, key: str) -> list:
    return [o["data"][key] for o in result["outputs"] if key in o.get("data", {})]


def test_the_grid_shows_at_once_and_other_cells_run_while_it_fills(kernel):
    kernel.ok(kernel.execute(KSETUP))
    # every model held (as by a say in another thread): no cell can be made until it is let go
    kernel.ok(kernel.execute("STATE.run_lock.acquire();"))
    shown = kernel.ok(kernel.execute(f'cmp = %chatterbox compare "Fill me." --seed 0 1 2 {W}'))
    assert _data(shown, "application/vnd.jupyter.widget-view+json"), shown["outputs"]  # the grid, at once
    (copy,) = [h for h in _data(shown, "text/html") if "cnb-saved-only" in h]
    assert "chatterbox-compare" in copy and "<audio" not in copy  # placeholders: nothing made yet
    # this cell runs while the grid waits to fill: the kernel is free
    assert kernel.value("(cmp.done, [c.utterance is None for c in cmp.cells])") == (False, [True] * 3)
    kernel.ok(kernel.execute(
        "made = []\n"
        "cmp.on_change(lambda c: made.append(sum(x.utterance is not None for x in cmp.cells)))\n"
        "STATE.run_lock.release()\n"
        "cmp.wait();"
    ))
    made = kernel.value("made")
    # each cell made, the next begun, ..., the end; cell 1's start is told before the listener
    # came or after it (a slow machine's thread may not have reached it yet): a leading 0 then
    assert made[-6:] == [1, 1, 2, 2, 3, 3] and made[:-6] in ([], [0]), made
    states = kernel.value("[c.state for c in cmp.cells]")
    assert states == ["done"] * 3, states
    # the grid's boxes hold a player per cell now, and the saved copy an <audio> per cell
    assert kernel.value("sum(1 for b in cmp._view.boxes for w in b.children if type(w).__name__ == 'Audio')") == 3
    assert kernel.value("__import__('chatterbox_nb.controllers.compare').controllers.compare"
                        ".saved_bundle(cmp)['text/html'].count('<audio')") == 3


def test_the_stop_button_keeps_the_cells_made(kernel):
    kernel.ok(kernel.execute(KSETUP))
    n0 = kernel.value("len(cnb.history)")
    result = kernel.execute(kernel.interrupting_when(
        f"len(cnb.history) > {n0}", "cmp = cnb.compare('Stop here.', seed=[0, 1, 2, 3], wait=True, **F)"))
    assert result["status"] == "ok", result["reply"]
    assert kernel.value("_interrupted_at") == [True]
    states = kernel.value("[c.state for c in cmp.cells]")
    assert states[0] == "done" and states[-1] == "skipped", states
    made = kernel.value("len(cmp.utterances)")
    assert 1 <= made < 4 and kernel.value(f"len(cnb.history) - {n0}") == made


@pytest.mark.slow
def test_a_saved_notebook_keeps_the_grid_with_an_audio_per_cell(tmp_path):
    """Executed headless (nbclient saves the widget state too) and written to disk: the grid's
    saved copy, refilled as cells were made, holds every cell's `<audio>` and its say line."""
    import nbformat
    from nbclient import NotebookClient

    cells = ["%load_ext chatterbox_nb", f'cmp = %chatterbox compare "Saved grid." --seed 0 1 --temperature 0.5 0.8 {W} --wait',
             "print(len(cmp.utterances))"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    nbformat.write(nb, tmp_path / "saved.ipynb")
    nb = nbformat.read(tmp_path / "saved.ipynb", as_version=4)
    assert not [o for c in nb.cells for o in c.outputs if o.output_type == "error"]
    assert "4" in "".join(o.get("text", "") for o in nb.cells[2].outputs)
    outputs = nb.cells[1].outputs
    assert [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]  # the live grid
    (copy,) = [o["data"]["text/html"] for o in outputs if "cnb-saved-only" in o.get("data", {}).get("text/html", "")]
    assert "chatterbox-compare" in copy and copy.count("<audio") == 4 and copy.count("data:audio/wav;base64,") == 4
    assert "%chatterbox say &#x27;Saved grid.&#x27;" in copy and "--seed 1" in copy and "dBFS" in copy


def test_the_say_line_survives_ipythons_expansion(shell):
    """`$x` and `{x}` in the text would be expanded when the line is pasted: they are escaped."""
    _, _, cells = plan("Costs $5 {today}.", {"seed": [0, 1], **FIXED})
    line = cells[0].say_line()
    assert shell.var_expand(line) == line.replace("$$", "$").replace("{{", "{").replace("}}", "}")
    assert "'Costs $5 {today}.'" in shell.var_expand(line)


def test_a_voice_is_obtained_once_for_all_its_cells(english_reduced, tmp_path):
    import soundfile as sf

    from chatterbox_nb.engine.store import dummy

    path = tmp_path / "ref.wav"
    wav = dummy.synthetic_voice(2.0, 24000, seed=7)
    wav[-32:] += np.random.default_rng().uniform(-1e-4, 1e-4, 32).astype(np.float32)  # new bytes: not cached yet
    sf.write(path, wav, 24000)
    cmp = cnb.compare("Two voices.", seed=[0, 1], voice=[str(path), "built-in"], **FIXED)
    sources = [c.utterance.timings["voice_source"] for c in cmp.cells]
    assert sources == ["computed", "built-in", "memory", "built-in"], sources
    assert [c.values["voice"] for c in cmp.cells] == [str(path), "built-in"] * 2


def test_listening_normalisation_leaves_the_audio_and_its_wav_alone(tmp_path):
    from chatterbox_nb.comparison import Comparison
    from chatterbox_nb.controllers.compare import cell_views
    from chatterbox_nb.display.compare import grid_html
    from chatterbox_nb.utterance import Utterance

    _, varied, cells = plan("Loud and soft.", {"seed": [0, 1, 2], **FIXED})
    for cell, level in zip(cells, (0.5, 0.05, 0.2)):
        cell.utterance = Utterance(np.full(2400, level, np.float32) * np.sign(np.sin(np.arange(2400))), 24000,
                                   "Loud and soft.", {}, {"rtf": 1.0})
        cell.state = "done"
    cmp = Comparison("Loud and soft.", varied, cells, normalise=True)
    gains = cmp.gains()
    heard = [c.rms_dbfs + 20 * np.log10(g) for c, g in zip(cells, gains)]
    assert max(heard) - min(heard) < 0.01, heard  # every cell heard at the median loudness
    assert gains[2] == pytest.approx(1.0) and gains[0] < 1 < gains[1]
    views = cell_views(cmp)
    assert "heard at" in views[1].stats() and "dBFS RMS" in views[1].stats()
    saved = cmp.save(1, tmp_path / "soft.wav")
    import soundfile as sf

    audio, _ = sf.read(saved, dtype="float32")
    assert np.array_equal(audio, cells[1].utterance.audio)  # as made: the gain is for listening only
    assert Comparison("x", varied, cells).gains() == [1.0] * 3  # off unless asked for
    assert grid_html("Loud and soft.", views).count("<audio") == 3


def test_more_than_two_varied_options_are_a_table_with_a_column_each():
    from chatterbox_nb.comparison import Comparison
    from chatterbox_nb.controllers.compare import cell_views
    from chatterbox_nb.display.compare import grid_html

    text, varied, cells = plan("Three ways.", {"seed": [0, 1], "temperature": [0.5, 0.8], "cfg": [0.3, 0.6], **FIXED})
    page = grid_html(text, cell_views(Comparison(text, varied, cells)))
    head = page.split("<tr>", 2)[1]
    assert [h.split("</th>")[0] for h in head.split("<th>")[1:4]] == ["seed", "temperature", "cfg"]  # as given
    assert page.count("<tr>") == 1 + 8 and "<audio" not in page  # a row a cell; nothing made yet
    two = plan("Two ways.", {"seed": [0, 1, 2], "temperature": [0.5, 0.8], **FIXED})
    grid = grid_html(two[0], cell_views(Comparison(*two)))
    assert grid.count("<tr>") == 1 + 3 and "<th>temperature 0.8</th>" in grid and "<th>seed 2</th>" in grid  # rows × columns
