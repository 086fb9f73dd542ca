"""`%chatterbox ui` / `cnb.ui()`: one panel to explore a model by ear.

Text box, model / voice / language pickers, sampling sliders (the rarer ones in an
"advanced" accordion), a seed, a Generate button, a moving status line, the result
(player, waveform, timings) and the models in memory. It calls `api.say` like the
magic does. Generation runs in a thread of its own: an ipywidgets callback runs on the
kernel's main thread, and a say there would freeze every widget (and the status line)
until it ended. The thread only assigns widget traits, which ipykernel sends from any
thread; results go into a `VBox`'s children, never through an `Output` capture.
"""

from __future__ import annotations

import html
import threading
import time
from typing import Any

from .. import config, options
from .._state import STATE
from ..engine.specs import DEFAULT_MAX_TOKENS, SPECS
from ..errors import ChatterboxError
from .live import SHOW
from .player import ERROR, HIDE_SAVED_CSS, MUTED, TEXT, _in_kernel, saved_bundle, utterance_widget

BUILT_IN = "built-in"
_TICK_S = 0.25
_SLIDERS = (  # (say keyword, spec default key, label, min, max, step, advanced)
    ("exaggeration", "exaggeration", "exaggeration", 0.0, 2.0, 0.05, False),
    ("cfg", "cfg_weight", "cfg", 0.0, 1.0, 0.05, False),
    ("temperature", "temperature", "temperature", 0.05, 2.0, 0.05, False),
    ("top_p", "top_p", "top-p", 0.01, 1.0, 0.01, True),
    ("min_p", "min_p", "min-p", 0.0, 1.0, 0.01, True),
    ("repetition_penalty", "repetition_penalty", "repetition penalty", 1.0, 3.0, 0.05, True),
)


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
    """The widgets and the one generation that may run at a time."""

    def __init__(self, text: str = "", **defaults: Any) -> None:
        import ipywidgets as widgets

        options.check_keywords("ui", defaults, options.SAY_NAMES)  # a typo is refused, not ignored
        s = config.settings()
        #: passed to every say as given: no widget of their own (--out is checked now, before any Generate)
        self.fixed = {k: defaults.pop(k, None) for k in ("weights", "device", "dtype", "out", "autoplay")}
        options.check_out(self.fixed["out"])
        model = defaults.pop("model", None) or s.model
        self.history: list[Any] = []
        self.last: Any = None
        self.error = ""
        self._thread: threading.Thread | None = None
        self._progress = ("", 0)
        self._made = 0  # speech tokens of this say's finished chunks
        #: the output under the panel that keeps the last result for the saved notebook
        self._saved_id = f"cnb-ui-saved-{id(self):x}-{time.time_ns():x}"
        wide = widgets.Layout(width="520px")
        style = {"description_width": "110px"}
        self.text = widgets.Textarea(value=text, placeholder="Text to say", layout=widgets.Layout(width="520px", height="64px"))
        self.model = widgets.Dropdown(options=config.MODELS, value=model, description="model", style=style)
        voices = [BUILT_IN, *self._voice_names()]
        voice = defaults.pop("voice", None) or BUILT_IN
        self.voice = widgets.Dropdown(options=voices if voice in voices else [*voices, voice], value=voice,
                                      description="voice", style=style)
        self.lang = widgets.Dropdown(options=[defaults.pop("lang", None) or "en"], description="language", style=style)
        spec_defaults = SPECS[model].defaults()
        self.sliders: dict[str, Any] = {}
        for key, spec_key, label, lo, hi, step, _adv in _SLIDERS:
            value = defaults.pop(key, None)
            self.sliders[key] = widgets.FloatSlider(
                value=spec_defaults[spec_key] if value is None else value, min=lo, max=hi, step=step,
                description=label, style=style, layout=wide, continuous_update=False,
            )
        self.max_tokens = widgets.BoundedIntText(value=defaults.pop("max_tokens", None) or DEFAULT_MAX_TOKENS, min=1,
                                                 max=4096, description="max tokens", style=style)
        # the opt-in lossy speed knobs; 0 keeps upstream's value
        self.knobs = {
            "cfm_steps": widgets.BoundedIntText(value=defaults.pop("cfm_steps", None) or 0, min=0, max=50,
                                                description="CFM steps", style=style),
            "prompt_tokens": widgets.BoundedIntText(value=defaults.pop("prompt_tokens", None) or 0, min=0, max=1000,
                                                    description="prompt tokens", style=style),
        }
        knobs_note = widgets.HTML('<span style="font:11px sans-serif;color:#666">speed knobs, lossy: 0 = '
                                  "upstream's (10 CFM steps, 2 for turbo; the whole prompt)</span>")
        # token streaming: auto plays a sentence in pieces where it pays (turbo; any model on a GPU)
        self.stream = widgets.Dropdown(options=[("auto", None), ("on", True), ("off", False)],
                                       value=defaults.pop("stream", None), description="stream", style=style)
        seed = defaults.pop("seed", None)
        self.seed = widgets.Text(value="" if seed is None else str(seed), placeholder="none", description="seed", style=style)
        self.generate_button = widgets.Button(description="Generate", button_style="primary", icon="play")
        self.generate_button.add_class("cnb-generate")
        self.status = widgets.HTML("")
        self.bar = widgets.FloatProgress(min=0.0, max=1.0, value=0.0, layout=widgets.Layout(width="320px", height="10px",
                                                                                            visibility="hidden"))
        self.result = widgets.VBox([])
        self.result.add_class("cnb-ui-result")
        self.models = widgets.HTML(self._models_html())
        advanced = widgets.Accordion([widgets.VBox([self.sliders[k] for k, *_r, adv in _SLIDERS if adv]
                                                 + [self.max_tokens, self.stream, *self.knobs.values(), knobs_note])])
        advanced.set_title(0, "advanced")
        advanced.selected_index = None
        self.box = widgets.VBox([
            widgets.HTML(f'{HIDE_SAVED_CSS}<b style="font:13px sans-serif;{TEXT}">Chatterbox</b>'),
            self.text,
            widgets.HBox([self.model, self.voice, self.lang]),
            *(self.sliders[k] for k, *_r, adv in _SLIDERS if not adv),
            advanced,
            widgets.HBox([self.seed, self.generate_button]),
            widgets.HBox([self.status, self.bar]),
            self.result,
            self.models,
        ])
        self.box.add_class("cnb-ui")
        self.model.observe(self._on_model, names="value")
        self.generate_button.on_click(lambda _b: self.start())
        self._on_model({"new": model})

    # -- reading the widgets ------------------------------------------------------------

    @staticmethod
    def _voice_names() -> list[str]:
        from ..voices_api import voices

        try:
            return voices.names()
        except (OSError, ChatterboxError):
            return []

    def _on_model(self, change: dict[str, Any]) -> None:
        """Language is a choice of the multilingual model only; the sliders take its defaults,
        and those of options the model ignores are greyed out."""
        model = change["new"]
        multi = SPECS[model].takes_language
        for key, slider in self.sliders.items():
            slider.disabled = key not in SPECS[model].honours
        if multi and len(self.lang.options) < 2:
            from ..engine.specs import languages

            current = self.lang.value
            self.lang.options = sorted(languages())
            self.lang.value = current if current in self.lang.options else "en"
        self.lang.disabled = not multi
        if change.get("old") is not None:
            spec_defaults = SPECS[model].defaults()
            for key, spec_key, *_r in _SLIDERS:
                self.sliders[key].value = spec_defaults[spec_key]

    def kwargs(self) -> dict[str, Any]:
        """What Generate passes to `api.say`; a bad seed is the one mistake the widgets allow."""
        seed = self.seed.value.strip()
        if seed and not seed.isdigit():
            raise ChatterboxError(f"The seed must be a whole number (or empty), not {seed!r}.")
        return {
            "model": self.model.value,
            "voice": None if self.voice.value == BUILT_IN else self.voice.value,
            "lang": self.lang.value if SPECS[self.model.value].takes_language else None,
            **{k: w.value for k, w in self.sliders.items()},
            "seed": int(seed) if seed else None,
            "max_tokens": self.max_tokens.value,
            "stream": self.stream.value,
            **{k: w.value for k, w in self.knobs.items() if w.value},
            **{k: v for k, v in self.fixed.items() if v is not None},
        }

    # -- generating ---------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> threading.Thread | None:
        """Generate in the background (the button's action); None if one is running."""
        if self.busy:
            return None
        self.generate_button.disabled = True
        self.generate_button.description, self.generate_button.icon = "Generating\u2026", "spinner spin"
        self.error, self._progress, self._made = "", ("starting", 0), 0
        self.bar.value, self.bar.bar_style, self.bar.layout.visibility = 0.0, "info", "visible"
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
                    utt = say(self.text.value, **kwargs)
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
                self.result.children = [utterance_widget(utt)]
            self._keep(utt)
            self.status.value = f'<span style="font:12px sans-serif;{TEXT}">&#10003; done in {time.perf_counter() - begin:.2f} s</span>'
        finally:
            SHOW.reset(token)
            self.bar.layout.visibility = "hidden"
            self.generate_button.disabled = False
            self.generate_button.description, self.generate_button.icon = "Generate", "play"
            self.models.value = self._models_html()

    def _show_live(self, player: Any, shown: list[Any]) -> None:
        shown.append(player)
        self.result.children = [player.box]

    def _on_progress(self, stage: str, tokens: int) -> None:
        if stage == "vocoder" and self._progress[0] == "tokens":
            self._made += tokens  # a chunk's tokens are all sampled
        self._progress = (stage, tokens)  # called per token: only remember; the ticker draws

    def _tick(self, begin: float, done: threading.Event) -> None:
        """The status line: tokens made and the audio they hold (the cap, 1000 by default, is
        only a ceiling: the stop token ends a sentence long before), the bar against the
        tokens the text is expected to take."""
        from ..estimate import TOKENS_PER_S, expected_tokens

        expected = expected_tokens(self.text.value, self.lang.value)
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
            self.bar.value = value
            self.status.value = f'<span style="font:12px sans-serif;{TEXT}">&#8987; Generating\u2026 {what} \u00b7 {time.perf_counter() - begin:.1f} s</span>'
            self.models.value = self._models_html()

    def _fail(self, message: str) -> None:
        self.error = message
        line = message.splitlines()[0] if message else "failed"
        self.status.value = f'<span class="cnb-ui-error" style="font:12px sans-serif;{ERROR}">&#10007; {html.escape(line)}</span>'

    @staticmethod
    def _models_html() -> str:
        return f'<div style="font:11px sans-serif;{MUTED}">{html.escape(models_line())}</div>'

    # -- display ------------------------------------------------------------------------

    def __repr__(self) -> str:
        return (f"<chatterbox_nb ui panel: model {self.model.value}, voice {self.voice.value}; "
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
            view = self.box._repr_mimebundle_()
            bundle.update({k: v for k, v in view.items() if k != "text/plain"})
        return bundle


def ui(text: str = "", **defaults: Any) -> Panel:
    """The interactive panel; keyword arguments (as for `say`) preset its widgets."""
    return Panel(text, **defaults)
