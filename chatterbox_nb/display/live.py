"""The progressive player: starts on the first piece and plays the rest back to back
as they arrive (a piece: a chunk of text, or, streamed, part of one), with a live progress line; the timings appear when the say ends.

An anywidget: Python appends each chunk (16-bit PCM, sent as a binary buffer) to a
synced list, and the browser decodes it into a Web Audio buffer scheduled right
after the previous one. The list is widget state, so a view rendered late (or a
page reload) still gets every chunk. Each view records what it did on its element's
`data-*` attributes and in `window.chatterboxNbPlayers`, which the browser test reads.
"""

from __future__ import annotations

import contextvars
import html
import time
from typing import Any, Callable

import anywidget
import numpy as np
import traitlets

from .player import SAVED_ONLY, _banner_html, saved_bundle
from .style import TEXT, duration_label
from .timings import timings_html

_ESM = r"""
function pcmToBuffer(ctx, view, rate) {
  const pcm = new Int16Array(view.buffer.slice(view.byteOffset, view.byteOffset + view.byteLength));
  const buffer = ctx.createBuffer(1, Math.max(1, pcm.length), rate);
  const data = buffer.getChannelData(0);
  for (let i = 0; i < pcm.length; i++) data[i] = pcm[i] / 32768;
  return buffer;
}

function render({ model, el }) {
  const t0 = performance.now();
  const rec = { received: 0, arrivals: [], scheduled: 0, samples: 0, firstScheduledAt: null,
                firstScheduledReceived: null, total: model.get("total"), done: false, state: "idle",
                current: -1, position: 0, seeks: [] };
  (window.chatterboxNbPlayers = window.chatterboxNbPlayers || []).push(rec);
  const root = document.createElement("div");
  root.className = "cnb-live";
  const button = document.createElement("button");
  const status = document.createElement("span");
  status.className = "cnb-live-status";
  root.append(button, status);
  el.append(root);
  const texts = model.get("texts") || [];
  const lines = texts.map((text, i) => {  // the transcript: one line per chunk, dimmed until made
    const line = document.createElement("div");
    line.className = "cnb-sentence cnb-pending";
    line.dataset.index = String(i);
    const at = document.createElement("span");
    at.className = "cnb-sentence-time";
    line.append(at, document.createTextNode(text));
    line.onclick = () => seek(i);
    return line;
  });
  if (lines.length > 1) {
    const box = document.createElement("div");
    box.className = "cnb-transcript";
    box.append(...lines);
    el.append(box);
  }

  let ctx = null, playing = false, next = 0, nextPiece = 0, sources = [], segments = [], timer = null;

  function rate() { return model.get("sample_rate"); }
  function clock(s) { const m = Math.floor(s / 60), r = s - 60 * m; return m + ":" + (r < 10 ? "0" : "") + r.toFixed(1); }

  // where each chunk's speech lies in the stream of pieces (samples; its pause left out)
  function spans() {
    const chunks = model.get("chunks") || [], owner = model.get("piece_chunk") || [], pause = model.get("pause");
    const out = [];
    let at = 0;
    for (let p = 0; p < chunks.length && p < owner.length; p++) {
      const i = owner[p], n = chunks[p].byteLength / 2;
      if (!out[i]) out[i] = { first: p, start: at + (i ? Math.min(pause, n) : 0), end: at + n };
      else out[i].end = at + n;
      at += n;
    }
    return out;
  }

  function position() {  // samples into the stream the listener hears now
    if (!segments.length) return rec.position * rate();
    const t = ctx.currentTime;
    let pos = segments[0].from;
    for (const s of segments) {
      if (t < s.when) break;
      pos = s.from + Math.min(s.n, (t - s.when) * rate());
    }
    return pos;
  }

  function follow() {
    const sp = spans();
    if (playing && ctx) {
      const pos = position();
      rec.position = pos / rate();
      let cur = -1;
      sp.forEach((s, i) => { if (s && pos >= s.start) cur = i; });
      rec.current = cur;
    } else if (!playing) rec.current = -1;
    const made = model.get("made"), done = model.get("done");
    lines.forEach((line, i) => {
      line.classList.toggle("cnb-pending", i >= made && !done);
      line.classList.toggle("cnb-unmade", i >= made && done);
      line.classList.toggle("cnb-current", i === rec.current);
      line.title = i >= made ? (done ? "not made: the say was stopped" : "not made yet") : "play from here";
      if (sp[i] && i < made) line.firstChild.textContent = clock(sp[i].start / rate()) + " ";
    });
    root.dataset.current = String(rec.current);
    root.dataset.position = rec.position.toFixed(3);
  }

  function publish() {
    rec.total = model.get("total");
    rec.done = model.get("done");
    rec.state = ctx ? ctx.state : "idle";
    for (const [k, v] of Object.entries(rec)) if (k !== "arrivals" && k !== "seeks") root.dataset[k] = String(v);
    button.textContent = playing ? "\u25A0 Stop" : (rec.scheduled ? "\u25B6 Replay" : "\u25B6 Play");
    status.textContent = " " + model.get("status");
    follow();
  }

  function schedule(view, offset) {
    const src = ctx.createBufferSource();
    src.buffer = pcmToBuffer(ctx, view, rate());
    src.connect(ctx.destination);
    const when = Math.max(next, ctx.currentTime + 0.05);
    src.start(when, offset / rate());
    next = when + src.buffer.duration - offset / rate();
    return [src, when];
  }

  function pump() {
    const chunks = model.get("chunks") || [];
    while (rec.received < chunks.length) { rec.received++; rec.arrivals.push(performance.now() - t0); }
    if (playing) {
      let from = 0;
      for (let p = 0; p < nextPiece; p++) from += chunks[p].byteLength / 2;
      while (nextPiece < chunks.length) {
        const view = chunks[nextPiece], n = view.byteLength / 2;
        const skip = sources.length ? 0 : startOffset;  // a seek starts into its first piece
        const [src, when] = schedule(view, skip);
        segments.push({ when, from: from + skip, n: n - skip });
        rec.samples += n - skip;  // what was scheduled, for the tests
        from += n;
        nextPiece++;
        sources.push(src);
        rec.scheduled++;
        if (rec.firstScheduledAt === null) {
          rec.firstScheduledAt = performance.now() - t0;
          rec.firstScheduledReceived = rec.received;
        }
        src.onended = () => {
          if (playing && src === sources[sources.length - 1] && model.get("done")) {
            playing = false; clearInterval(timer); publish();
          }
        };
      }
    }
    publish();
  }

  function stop() {
    for (const s of sources) { try { s.stop(); } catch (e) {} }
    sources = [];
    segments = [];
    playing = false;
    clearInterval(timer);
  }

  let startOffset = 0;
  function play(piece = 0, offset = 0) {
    stop();
    if (!ctx) ctx = new AudioContext();
    ctx.resume().then(publish, publish);
    playing = true;
    next = ctx.currentTime;
    nextPiece = piece;
    startOffset = offset;
    timer = setInterval(follow, 50);  // the highlight follows the sound
    pump();
  }

  function seek(i) {  // a click on a sentence: play on from its start
    const s = spans()[i];
    if (!s || i >= model.get("made")) return;
    let from = 0;
    const chunks = model.get("chunks");
    for (let p = 0; p < s.first; p++) from += chunks[p].byteLength / 2;
    rec.seeks.push({ chunk: i, start: s.start / rate() });
    play(s.first, s.start - from);
  }

  button.onclick = () => { if (playing) { stop(); publish(); } else play(); };
  model.on("change:chunks", pump);
  model.on("change:status", publish);
  model.on("change:done", pump);
  model.on("change:made", publish);
  if (model.get("autoplay")) play(); else pump();
  return () => { stop(); if (ctx) ctx.close(); };
}

export default { render };
"""

#: where a say in this context shows its progressive player: IPython's `display` unless a
#: panel (display/panel.py) puts it in its own output area
SHOW: contextvars.ContextVar[Callable[[Any], None] | None] = contextvars.ContextVar("chatterbox_nb_show", default=None)

_CSS = """
.cnb-live { font: 12px sans-serif; display: flex; align-items: center; gap: 6px; margin: 2px 0; }
.cnb-live button { font: 12px sans-serif; padding: 1px 8px; }
.cnb-live-status { color: var(--jp-content-font-color1, #222); }
.cnb-transcript { font: 12px sans-serif; margin: 2px 0 4px; max-height: 16em; overflow-y: auto; }
.cnb-sentence { color: var(--jp-content-font-color1, #222); padding: 1px 4px; border-radius: 3px; cursor: pointer; }
.cnb-sentence:hover { text-decoration: underline; }
.cnb-sentence-time { color: var(--jp-content-font-color2, #555); font-variant-numeric: tabular-nums; }
.cnb-sentence.cnb-pending { opacity: 0.45; cursor: default; text-decoration: none; }
.cnb-sentence.cnb-unmade { opacity: 0.45; cursor: default; text-decoration: line-through; }
.cnb-sentence.cnb-current { background: rgba(33, 150, 243, 0.25); box-shadow: inset 3px 0 var(--jp-brand-color1, #1976d2); }
.%s { display: none; }
""" % SAVED_ONLY  # where this player renders, the say's saved copy (display/player.py) is hidden


class ChunkPlayer(anywidget.AnyWidget):
    """The Web Audio part: chunks in, sound out, back to back."""

    _esm = _ESM
    _css = _CSS
    chunks = traitlets.List(traitlets.Bytes()).tag(sync=True)
    total = traitlets.Int(0).tag(sync=True)
    sample_rate = traitlets.Int(24000).tag(sync=True)
    autoplay = traitlets.Bool(True).tag(sync=True)
    done = traitlets.Bool(False).tag(sync=True)
    status = traitlets.Unicode("").tag(sync=True)
    #: the transcript: every chunk's text; which chunk each piece belongs to; how many chunks are
    #: made; the silence (samples) a chunk's first piece starts with (none for the first chunk)
    texts = traitlets.List(traitlets.Unicode()).tag(sync=True)
    piece_chunk = traitlets.List(traitlets.Int()).tag(sync=True)
    made = traitlets.Int(0).tag(sync=True)
    pause = traitlets.Int(0).tag(sync=True)


def _pcm16(audio: np.ndarray) -> bytes:
    return (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes()


class LivePlayer:
    """Text, progressive player and progress line; then the timing bars."""

    def __init__(self, text: str, total: int, sample_rate: int, *, dummy: bool = False,
                 estimate: Any = None, chunks: list[str] | None = None) -> None:
        """`chunks`: the chunks' texts, shown under the player as a transcript (several chunks)."""
        import ipywidgets as widgets

        from ..progressive import PAUSE_S

        #: an `estimate.Estimate`: the progress line says what to expect from the start
        self.estimate = estimate
        self.started = time.perf_counter()
        self._chunk_s = 0.0  # audio of the chunk under way, so far
        self.total = total
        self.tokens = 0
        self.done = 0  # chunks whose last piece came
        self.seconds = 0.0
        self.sample_rate = sample_rate
        #: shown by `display` in the cell (not inside a panel): it leaves a saved copy there
        self.standalone = False
        first = f"generating chunk 1/{total}\u2026"
        self.player = ChunkPlayer(total=total, sample_rate=sample_rate, texts=list(chunks or []),
                                  pause=int(round(PAUSE_S * sample_rate)),
                                  status=first if estimate is None else f"{estimate.line()} \u00b7 {first}")
        self.timings = widgets.HTML("")
        head = [widgets.HTML(_banner_html())] if dummy else []
        shown = text if len(text) <= 300 else text[:297] + "..."
        head.append(widgets.HTML(f'<div style="font:12px sans-serif;{TEXT}">&#8220;{html.escape(shown)}&#8221;</div>'))
        self.box = widgets.VBox([*head, self.player, self.timings])

    def add(self, audio: np.ndarray, tokens: int, last: bool = True) -> None:
        """One more piece (`last`: its chunk's last): to the browser now, and the progress
        line moves on. A streamed chunk comes in several pieces."""
        index = self.done  # pieces come in order: this one belongs to the first chunk not yet ended
        self.tokens += tokens
        self.seconds += len(audio) / self.sample_rate
        self.done += last
        self._chunk_s += len(audio) / self.sample_rate
        if last and self.estimate is not None:
            self.estimate.finished(self._chunk_s, time.perf_counter() - self.started)
        self._chunk_s = 0.0 if last else self._chunk_s
        with self.player.hold_sync():  # one message: the piece, its chunk and the count made
            self.player.chunks = [*self.player.chunks, _pcm16(audio)]
            self.player.piece_chunk = [*self.player.piece_chunk, index]
            self.player.made = self.done
        pieces = len(self.player.chunks)
        made = f"chunk {self.done}/{self.total}" if self.total > 1 else ""
        if pieces > self.done or not made:
            made = f"{made} \u00b7 piece {pieces}" if made else f"piece {pieces}"
        after = f" \u00b7 generating chunk {self.done + 1}/{self.total}\u2026" if self.done < self.total else ""
        if after and self.estimate is not None:
            after = f" \u00b7 {self.estimate.line()}{after}"
        self.player.status = f"{made} \u00b7 {self.tokens} tokens \u00b7 {duration_label(self.seconds)}{after}"

    def finish(self, timings: dict[str, Any], stopped: bool) -> None:
        n = len(self.player.chunks)
        length = duration_label(self.seconds)
        pieces = f" in {n} pieces" if n > self.done else ""
        self.player.status = (
            f"stopped after chunk {self.done}/{self.total} \u00b7 {length}" if stopped
            else f"{self.done} chunk{'s' if self.done != 1 else ''}{pieces}, {self.tokens} tokens \u00b7 {length}"
        )
        self.player.done = True
        self.timings.value = timings_html(timings)

    def keep(self, utt: Any) -> None:
        """Leave the finished say's saved copy in the cell: the static player a saved
        notebook, nbconvert or a front end without this widget plays."""
        if self.standalone:
            from IPython.display import display

            display(saved_bundle(utt), raw=True)

    def fail(self, exc: BaseException) -> None:
        what = "stopped" if isinstance(exc, KeyboardInterrupt) else f"failed: {exc}"
        self.player.status = f"{what} (after chunk {self.done}/{self.total})"
        self.player.done = True

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle = self.box._repr_mimebundle_()
        bundle["text/plain"] = f"Progressive player: {self.total} chunks"
        return bundle
