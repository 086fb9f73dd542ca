"""Long text into chunks Chatterbox speaks well: whole sentences, short enough.

Chatterbox is trained on short utterances; its `generate` caps T3 at 1000 speech
tokens (40 s of audio), and quality drops well before that on long inputs. So text
is split into sentences with pysbd (a maintained rule-based segmenter that knows
"Dr. Smith", "3 p.m." and "e.g." are not sentence ends, which no short regex does),
then:

- each sentence is its own chunk, so the first one is ready as early as possible;
- a sentence under `MIN_CHARS` ("Yes.", "Hi there.") is merged with its neighbour:
  every chunk pays S3Gen's fixed cost (seconds on a CPU), and a lone word has no
  sentence around it;
- a sentence over `MAX_CHARS` characters or `MAX_WORDS` words (about 15 s of
  speech, well inside the 1000-token cap) is split at clause punctuation, then at
  spaces, then (text without spaces, as in Chinese or Japanese) anywhere.

Blank lines always end a chunk; single newlines are spaces. Pieces of one chunk are
joined the way the language writes them: with a space, or (Chinese, Japanese) with none.
"""

from __future__ import annotations

import functools
import re

__all__ = ["MAX_CHARS", "MAX_WORDS", "MIN_CHARS", "split_sentences", "chunk_text", "joiner"]

MAX_CHARS = 300
MAX_WORDS = 40
MIN_CHARS = 20

_CLAUSE_END = re.compile(r"(?<=[,;:\u2013\u2014\u3001\uff0c\uff1b])\s*")  # , ; : – — 、 ， ；
_PARAGRAPH = re.compile(r"\n\s*\n")
#: languages written without spaces between words or sentences
_NO_SPACES = frozenset({"zh", "ja"})


def joiner(language: str | None) -> str:
    """What goes between two sentences (or clauses) of `language` in one chunk."""
    return "" if (language or "").lower() in _NO_SPACES else " "


@functools.lru_cache(maxsize=None)
def _segmenter(language: str):  # noqa: ANN202 - pysbd.Segmenter
    import pysbd
    from pysbd.languages import LANGUAGE_CODES

    return pysbd.Segmenter(language=language if language in LANGUAGE_CODES else "en", clean=False)


def split_sentences(text: str, language: str | None = None) -> list[str]:
    """Sentences of `text`, paragraph by paragraph (pysbd; English rules unless it
    knows `language`)."""
    sentences: list[str] = []
    for paragraph in _PARAGRAPH.split(text):
        paragraph = " ".join(paragraph.split())
        if paragraph:
            sentences.extend(s.strip() for s in _segmenter(language or "en").segment(paragraph) if s.strip())
    return sentences


def _fits(text: str) -> bool:
    return len(text) <= MAX_CHARS and len(text.split()) <= MAX_WORDS


def _pack(pieces: list[str], sep: str = " ") -> list[str]:
    """Greedily join consecutive pieces while the result fits."""
    out: list[str] = []
    for piece in pieces:
        if out and _fits(out[-1] + sep + piece):
            out[-1] = out[-1] + sep + piece
        else:
            out.append(piece)
    return out


def _split_long(sentence: str, sep: str = " ") -> list[str]:
    if _fits(sentence):
        return [sentence]
    clauses = [c for c in _CLAUSE_END.split(sentence) if c]
    if len(clauses) > 1:
        return [part for clause in _pack(clauses, sep) for part in _split_long(clause, sep)]
    words = sentence.split()
    if len(words) > 1:
        return _pack(words) if all(_fits(w) for w in words) else [p for w in words for p in _split_long(w)]
    return [sentence[i : i + MAX_CHARS] for i in range(0, len(sentence), MAX_CHARS)]


def _merge_short(chunks: list[str], sep: str = " ") -> list[str]:
    out: list[str] = []
    for chunk in chunks:
        if out and (len(out[-1]) < MIN_CHARS or len(chunk) < MIN_CHARS) and _fits(out[-1] + sep + chunk):
            out[-1] = out[-1] + sep + chunk
        else:
            out.append(chunk)
    return out


def chunk_text(text: str, language: str | None = None) -> list[str]:
    """The chunks `say` generates one by one, in order; joined with `joiner(language)`
    they are the text again, up to whitespace."""
    sep = joiner(language)
    chunks: list[str] = []
    for paragraph in _PARAGRAPH.split(text):
        pieces = [p for s in split_sentences(paragraph, language) for p in _split_long(s, sep)]
        chunks.extend(_merge_short(pieces, sep))
    return chunks
