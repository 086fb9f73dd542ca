"""Dummy checkpoints: the real chatterbox modules with seeded random weights.

Like vLLM's `--load-format dummy`, they let the whole pipeline (loading, caches,
warm-up, widgets) run offline. Files use the official names, layout and — at full
size — byte sizes; a tokenizer and a built-in voice (`conds.pt`, computed by
upstream's own `prepare_conditionals` from a synthetic reference) are made offline.
Random weights never sample the stop token, so cap tokens when you generate, or use
a `-stopping` variant (`dummy:reduced-stopping`): its T3 leans toward the stop token,
so each utterance ends after a seeded, varying number of tokens (the end-of-speech
paths, for tests).
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from . import fsutil
from .weights import DUMMY_SIZES
from .checkpoint import S3GenShape
from .layout import CacheLayout
from ..specs import SAMPLE_RATE, SPECS, ModelSpec

MARKER = "chatterbox_nb_dummy.json"
FORMAT = 6  # 2: the marker records each file's sha256; 3: reduced built-in voices are short; 4: and S3Gen too;
# 5: a reduced estimator has one transformer block in each block; 6: and S3Gen's lists in front of it one block
SIZES = DUMMY_SIZES
STOPPING = "-stopping"
# Reduced size keeps every class and shape but the T3 depth, the number of S3Gen's
# estimator middle blocks and of transformer blocks in each, and the blocks of S3Gen's
# encoders and its S3 tokenizer's (each spec says how many).
REDUCED_T3_LAYERS = {name: spec.dummy_t3_layers for name, spec in SPECS.items()}
# The built-in voice's reference length. At full size it is 6 s, like the official voice
# (150 prompt tokens, which S3Gen re-reads on every call); reduced checkpoints use 2 s,
# which makes each S3Gen call about 2.4x cheaper, unless the model needs a longer one.
BUILTIN_VOICE_S = {"full": 6.0, "reduced": 2.0}

_SPECIALS = ["[STOP]", "[UNK]", "[SPACE]", "[PAD]", "[SEP]", "[CLS]", "[MASK]"]
_CHARS = [chr(c) for c in range(33, 127)] + list("àâçéèêëîïôûùüÿñæœßäöå") + [chr(c) for c in range(0x300, 0x370)]


def dummy_dir(root: Path, model: str, size: str = "full", seed: int = 0) -> Path:
    return CacheLayout(root).dummy(model, size, seed)


def is_dummy(folder: Path) -> bool:
    return (folder / MARKER).is_file()


def _complete(folder: Path) -> bool:
    try:
        return json.loads((folder / MARKER).read_text())["format"] == FORMAT
    except (OSError, ValueError, KeyError):
        return False


def recorded_sha256(folder: Path, name: str) -> str | None:
    """The sha256 recorded when the dummy checkpoint was written (None if the record is unreadable)."""
    try:
        return json.loads((folder / MARKER).read_text()).get("files", {}).get(name)
    except (OSError, ValueError, AttributeError):
        return None


def remove_dummy(root: Path, model: str, size: str = "full", seed: int = 0) -> None:
    final = dummy_dir(root, model, size, seed)
    with fsutil.lock_for(final):
        fsutil.retire(final)


def ensure_dummy(root: Path, model: str, size: str = "full", seed: int = 0) -> Path:
    """The dummy checkpoint folder for (model, size, seed), built once under a lock."""
    final = dummy_dir(root, model, size, seed)
    if _complete(final):
        return final
    with fsutil.lock_for(final):
        if _complete(final):  # another process built it while we waited
            return final
        fsutil.clean_stale(final.parent, own=final.name)
        with fsutil.room_for(final.parent, "the dummy checkpoint"), fsutil.building(final) as tmp:
            write_dummy(SPECS[model], tmp, size, seed)
    return final


def write_dummy(spec: ModelSpec, folder: Path, size: str = "full", seed: int = 0) -> None:
    import torch
    from safetensors.torch import save_file

    from .build import _S3GEN_OPTIONAL, build_random

    base = size.removesuffix(STOPPING)
    n_layers = spec.dummy_t3_layers if base == "reduced" else None
    shape = S3GenShape(spec.dummy_s3gen_mid_blocks, spec.dummy_s3gen_transformer_blocks,
                       spec.dummy_s3gen_front_blocks) if base == "reduced" else S3GenShape()
    ve, t3, s3gen = build_random(spec, n_layers, seed, shape)
    if size.endswith(STOPPING):
        lean_to_stop(t3)
    for fname, module, skip in (
        (spec.ve_file, ve, ()),
        (spec.t3_file, t3, ()),
        (spec.s3gen_file, s3gen, _S3GEN_OPTIONAL),
    ):
        state = {k: v.contiguous() for k, v in module.state_dict().items() if k not in skip}
        if fname.endswith(".safetensors"):
            save_file(state, folder / fname)
        else:
            torch.save(state, folder / fname)
    _write_tokenizer(spec, folder)
    seconds = max(BUILTIN_VOICE_S[base], spec.min_reference_s + 1.0)
    _write_builtin_voice(spec, folder, ve.eval(), t3.eval(), s3gen.eval(), seed, seconds)
    files = {p.name: fsutil.sha256_file(p) for p in sorted(folder.iterdir())}
    marker = {"format": FORMAT, "model": spec.name, "size": size, "seed": seed, "t3_layers": n_layers,
              "s3gen_mid_blocks": shape.mid_blocks, "s3gen_transformer_blocks": shape.transformer_blocks,
              "s3gen_front_blocks": shape.front_blocks,
              "files": files}
    (folder / MARKER).write_text(json.dumps(marker, indent=1))


# One channel of every speech embedding is raised by LEAN_OFFSET (the embeddings are
# N(0, 1)); it rides T3's residual stream to the speech head, whose stop-token row reads
# that channel alone, with weight LEAN_WEIGHT. The stop logit then sits near the top of
# the others and, with min_p, wins now and then: on the reduced english dummy, seeds
# 0-5 stop after 41, 8, 76, 13, 22 and 32 tokens (bfloat16 T3). Shapes are untouched.
LEAN_CHANNEL, LEAN_OFFSET, LEAN_WEIGHT = 0, 3.0, 0.8


def lean_to_stop(t3: Any) -> None:
    """Make a randomly initialised T3 end its utterances (see LEAN_* above)."""
    import torch

    with torch.no_grad():
        t3.speech_emb.weight[:, LEAN_CHANNEL] += LEAN_OFFSET
        row = t3.speech_head.weight[t3.hp.stop_speech_token]
        row.zero_()
        row[LEAN_CHANNEL] = LEAN_WEIGHT
        if t3.speech_head.bias is not None:
            t3.speech_head.bias[t3.hp.stop_speech_token] = 0.0


def synthetic_voice(seconds: float = 6.0, sr: int = SAMPLE_RATE, seed: int = 0) -> np.ndarray:
    """A voice-like signal: a gliding harmonic tone in syllable-shaped bursts, plus breath noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 130 + 25 * np.sin(2 * np.pi * 0.7 * t) + 8 * np.sin(2 * np.pi * 5.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    tone = sum(np.sin(k * phase) / k for k in range(1, 12))
    syllables = np.clip(np.sin(2 * np.pi * 3.2 * t + rng.uniform(0, np.pi)), 0, None) ** 0.6
    wav = 0.3 * tone * syllables + 0.01 * rng.standard_normal(t.size)
    return (0.8 * wav / np.abs(wav).max()).astype(np.float32)


def _write_builtin_voice(spec: ModelSpec, folder: Path, ve: Any, t3: Any, s3gen: Any, seed: int, seconds: float) -> None:
    import soundfile as sf

    from .checkpoint import make_tokenizer

    with contextlib.redirect_stdout(io.StringIO()):  # perth announces itself on stdout
        tts = spec.tts_cls()(t3, s3gen, ve, make_tokenizer(spec, folder), "cpu")
    with tempfile.TemporaryDirectory() as tmp:
        ref = Path(tmp) / "reference.wav"
        sf.write(ref, synthetic_voice(seconds, seed=seed), SAMPLE_RATE)
        tts.prepare_conditionals(str(ref))
    tts.conds.save(folder / "conds.pt")


def _write_tokenizer(spec: ModelSpec, folder: Path) -> None:
    _TOKENIZER_WRITERS[spec.tokenizer](folder)


def _write_english_tokenizer(folder: Path) -> None:
    vocab = _indexed(_SPECIALS, _CHARS, start_text_id=255)
    _save_char_tokenizer(vocab, folder / "tokenizer.json")


def _write_grapheme_tokenizer(folder: Path) -> None:
    from chatterbox.mtl_tts import SUPPORTED_LANGUAGES

    languages = [f"[{code}]" for code in SUPPORTED_LANGUAGES]
    chars = [c for c in _CHARS if not c.isupper()]
    vocab = _indexed(_SPECIALS + languages, chars, start_text_id=255)
    _save_char_tokenizer(vocab, folder / "grapheme_mtl_merged_expanded_v1.json")
    (folder / "Cangjie5_TC.json").write_text(json.dumps(["日\ta", "月\tb", "中\tl"]), "utf-8")


def _indexed(specials: list[str], chars: list[str], start_text_id: int) -> dict[str, int]:
    """[STOP] must be id 0 and [START] id 255, as T3Config's start/stop text tokens."""
    tokens = [*specials, *chars]
    filler = [f"[UNUSED{i}]" for i in range(max(0, start_text_id - len(tokens)))]
    tokens = [*tokens[:start_text_id], *filler, "[START]", *tokens[start_text_id:]]
    return {token: i for i, token in enumerate(tokens)}


def _save_char_tokenizer(vocab: dict[str, int], path: Path) -> None:
    from tokenizers import Tokenizer
    from tokenizers.models import BPE

    tokenizer = Tokenizer(BPE(vocab=vocab, merges=[], unk_token="[UNK]"))
    tokenizer.add_special_tokens([t for t in vocab if t.startswith("[")])
    tokenizer.save(str(path))


def _save_gpt2_tokenizer(folder: Path) -> None:
    """A byte-level GPT-2 tokenizer with no merges (257 tokens; upstream's has 50276)."""
    from tokenizers import Tokenizer, decoders, pre_tokenizers
    from tokenizers.models import BPE
    from transformers import GPT2TokenizerFast

    vocab = {ch: i for i, ch in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    vocab["<|endoftext|>"] = len(vocab)
    tok = Tokenizer(BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tokenizer = GPT2TokenizerFast(
        tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>"
    )
    tokenizer.save_pretrained(folder)
    # GPT-2's classic files too, as in a hub snapshot (AutoTokenizer prefers tokenizer.json).
    (folder / "vocab.json").write_text(json.dumps(vocab), "utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", "utf-8")


#: a tokenizer for each kind a spec names (`ModelSpec.tokenizer`)
_TOKENIZER_WRITERS = {
    "english": _write_english_tokenizer,
    "grapheme": _write_grapheme_tokenizer,
    "gpt2": _save_gpt2_tokenizer,
}
