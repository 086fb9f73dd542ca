"""Upstream's log lines that reach the user's cell, for the length of one say: dropped
where the user can do nothing about them, or replaced by one line that says what to do.

chatterbox-tts and transformers log through `logging`; with no handler configured
Python prints each record into the cell. A `logging.Filter` on the one logger that
emits a line, matched on its message, touches nothing else (a real warning from the
same logger passes), and unlike `warnings.catch_warnings` it is safe in threads.
Each replacement is said once per say, however many sentences repeat it.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from dataclasses import dataclass
from typing import Iterator

__all__ = ["RULES", "Rule", "translated"]

_EXTRA = "pip install 'chatterbox_nb[languages]'"


@dataclass(frozen=True)
class Rule:
    """A record from `logger` whose message holds every one of `parts`: dropped (`say`
    None) or replaced by `say`."""

    logger: str
    parts: tuple[str, ...]
    say: str | None = None


RULES: tuple[Rule, ...] = (
    # T3's decode loop asks for attentions on every step (the alignment analyzer reads them)
    Rule("transformers.generation.configuration_utils", ("generation flags are not valid", "output_attentions")),
    # ... and sdpa attention says once per process that it cannot give them
    Rule("transformers.integrations.sdpa_attention", ("does not support `output_attentions=True`",)),
    # api.say names the options turbo ignores itself, once per say (ModelSpec.honours)
    Rule("chatterbox.tts_turbo", ("not supported by Turbo",)),
    Rule("chatterbox.models.tokenizers.tokenizer", ("dicta_onnx not available",),
         f"Hebrew is spoken without vowel marks (dicta_onnx is not installed): {_EXTRA}"),
    Rule("chatterbox.models.tokenizers.tokenizer", ("russian_text_stresser not available",),
         "Russian is spoken without stress marks (russian_text_stresser is not installed; "
         "it is not on PyPI, so the 'languages' extra cannot bring it: install it from its source)"),
)

_ACTIVE: contextvars.ContextVar[bool] = contextvars.ContextVar("chatterbox_nb_upstream_logs", default=False)


class _Translate(logging.Filter):
    def __init__(self, rules: tuple[Rule, ...]) -> None:
        super().__init__()
        self.rules = rules
        self.said: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        for rule in self.rules:
            if rule.logger == record.name and all(part in message for part in rule.parts):
                if rule.say is None or rule.say in self.said:
                    return False
                self.said.add(rule.say)
                record.msg, record.args = rule.say, ()
                return True
        return True


@contextlib.contextmanager
def translated(rules: tuple[Rule, ...] = RULES) -> Iterator[None]:
    """Within this block (and the threads started in it with its context), upstream's
    lines in `rules` are dropped or replaced; nested blocks share the outer one's
    filter, so a replacement is said once per outermost block (one say)."""
    if _ACTIVE.get():
        yield
        return
    translate = _Translate(rules)
    loggers = [logging.getLogger(name) for name in dict.fromkeys(r.logger for r in rules)]
    for logger in loggers:
        logger.addFilter(translate)
    token = _ACTIVE.set(True)
    try:
        yield
    finally:
        _ACTIVE.reset(token)
        for logger in loggers:
            logger.removeFilter(translate)
