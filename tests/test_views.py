"""display/'s views render from plain data, with no kernel, no model and no API behind them:
the cache report, the voices table, and the history table fed with utterances and a Save callback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

GIB = 2**30

CACHE = SimpleNamespace(
    root=Path("/tmp/<cache>"),
    entries=[
        {"entry": "english-bfloat16-<k>", "model": "english", "dtype": "bfloat16", "source": "hub",
         "own_bytes": 3 * GIB, "shared_bytes": GIB // 2},
    ],
    dummies={"english-reduced-seed0": GIB // 4},
    packages={"compiled/torch-2.6/estimator-english.pt2": GIB // 8},
    leftovers={"compiled/torch-2.6/.build-dead": GIB},
    voice_bytes=2**20,
)

ROWS = [
    {"name": "duo", "files": ["a.wav x1", "b<&>.wav x2"], "missing": [], "duration_s": 4.25,
     "models": ["english (dummy)"], "bytes": 2048},
    {"name": "gone", "files": ["c.wav"], "missing": ["/x/c.wav"], "duration_s": 1.0, "models": [], "bytes": 0},
]


def test_cache_report_renders_plain_data():
    from chatterbox_nb.display.cache_report import cache_html, cache_text

    assert cache_text(CACHE).splitlines() == [
        "disk cache /tmp/<cache>: 1 model entry",
        "  english-bfloat16-<k>: english bfloat16 from hub, own 3.00 GiB, shared with source 0.50 GiB",
        "  dummy checkpoint english-reduced-seed0: 0.25 GiB",
        "  compiled package compiled/torch-2.6/estimator-english.pt2: 0.12 GiB",
        "  unfinished package build compiled/torch-2.6/.build-dead: 1.00 GiB (cache clear removes it)",
        "  voice conditionals: 1.00 MiB",
    ]
    page = cache_html(CACHE)
    assert "<code>/tmp/&lt;cache&gt;</code>" in page and "english-bfloat16-&lt;k&gt;" in page and "<k>" not in page
    assert "<td>english</td><td>bfloat16</td><td>hub</td><td>3.00 GiB</td><td>0.50 GiB</td>" in page
    assert "<td>dummy/english-reduced-seed0</td><td colspan=3>dummy checkpoint (a source)</td><td>0.25 GiB</td>" in page
    assert "<td colspan=3>compiled S3Gen estimator</td><td>0.12 GiB</td>" in page
    assert "unfinished package build (cache clear removes it)</td><td>1.00 GiB</td>" in page
    assert "<td>voices/conds</td><td colspan=3>voice conditionals</td><td>1.00 MiB</td>" in page
    assert page.count("<tr>") == 6  # the head, one entry, a dummy, a package, a leftover, the voices


def test_cache_info_is_shown_by_the_view(tmp_path, monkeypatch):
    """`cnb.cache.info()` gathers data; its text and HTML are the view's, for the same data."""
    import chatterbox_nb as cnb
    from chatterbox_nb import config
    from chatterbox_nb.display.cache_report import cache_html, cache_text

    monkeypatch.setattr(config.settings(), "cache_dir", str(tmp_path / "cache"))
    info = cnb.cache.info()
    plain = SimpleNamespace(**{k: getattr(info, k) for k in ("root", "entries", "dummies", "packages", "leftovers", "voice_bytes")})
    assert repr(info) == cache_text(plain) and info._repr_html_() == cache_html(plain)
    assert repr(info).startswith(f"disk cache {tmp_path / 'cache'}: 0 model entries")


def test_voices_table_renders_plain_rows():
    from chatterbox_nb.display.voices_table import VoiceTable, voices_html, voices_text

    table = VoiceTable(ROWS)
    assert len(table) == 2 and table.rows == ROWS
    assert repr(table) == voices_text(ROWS) and table._repr_html_() == voices_html(ROWS)
    assert repr(table).splitlines() == [
        "2 voice(s):",
        "  duo: a.wav x1, b<&>.wav x2; 4.2 s; cached for english (dummy); 2 KiB on disk",
        "  gone: c.wav; 1.0 s; cached for no model yet; 0 KiB on disk; missing: /x/c.wav",
    ]
    page = table._repr_html_()
    assert "<td><b>duo</b></td><td>a.wav x1, b&lt;&amp;&gt;.wav x2</td><td>4.2 s</td>" in page
    assert "<td>english (dummy)</td><td>2 KiB</td>" in page
    assert "(missing: /x/c.wav)" in page and "<td>—</td><td>0 KiB</td>" in page
    empty = VoiceTable([])
    assert "No voices yet" in repr(empty) and empty._repr_html_() == f"<pre>{repr(empty)}</pre>"


def test_voice_list_is_shown_by_the_view(tmp_path, monkeypatch):
    import chatterbox_nb as cnb
    from chatterbox_nb import config
    from chatterbox_nb.display.voices_table import VoiceTable

    monkeypatch.setattr(config.settings(), "cache_dir", str(tmp_path / "cache"))
    listed = cnb.voices.list()
    assert isinstance(listed, VoiceTable) and listed.rows == [] and repr(cnb.voices) == repr(listed)


def _utterances():
    from chatterbox_nb.utterance import Utterance

    params = {"model": "english", "seed": 3, "temperature": 0.8}
    return [
        Utterance(np.linspace(-0.5, 0.5, 2400, dtype=np.float32), 24000, f"line {i}", params, {"total_s": 0.5, "rtf": 2.0})
        for i in range(2)
    ]


def test_history_view_is_fed_utterances_and_a_save_callback():
    import ipywidgets as widgets

    from chatterbox_nb.display.history import History

    utts = _utterances()
    calls = []

    def save(utt, index, path):
        calls.append((utt, index, path))
        if path == "bad":
            raise OSError("no room")
        return Path("/somewhere") / (path or f"default_{index}.wav")

    grid, replay = History(utts, save=save).widget().children
    rows = [w for w in grid.children if isinstance(w, widgets.HBox)]
    play, path, keep, note = rows[1].children
    path.value = "mine.wav"
    keep.click()
    assert calls == [(utts[1], 1, "mine.wav")] and note.value == "saved /somewhere/mine.wav"
    path.value = "bad"
    keep.click()
    assert "no room" in note.value and "error" in note.value
    play.click()
    assert replay.children[1].children[1].value == utts[1].wav_bytes()

    plain = History(utts)  # no callback: the rows can replay, not save
    rows = [w for w in plain.widget().children[0].children if isinstance(w, widgets.HBox)]
    assert [type(w).__name__ for w in rows[0].children] == ["Button", "HTML"]
    assert "line 0" in repr(plain) and "seed=3" in repr(plain) and "temp=0.8" in repr(plain)


def test_history_controller_wires_save(tmp_path, monkeypatch):
    from chatterbox_nb._state import STATE
    from chatterbox_nb.controllers import history as controller

    utts = _utterances()
    monkeypatch.setattr(STATE, "history", type(STATE.history)())
    with STATE.lock:
        STATE.history.extend(utts)
    table = controller.history_table()
    assert table.utts == utts and table.save is controller.save
    monkeypatch.chdir(tmp_path)
    assert controller.save(utts[0], 0, "  ") == Path("utterance_0.wav") and (tmp_path / "utterance_0.wav").is_file()


def test_views_render_without_the_api():
    """In a fresh interpreter, each view renders plain data without importing the API,
    the voice registry, the kernel-global state or torch."""
    code = """
import sys
from pathlib import Path
from types import SimpleNamespace
from chatterbox_nb.display import cache_report, history, voices_table
assert cache_report.cache_html(SimpleNamespace(root=Path("/c"), entries=[], dummies={}, packages={}, leftovers={}, voice_bytes=0))
assert voices_table.voices_html([{"name": "a", "files": ["a.wav"], "missing": [], "duration_s": 1.0, "models": [], "bytes": 0}])
assert "No utterances" in repr(history.History([], save=None))
loaded = [m for m in ("chatterbox_nb.api", "chatterbox_nb._state", "chatterbox_nb.voices_api", "chatterbox_nb.voice_registry",
                      "chatterbox_nb.loading", "chatterbox_nb.batching", "torch") if m in sys.modules]
assert not loaded, loaded
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
