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
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import CheckpointError
from ..specs import ModelSpec

log = logging.getLogger(__name__)


def check_files(spec: ModelSpec, folder: Path) -> None:
    missing = [name for name in spec.files if not (folder / name).is_file()]
    if missing:
        needs = "" if len(missing) == len(spec.files) else f" (it needs {', '.join(spec.files)})"
        raise CheckpointError(f"The {spec.name} checkpoint in {folder} is missing {', '.join(missing)}{needs}.")


@dataclass
class Parts:
    """What a model is built from: three mapped state dicts, the built-in voice and
    the folder that holds the tokenizer files."""

    ve: dict[str, Any]
    t3: dict[str, Any]
    s3gen: dict[str, Any]
    conds: Any
    tokenizer_folder: Path
    #: the tokenizer, when it was made with the rest (a disk-cache entry, under its lock)
    tokenizer: Any = None


def read_parts(spec: ModelSpec, folder: Path) -> Parts:
    """The parts of a checkpoint folder in the official layout."""
    check_files(spec, folder)
    return Parts(
        ve=read_weights(folder / spec.ve_file),
        t3=read_weights(folder / spec.t3_file),
        s3gen=read_weights(folder / spec.s3gen_file),
        conds=read_conditionals(spec, folder),
        tokenizer_folder=folder,
    )


def read_weights(path: Path) -> dict[str, Any]:
    """A state dict whose tensors are memory-mapped views of `path`."""
    import torch

    try:
        if path.suffix == ".safetensors":
            return map_safetensors(path)
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(f"Cannot read weights from {path}: {exc}", path=path, why=str(exc)) from exc


def safetensors_header(path: Path) -> tuple[dict[str, Any], int]:
    """The header and where the data starts, after checking that the header
    describes exactly the bytes in the file (a truncated file fails here)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ValueError("too short")
        (n,) = struct.unpack("<Q", head)
        if n > min(size - 8, 100 * 2**20):
            raise ValueError("bad header length")
        header = json.loads(f.read(n))
    end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    if 8 + n + end != size:
        raise ValueError(f"header describes {8 + n + end} bytes, file has {size}")
    return header, 8 + n


#: a mapped tensor this small that does not start on a 64-byte boundary is copied into memory,
#: where upstream's own load (a copy into the constructor's tensors) puts it: in float32 a
#: small product's last bits can depend on where its weights start. In a reduced dummy whose
#: S3Gen was laid out otherwise, its small `flow` linear layers, mapped off the boundary,
#: changed a say's audio by 2e-7 against upstream's; copying its encoder's, estimator's and
#: HiFiGAN's tensors changed nothing, so big tensors stay mapped. Copied: 45 MB of the reduced
#: english S3Gen's 801, 0.2 of its T3's 250.
COPIED_BELOW = 2**20
_ALIGNMENT = 64


def map_safetensors(path: Path) -> dict[str, Any]:
    """Like safetensors' `load_file`, but one shared MAP_PRIVATE storage and a view per
    tensor: S3Gen's 2,500 tensors cost 0.3 s through `load_file`, a few ms here."""
    import torch
    from safetensors.torch import _getdtype, load_file

    header, start = safetensors_header(path)
    storage = torch.UntypedStorage.from_file(str(path), shared=False, nbytes=path.stat().st_size)
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = _getdtype(info["dtype"])
        offset = start + info["data_offsets"][0]
        itemsize = torch.empty((), dtype=dtype).element_size()
        if offset % itemsize:  # an unaligned tensor: safetensors copes with it
            return load_file(path, device="cpu")
        tensor = torch.empty(0, dtype=dtype).set_(storage, offset // itemsize, info["shape"])
        small = info["data_offsets"][1] - info["data_offsets"][0] < COPIED_BELOW
        tensors[name] = tensor.clone() if offset % _ALIGNMENT and small else tensor
    return tensors


def weight_keys(path: Path) -> list[str]:
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(path, framework="pt") as f:
            return list(f.keys())
    return list(read_weights(path))


def count_t3_layers(spec: ModelSpec, keys: list[str]) -> int:
    """How many transformer blocks a T3 checkpoint has (reduced dummies have fewer)."""
    prefix = spec.t3_layer_prefix
    layers = {key[len(prefix) :].split(".", 1)[0] for key in keys if key.startswith(prefix)}
    if not layers:
        raise CheckpointError(f"The T3 weights of the {spec.name} checkpoint have no '{prefix}*' tensors.")
    return len(layers)


#: upstream's `S3Gen` builds its estimator with `num_mid_blocks=12`
OFFICIAL_MID_BLOCKS = 12
#: and `n_blocks=4` transformer blocks in each of its down, middle and up blocks
OFFICIAL_TRANSFORMER_BLOCKS = 4
#: S3Gen's lists of repeated blocks in front of the estimator, with upstream's lengths: the S3
#: tokenizer's encoder (read for a reference voice), and the conformer encoder and its
#: upsampling half (read on every say)
OFFICIAL_FRONT_BLOCKS = {"tokenizer.encoder.blocks": 6, "flow.encoder.encoders": 6, "flow.encoder.up_encoders": 4}
_ESTIMATOR_PREFIX = "flow.decoder.estimator."


@dataclass(frozen=True)
class S3GenShape:
    """What a reduced dummy's S3Gen leaves out of upstream's (None: as upstream builds it)."""

    mid_blocks: int | None = None
    transformer_blocks: int | None = None
    #: blocks kept in each of OFFICIAL_FRONT_BLOCKS' lists
    front_blocks: int | None = None


def _indices(keys: list[str], prefix: str) -> set[str]:
    return {key[len(prefix):].split(".", 1)[0] for key in keys if key.startswith(prefix)}


def s3gen_shape(keys: list[str]) -> S3GenShape:
    """The blocks of S3Gen's lists where a checkpoint has fewer than upstream builds (reduced
    dummies): the estimator's middle blocks, the transformer blocks in each of its blocks,
    and the blocks of each list in front of it (one number for all of those)."""
    mid = len(_indices(keys, _ESTIMATOR_PREFIX + "mid_blocks."))
    per_block = len(_indices(keys, _ESTIMATOR_PREFIX + "down_blocks.0.1."))
    fronts = {len(_indices(keys, name + ".")) for name in OFFICIAL_FRONT_BLOCKS}
    front = fronts.pop() if len(fronts) == 1 else None
    reduced_front = front is not None and all(0 < front < n for n in OFFICIAL_FRONT_BLOCKS.values())
    return S3GenShape(mid if 0 < mid < OFFICIAL_MID_BLOCKS else None,
                      per_block if 0 < per_block < OFFICIAL_TRANSFORMER_BLOCKS else None,
                      front if reduced_front else None)


def conditionals_class(spec: ModelSpec) -> type:
    module = importlib.import_module(spec.tts_class.partition(":")[0])
    return module.Conditionals


def read_conditionals(spec: ModelSpec, folder: Path) -> Any:
    """The built-in voice; `Conditionals.load` uses `torch.load(weights_only=True)`."""
    cls, path = conditionals_class(spec), folder / "conds.pt"
    try:
        return cls.load(path, map_location="cpu")
    except Exception as exc:  # torch.load raises many kinds for a damaged file
        raise CheckpointError(f"Cannot read the built-in voice {path}: {exc}", path=path, why=str(exc)) from exc


def make_tokenizer(spec: ModelSpec, folder: Path) -> Any:
    """The tokenizer of the kind the spec names, from the checkpoint folder. A file its
    reader cannot parse (tokenizers, json, transformers raise their own kinds) is a
    `CheckpointError` that names the file, never the reader's raw message alone."""
    try:
        return _TOKENIZER_MAKERS[spec.tokenizer](folder)
    except Exception as exc:  # noqa: BLE001 - each third-party reader raises its own kinds
        path = tokenizer_path(spec, folder)
        why = f"its tokenizer cannot be parsed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        raise CheckpointError(f"The {spec.name} tokenizer {path} is damaged ({why}).", path=path, why=why) from exc


def tokenizer_path(spec: ModelSpec, folder: Path) -> Path:
    """The tokenizer file to name when the tokenizer cannot be made (GPT-2's reader
    prefers tokenizer.json when there is one)."""
    if spec.tokenizer == "gpt2" and (folder / "tokenizer.json").is_file():
        return folder / "tokenizer.json"
    return folder / spec.tokenizer_files[0]


def _english_tokenizer(folder: Path) -> Any:
    from chatterbox.models.tokenizers import EnTokenizer

    return EnTokenizer(str(folder / "tokenizer.json"))


def _gpt2_tokenizer(folder: Path) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


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


#: a tokenizer maker for each kind a spec names (`ModelSpec.tokenizer`)
_TOKENIZER_MAKERS = {"english": _english_tokenizer, "gpt2": _gpt2_tokenizer, "grapheme": _local_mtl_tokenizer}
