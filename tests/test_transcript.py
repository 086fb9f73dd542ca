"""Long text you can read while it plays: `Utterance.chunks` (each sentence's text, start
and end, exact to the samples), the subtitle files `save` writes from them, the saved
copy's seek links, and the progressive player's transcript as a kernel sends it."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import numpy as np
import pytest

import chatterbox_nb as cnb
from chatterbox_nb import progressive
from chatterbox_nb.errors import InvalidOption
from chatterbox_nb.text import chunk_text
from chatterbox_nb.utterance import Utterance

REDUCED = "dummy:reduced"
TEXT = "One sentence comes first here. Another sentence follows it. A third one ends it."
SAY = dict(weights=REDUCED, device="cpu", dtype="float32", max_tokens=6, seed=3)


def _samples(u: Utterance) -> list[tuple[int, int]]:
    return [(round(c.start * u.sample_rate), round(c.end * u.sample_rate)) for c in u.chunks]


def test_chunks_are_the_sentences_exact_to_the_sample(english_reduced, monkeypatch):
    from chatterbox_nb import config

    # rendered one by one (a paragraph's later sentences otherwise render together: tests/test_grouped.py)
    monkeypatch.setattr(config.settings(), "group_renders", False)
    u = cnb.say(TEXT, **SAY)
    sentences = chunk_text(TEXT)
    assert [c.text for c in u.chunks] == sentences and len(sentences) == 3
    spans = _samples(u)
    assert spans[0][0] == 0 and spans[-1][1] == len(u.audio)
    pause = int(round(progressive.PAUSE_S * u.sample_rate))
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert start - end == pause and not u.audio[end:start].any()  # the pause between two sentences
    # each span holds its sentence's audio: the same as that sentence said alone (chunk i: seed + i)
    for i, (sentence, (start, end)) in enumerate(zip(sentences, spans)):
        alone = cnb.say(sentence, **{**SAY, "seed": SAY["seed"] + i})
        assert len(alone.chunks) == 1 and (alone.chunks[0].start, alone.chunks[0].end) == (0.0, alone.duration)
        assert np.array_equal(u.audio[start:end], alone.audio), i


def _utterance() -> Utterance:
    rate = 24000
    spans = [("Hello there.", 0, 36000), ("A second line,\nwith a --> in it.", 38880, 49200)]
    return Utterance(np.zeros(49200, np.float32), rate, "Hello there. A second line.", {}, {}, chunks=spans)


_SRT = re.compile(r"(\d+)\n(\d\d):(\d\d):(\d\d),(\d\d\d) --> (\d\d):(\d\d):(\d\d),(\d\d\d)\n(.+)\n")
_VTT = re.compile(r"(\d\d):(\d\d):(\d\d)\.(\d\d\d) --> (\d\d):(\d\d):(\d\d)\.(\d\d\d)\n(.+)\n")


def _seconds(h: str, m: str, s: str, ms: str) -> float:
    return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000


def test_subtitles_parse_back_to_the_chunks(tmp_path):
    u = _utterance()
    assert u.save(tmp_path / "talk.wav", subtitles="srt") == tmp_path / "talk.wav"
    srt = (tmp_path / "talk.srt").read_text()
    cues = srt.split("\n\n")
    assert len(cues) == 2 and all(_SRT.fullmatch(c.rstrip("\n") + "\n") for c in cues), srt
    parsed = [_SRT.fullmatch(c.rstrip("\n") + "\n").groups() for c in cues]
    assert [p[0] for p in parsed] == ["1", "2"]  # numbered from 1
    assert [(_seconds(*p[1:5]), _seconds(*p[5:9]), p[9]) for p in parsed] == [
        (0.0, 1.5, "Hello there."), (1.62, 2.05, "A second line, with a -> in it.")]

    u.save(tmp_path / "talk.wav", subtitles="VTT")
    vtt = (tmp_path / "talk.vtt").read_text()
    assert vtt.startswith("WEBVTT\n\n")
    cues = vtt[len("WEBVTT\n\n"):].split("\n\n")
    parsed = [_VTT.fullmatch(c.rstrip("\n") + "\n").groups() for c in cues]
    assert [(_seconds(*p[0:4]), _seconds(*p[4:8]), p[8]) for p in parsed] == [
        (0.0, 1.5, "Hello there."), (1.62, 2.05, "A second line, with a -> in it.")]
    # past the hour
    from chatterbox_nb.subtitles import Chunk, subtitles

    assert "00:59:59,500 --> 01:02:05,250\nLong." in subtitles([Chunk("Long.", 3599.5, 3725.25)], "srt")


def test_a_bad_subtitle_format_is_one_clear_error_and_writes_nothing(tmp_path):
    u = _utterance()
    with pytest.raises(InvalidOption, match=r"subtitles='ass'.*'srt'.*'vtt'"):
        u.save(tmp_path / "talk.wav", subtitles="ass")
    with pytest.raises(InvalidOption, match="both the WAV and the subtitles"):
        u.save(tmp_path / "talk.srt", subtitles="srt")
    assert list(tmp_path.iterdir()) == [] and u.saved is None


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[dict[str, str]] = []

    def handle_starttag(self, tag, attrs):
        if tag == "a" and "cnb-seek" in dict(attrs).get("class", ""):
            self.links.append(dict(attrs))


def seek_links(html: str) -> list[dict[str, str]]:
    parser = _Links()
    parser.feed(html)
    return parser.links


def test_saved_copy_links_each_sentence_to_its_start():
    from chatterbox_nb.display.player import saved_bundle

    links = seek_links(saved_bundle(_utterance())["text/html"])
    assert [float(a["data-start"]) for a in links] == [0.0, 1.62]
    # the seek is the link's own inline handler: it works where no kernel runs
    assert all("currentTime=+this.dataset.start" in a["onclick"] and "closest('.chatterbox-utterance')" in a["onclick"]
               for a in links)
    one = Utterance(np.zeros(2400, np.float32), 24000, "Just one.", {}, {})
    assert seek_links(saved_bundle(one)["text/html"]) == []  # one sentence: nothing to navigate


# -- in a real kernel ------------------------------------------------------------------------

_OPTS = "--weights dummy:reduced --device cpu --dtype float32 --max-tokens 6 --seed 1"


def _players(result: dict) -> list[dict]:
    """The progressive players' widget state as the front end got it: each `ChunkPlayer`'s
    opening state with every update the cell sent applied."""
    states: dict[str, dict] = {}
    for o in result["outputs"]:
        if o["type"] == "comm_open" and "texts" in o["data"].get("state", {}):
            states[o["comm_id"]] = dict(o["data"]["state"])
        elif o["type"] == "comm_msg" and o["comm_id"] in states and o["data"].get("method") == "update":
            states[o["comm_id"]].update(o["data"]["state"])
    return list(states.values())


@pytest.mark.slow
def test_cell_in_a_kernel_keeps_its_timings_and_links_them(kernel):
    from kernel_utils import Kernel

    Kernel.ok(kernel.execute("%load_ext chatterbox_nb"))
    result = Kernel.ok(kernel.execute(f"%%chatterbox {_OPTS}\n{TEXT}"))
    (player,) = _players(result)
    assert player["texts"] == chunk_text(TEXT)  # the transcript under the player
    assert player["made"] == 3 and player["done"] is True
    assert player["piece_chunk"] == [0, 1, 2] and player["pause"] == round(progressive.PAUSE_S * 24000)

    rate, samples, spans = kernel.value(
        "(_.sample_rate, len(_.audio), [(c.text, c.start, c.end) for c in _.chunks])")
    assert [t for t, _, _ in spans] == chunk_text(TEXT)
    assert round(spans[0][1] * rate) == 0 and round(spans[-1][2] * rate) == samples
    pause = round(progressive.PAUSE_S * rate)
    assert all(round(b[1] * rate) - round(a[2] * rate) == pause for a, b in zip(spans, spans[1:]))

    (saved,) = [o["data"]["text/html"] for o in result["outputs"]
                if o["type"] == "display_data" and "cnb-saved-only" in o["data"].get("text/html", "")]
    assert [float(a["data-start"]) for a in seek_links(saved)] == [round(s, 3) for _, s, _ in spans]


@pytest.mark.slow
def test_stop_button_keeps_the_made_sentences_readable(kernel):
    from kernel_utils import Kernel

    Kernel.ok(kernel.execute("%load_ext chatterbox_nb"))
    text = TEXT + " The fourth sentence is never made."
    # the stop button (SIGINT, as jupyter_client's interrupt sends it) at the first chunk's first token
    result = Kernel.ok(kernel.execute(Kernel.interrupting_at_token(1, f"u = %chatterbox say {text!r} {_OPTS}")))
    assert kernel.value("_interrupted_at") == [(0, 1)]
    (player,) = _players(result)
    assert player["texts"] == chunk_text(text) and len(player["texts"]) == 4  # every sentence stays listed
    assert player["made"] == 1 and player["done"] is True  # the first readable, the rest marked not made
    assert "stopped after chunk 1/4" in player["status"]
    assert kernel.value("[(c.text, c.start, round(c.end * u.sample_rate) == len(u.audio)) for c in u.chunks]") == [
        (chunk_text(text)[0], 0.0, True)]
