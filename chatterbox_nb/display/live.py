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

from .player import SAVED_ONLY, TEXT, _banner_html, duration_label, saved_bundle
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
                firstScheduledReceived: null, total: model.get("total"), done: false, state: "idle" };
  (window.chatterboxNbPlayers = window.chatterboxNbPlayers || []).push(rec);
  const root = document.createElement("div");
  root.className = "cnb-live";
  const button = document.createElement("button");
  const status = document.createElement("span");
  status.className = "cnb-live-status";
  root.append(button, status);
  el.append(root);

  let ctx = null, playing = false, next = 0, sources = [];

  function publish() {
    rec.total = model.get("total");
    rec.done = model.get("done");
    rec.state = ctx ? ctx.state : "idle";
    for (const [k, v] of Object.entries(rec)) if (k !== "arrivals") root.dataset[k] = String(v);
    button.textContent = playing ? "\u25A0 Stop" : (rec.scheduled ? "\u25B6 Replay" : "\u25B6 Play");
    status.textContent = " " + model.get("status");
  }

  function pump() {
    const chunks = model.get("chunks") || [];
    while (rec.received < chunks.length) { rec.received++; rec.arrivals.push(performance.now() - t0); }
    if (playing) {
      const rate = model.get("sample_rate");
      while (sources.length < chunks.length) {
        const src = ctx.createBufferSource();
        src.buffer = pcmToBuffer(ctx, chunks[sources.length], rate);
        rec.samples += chunks[sources.length].byteLength / 2;  // what was scheduled, for the tests
        src.connect(ctx.destination);
        const when = Math.max(next, ctx.currentTime + 0.05);
        src.start(when);
        next = when + src.buffer.duration;
        sources.push(src);
        rec.scheduled++;
        if (rec.firstScheduledAt === null) {
          rec.firstScheduledAt = performance.now() - t0;
          rec.firstScheduledReceived = rec.received;
        }
        src.onended = () => {
          if (playing && src === sources[sources.length - 1] && model.get("done")) { playing = false; publish(); }
        };
      }
    }
    publish();
  }

  function stop() {
    for (const s of sources) { try { s.stop(); } catch (e) {} }
    sources = [];
    playing = false;
  }

  function play() {
    stop();
    if (!ctx) ctx = new AudioContext();
    ctx.resume().then(publish, publish);
    playing = true;
    next = ctx.currentTime;
    pump();
  }

  button.onclick = () => { if (playing) { stop(); publish(); } else play(); };
  model.on("change:chunks", pump);
  model.on("change:status", publish);
  model.on("change:done", pump);
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


def _pcm16(audio: np.ndarray) -> bytes:
    return (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes()


class LivePlayer:
    """Text, progressive player and progress line; then the timing bars."""

    def __init__(self, text: str, total: int, sample_rate: int, *, dummy: bool = False,
                 estimate: Any = None) -> None:
        import ipywidgets as widgets

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
        self.player = ChunkPlayer(total=total, sample_rate=sample_rate,
                                  status=first if estimate is None else f"{estimate.line()} \u00b7 {first}")
        self.timings = widgets.HTML("")
        head = [widgets.HTML(_banner_html())] if dummy else []
        shown = text if len(text) <= 300 else text[:297] + "..."
        head.append(widgets.HTML(f'<div style="font:12px sans-serif;{TEXT}">&#8220;{html.escape(shown)}&#8221;</div>'))
        self.box = widgets.VBox([*head, self.player, self.timings])

    def add(self, audio: np.ndarray, tokens: int, last: bool = True) -> None:
        """One more piece (`last`: its chunk's last): to the browser now, and the progress
        line moves on. A streamed chunk comes in several pieces."""
        self.tokens += tokens
        self.seconds += len(audio) / self.sample_rate
        self.done += last
        self._chunk_s += len(audio) / self.sample_rate
        if last and self.estimate is not None:
            self.estimate.finished(self._chunk_s, time.perf_counter() - self.started)
        self._chunk_s = 0.0 if last else self._chunk_s
        self.player.chunks = [*self.player.chunks, _pcm16(audio)]
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
