"""`%chatterbox ui` / `cnb.ui()`: one panel to explore a model by ear; what its clicks do.

The view (`display/panel.py`) is made from the declared say options; this side presets
it, follows the model picker (its defaults, its language, the options it ignores greyed
out) and runs Generate: `api.say` with the widgets' values, as the magic calls it, so
`say` checks them. Generation runs in a thread of its own: an ipywidgets callback runs
on the kernel's main thread, and a say there would freeze every widget (and the status
line) until it ended. The thread only assigns widget traits, which ipykernel sends from
any thread; results go into a `VBox`'s children, never through an `Output` capture.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from .. import config, options
from .._state import STATE
from ..display.live import SHOW
from ..display.panel import PanelView
from ..display.player import _in_kernel, saved_bundle
from ..engine.specs import BUILT_IN_VOICE, SPECS
from ..errors import ChatterboxError

__all__ = ["Panel", "ui", "models_line"]

_TICK_S = 0.25


def models_line() -> str:
    """The load state: models in memory and background loads, from the kernel state (no torch)."""
    with STATE.lock:
        models = list(STATE.models.values())
        tasks = [t.summary() for t in STATE.tasks.values() if not t.done or t.failed]
    parts = [
        f"{m.name} ({m.device}, {m.dtype}"
        f"{', dummy' if m.is_dummy else ''}, warm-up {m.warmed})"
        for m in models
    ]
    text = "in memory: " + (", ".join(parts) or "no model yet (the first Generate loads it)")
    return text + "".join(f" · {t}" for t in tasks)


class Panel:
    """The view and the one generation that may run at a time."""

    def __init__(self, text: str = "", **presets: Any) -> None:
        # a typo is refused, not ignored; a value out of its range too, before any widget exists
        options.check_keywords("ui", presets, options.SAY_NAMES)
        presets = {name: options.BY_NAME[name].check(value) for name, value in presets.items()}
        fields = [o for o in options.SAY_OPTIONS if o.panel]
        #: passed to every say as given: no widget of their own (--out is checked now, before any Generate)
        self.fixed = {o.name: presets.get(o.name) for o in options.SAY_OPTIONS if not o.panel}
        options.check_out(self.fixed.get("out"))
        model = presets.get("model") or config.settings().model
        values = {o.name: o.default_for(model) if presets.get(o.name) is None else presets[o.name] for o in fields}
        voices = [BUILT_IN_VOICE, *self._voice_names()]
        values.update(model=model, voice=presets.get("voice") or BUILT_IN_VOICE, lang=presets.get("lang") or "en")
        choices = {"voice": voices if values["voice"] in voices else [*voices, values["voice"]],
                   "lang": [values["lang"]]}
        self.view = PanelView(text, fields, values, choices)
        self.history: list[Any] = []
        self.last: Any = None
        self.error = ""
        self._thread: threading.Thread | None = None
        self._progress = ("", 0)
        self._made = 0  # speech tokens of this say's finished chunks
        #: the output under the panel that keeps the last result for the saved notebook
        self._saved_id = f"cnb-ui-saved-{id(self):x}-{time.time_ns():x}"
        self.view.show_models(models_line())
        self.view.on_change("model", self._on_model)
        self.view.on_generate(self.start)
        self._on_model({"new": model})

    def __getattr__(self, name: str) -> Any:
        """The view's widgets by name, as the panel had them (`panel.text`, `panel.seed`)."""
        view = self.__dict__.get("view")
        if view is None:
            raise AttributeError(name)
        if name in view.inputs:
            return view.inputs[name]
        return getattr(view, name)

    # -- reading the widgets ------------------------------------------------------------

    @staticmethod
    def _voice_names() -> list[str]:
        from ..voices_api import voices

        try:
            return voices.names()
        except (OSError, ChatterboxError):
            return []

    def _on_model(self, change: dict[str, Any]) -> None:
        """Language is a choice of the multilingual model only; the sampling options take
        the model's defaults, and those the model ignores are greyed out."""
        spec = SPECS[change["new"]]
        sampling = [o for o in self.view.fields.values() if o.upstream is not None]
        for o in sampling:
            self.view.inputs[o.name].disabled = o.name not in spec.honours
        lang = self.view.inputs["lang"]
        if spec.takes_language and len(lang.options) < 2:
            from ..engine.specs import languages

            self.view.set_choices("lang", sorted(languages()), "en")
        lang.disabled = not spec.takes_language
        if change.get("old") is not None:
            for o in sampling:
                self.view.inputs[o.name].value = o.default_for(change["new"])

    def kwargs(self) -> dict[str, Any]:
        """What Generate passes to `api.say`, which checks every value (the seed box too)."""
        given = self.view.values()
        if given.get("voice") == BUILT_IN_VOICE:
            given["voice"] = None
        if not SPECS[given["model"]].takes_language:
            given["lang"] = None
        return {**given, **{k: v for k, v in self.fixed.items() if v is not None}}

    # -- generating ---------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> threading.Thread | None:
        """Generate in the background (the button's action); None if one is running."""
        if self.busy:
            return None
        self.view.set_busy(True)
        self.error, self._progress, self._made = "", ("starting", 0), 0
        self._thread = threading.Thread(target=self._run, name="chatterbox_nb-ui", daemon=True)
        self._thread.start()
        return self._thread

    def wait(self, timeout: float | None = None) -> Any:
        if self._thread is not None:
            self._thread.join(timeout)
        return self.last

    def _run(self) -> None:
        from ..api import say
        from ..engine.generation.stopping import watching

        begin = time.perf_counter()
        done = threading.Event()
        ticker = threading.Thread(target=self._tick, args=(begin, done), name="chatterbox_nb-ui-tick", daemon=True)
        ticker.start()
        live: list[Any] = []
        token = SHOW.set(lambda player: self._show_live(player, live))  # long text: its player goes here
        try:
            try:
                kwargs = self.kwargs()
                with watching(self._on_progress):
                    utt = say(self.view.text.value, **kwargs)
            finally:
                done.set()
                ticker.join()  # its last progress line must not overwrite the outcome
        except ChatterboxError as exc:
            self._fail(str(exc))
        except Exception as exc:  # noqa: BLE001 - the panel reports, the kernel goes on
            self._fail(f"{type(exc).__name__}: {exc}")
        else:
            self.last = utt
            self.history.append(utt)
            if not live:  # a progressive player stays: it may be playing, and it shows the timings
                self.view.show_utterance(utt)
            self._keep(utt)
            self.view.show_done(time.perf_counter() - begin)
        finally:
            SHOW.reset(token)
            self.view.set_busy(False)
            self.view.show_models(models_line())

    def _show_live(self, player: Any, shown: list[Any]) -> None:
        shown.append(player)
        self.view.show_player(player)

    def _on_progress(self, stage: str, tokens: int) -> None:
        if stage == "vocoder" and self._progress[0] == "tokens":
            self._made += tokens  # a chunk's tokens are all sampled
        self._progress = (stage, tokens)  # called per token: only remember; the ticker draws

    def _tick(self, begin: float, done: threading.Event) -> None:
        """The status line: tokens made and the audio they hold (the cap, 1000 by default, is
        only a ceiling: the stop token ends a sentence long before), the bar against the
        tokens the text is expected to take."""
        from ..estimate import TOKENS_PER_S, expected_tokens

        expected = expected_tokens(self.view.text.value, self.view.inputs["lang"].value)
        while not done.wait(_TICK_S):
            stage, tokens = self._progress
            made = self._made + (tokens if stage == "tokens" else 0)
            if stage == "tokens":
                what = f"sampling speech tokens: {made} made, {made / TOKENS_PER_S:.1f} s of audio"
                value = min(made / expected, 1.0) * 0.8
            elif stage == "vocoder":
                what, value = f"vocoder (S3Gen) on {tokens} tokens, {tokens / TOKENS_PER_S:.1f} s of audio", 0.9
            else:
                what, value = "loading the model / preparing the voice", 0.02
            self.view.show_progress(what, time.perf_counter() - begin, value)
            self.view.show_models(models_line())

    def _fail(self, message: str) -> None:
        self.error = message
        self.view.show_error(message)

    # -- display ------------------------------------------------------------------------

    def __repr__(self) -> str:
        inputs = self.view.inputs
        return (f"<chatterbox_nb ui panel: model {inputs['model'].value}, voice {inputs['voice'].value}; "
                f"{models_line()}; it needs a notebook (JupyterLab, Notebook 7) to show its widgets>")

    def _keep(self, utt: Any) -> None:
        """The result's saved copy under the panel (hidden while the panel renders)."""
        if _in_kernel():
            from IPython.display import update_display

            update_display(saved_bundle(utt), raw=True, display_id=self._saved_id)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self._repr_mimebundle_(), raw=True)
        if _in_kernel():  # the saved copy of the latest result goes here
            display(saved_bundle(self.last), raw=True, display_id=self._saved_id)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle: dict[str, Any] = {"text/plain": repr(self)}
        if _in_kernel():
            view = self.view.box._repr_mimebundle_()
            bundle.update({k: v for k, v in view.items() if k != "text/plain"})
        return bundle


def ui(text: str = "", **presets: Any) -> Panel:
    """The interactive panel; keyword arguments (as for `say`) preset its widgets."""
    return Panel(text, **presets)
