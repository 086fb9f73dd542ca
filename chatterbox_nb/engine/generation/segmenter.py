"""Chinese word segmentation (spacy_pkuseg) for the multilingual model, without a raw
traceback when it cannot be had.

Upstream's tokenizer segments Chinese with `spacy_pkuseg.pkuseg()`, which downloads its
model from GitHub on first use; offline that ends the say in a `ConnectionError`. Here
the segmenter is built before the first Chinese say: a one-time download is announced
in one line, and a failed one is said in one line (what is missing, how to get it)
while the say goes on without segmentation, as upstream does when pkuseg is absent.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

__all__ = ["Unsegmented", "prepare"]

log = logging.getLogger("chatterbox_nb")
_MODEL = "spacy_ontonotes"  # what upstream's `pkuseg()` loads


class Unsegmented:
    """A segmenter that leaves the text whole: upstream then encodes it glyph by glyph."""

    def cut(self, text: str) -> list[str]:
        return [text]


def model_file() -> Path:
    """Where pkuseg keeps its downloaded model (`PKUSEG_HOME`, default ~/.pkuseg)."""
    from spacy_pkuseg import config

    return Path(config.pkuseg_home) / os.path.basename(urlparse(config.model_urls[_MODEL]).path)


def _build() -> Any:
    try:
        from spacy_pkuseg import pkuseg
    except ImportError:
        log.warning("Chinese is spoken without word segmentation: spacy_pkuseg is not installed "
                    "(pip install spacy-pkuseg).")
        return Unsegmented()
    if not model_file().exists():
        log.warning(f"Chinese needs pkuseg's segmentation model; downloading it once to "
                    f"{model_file().parent} ...")
    try:
        return pkuseg()
    except Exception as exc:  # noqa: BLE001 - offline, a proxy, a broken zip: speak without it
        why = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        log.warning(f"Chinese is spoken without word segmentation: pkuseg's model ({_MODEL}) could "
                    f"not be downloaded ({why}). To get it, run `import spacy_pkuseg; spacy_pkuseg.pkuseg()` once "
                    f"with network (it goes to {model_file().parent}; PKUSEG_HOME moves it), then reload the model.")
        return Unsegmented()


def prepare(tts: Any, language: str | None) -> None:
    """Before a Chinese say: give the tokenizer's Cangjie converter its segmenter, if it
    has none yet (built once per model; the caller holds the model)."""
    if language != "zh":
        return
    converter = getattr(getattr(tts, "tokenizer", None), "cangjie_converter", None)
    if converter is None:
        return
    # checkpoint.py's converter builds its segmenter lazily, on first use (`_segmenter` None
    # until then); upstream's own builds it when the model loads
    if "_segmenter" in vars(converter) and converter._segmenter is None:
        converter.segmenter = _build()
