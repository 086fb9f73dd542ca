"""Reading a checkpoint folder in the official layout, without copying weights.

safetensors' `load_file` maps the file (its tensors are views of a MAP_PRIVATE
storage), and `torch.load(mmap=True, weights_only=True)` does the same for the
multilingual model's `.pt` files; so "reading" several GB of weights costs
milliseconds and no resident memory until a page is used.
"""

from __future__ import annotations

import importlib
import json
import logging
from pathlib import Path
from typing import Any

from ..errors import CheckpointError
from .specs import ModelSpec, t3_layer_prefix

log = logging.getLogger(__name__)


def check_files(spec: ModelSpec, folder: Path) -> None:
    missing = [name for name in spec.files if not (folder / name).is_file()]
    if missing:
        raise CheckpointError(
            f"The {spec.name} checkpoint in {folder} is missing {', '.join(missing)}; "
            f"it needs {', '.join(spec.files)}."
        )


def read_weights(path: Path) -> dict[str, Any]:
    """A state dict whose tensors are memory-mapped views of `path`."""
    import torch
    from safetensors.torch import load_file

    try:
        if path.suffix == ".safetensors":
            return load_file(path, device="cpu")
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(f"Cannot read weights from {path}: {exc}") from exc


def weight_keys(path: Path) -> list[str]:
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(path, framework="pt") as f:
            return list(f.keys())
    return list(read_weights(path))


def count_t3_layers(spec: ModelSpec, keys: list[str]) -> int:
    """How many transformer blocks a T3 checkpoint has (reduced dummies have fewer)."""
    prefix = t3_layer_prefix(spec)
    layers = {key[len(prefix) :].split(".", 1)[0] for key in keys if key.startswith(prefix)}
    if not layers:
        raise CheckpointError(f"The T3 weights of the {spec.name} checkpoint have no '{prefix}*' tensors.")
    return len(layers)


def conditionals_class(spec: ModelSpec) -> type:
    module = importlib.import_module(spec.tts_class.partition(":")[0])
    return module.Conditionals


def read_conditionals(spec: ModelSpec, folder: Path, device: str) -> Any:
    """The built-in voice; `Conditionals.load` uses `torch.load(weights_only=True)`."""
    return conditionals_class(spec).load(folder / "conds.pt", map_location="cpu").to(device)


def make_tokenizer(spec: ModelSpec, folder: Path) -> Any:
    if spec.name == "english":
        from chatterbox.models.tokenizers import EnTokenizer

        return EnTokenizer(str(folder / "tokenizer.json"))
    if spec.name == "turbo":
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(folder)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        return tokenizer
    return _local_mtl_tokenizer(folder)


def _local_mtl_tokenizer(folder: Path) -> Any:
    """MTLTokenizer that reads Cangjie5_TC.json from the checkpoint, not from the hub.

    Upstream's converter calls `hf_hub_download` in its constructor, which stalls
    offline although the file is part of the checkpoint. The segmenter (pkuseg,
    which downloads its own model) is only built when Chinese text needs it.
    """
    from chatterbox.models.tokenizers import tokenizer as upstream

    class LocalCangjieConverter(upstream.ChineseCangjieConverter):
        def __init__(self, model_dir: Path) -> None:  # noqa: D107 - upstream signature
            self.word2cj: dict[str, str] = {}
            self.cj2word: dict[str, list[str]] = {}
            self._segmenter: Any = None
            for entry in json.loads((Path(model_dir) / "Cangjie5_TC.json").read_text("utf-8")):
                word, code = entry.split("\t")[:2]
                self.word2cj[word] = code
                self.cj2word.setdefault(code, []).append(word)

        @property
        def segmenter(self) -> Any:
            if self._segmenter is None:
                self._init_segmenter()
            return self._segmenter

        @segmenter.setter
        def segmenter(self, value: Any) -> None:
            self._segmenter = value

    class LocalMTLTokenizer(upstream.MTLTokenizer):
        def __init__(self, vocab_file_path: str) -> None:  # noqa: D107 - upstream signature
            from tokenizers import Tokenizer

            self.tokenizer = Tokenizer.from_file(vocab_file_path)
            self.cangjie_converter = LocalCangjieConverter(Path(vocab_file_path).parent)
            self.check_vocabset_sot_eot()

    return LocalMTLTokenizer(str(folder / "grapheme_mtl_merged_expanded_v1.json"))
