"""Voice conditionals on disk as safetensors (no pickle), with a digest checked at every read.

The disk cache stores each model's built-in voice this way, and `voices.py` each
computed voice; both reach these through `diskcache` (`diskcache.save_conds`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from . import checkpoint
from ..specs import ModelSpec


def _digest(tensors: dict[str, Any]) -> str:
    """sha256 over names and raw bytes: conditionals are small, so checking them at
    every load from disk costs microseconds."""
    import torch

    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def save_conds(conds: Any, path: Path) -> None:
    """Conditionals as safetensors (no pickle): tensors by dotted name, None-valued
    fields and a digest of the tensors in the metadata."""
    import torch
    from safetensors.torch import save_file

    tensors, nones = {}, []
    for prefix, fields in (("t3", vars(conds.t3)), ("gen", conds.gen)):
        for key, value in fields.items():
            if value is None:
                nones.append(f"{prefix}.{key}")
            else:
                tensors[f"{prefix}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous().clone()
    save_file(tensors, path, metadata={"none": json.dumps(nones), "digest": _digest(tensors)})


def load_conds(spec: ModelSpec, path: Path) -> Any:
    """Raises `ValueError` when the tensors do not match the digest they were saved with."""
    from chatterbox.models.t3.modules.cond_enc import T3Cond
    from safetensors import safe_open

    fields: dict[str, dict[str, Any]] = {"t3": {}, "gen": {}}
    tensors = {}
    with safe_open(path, framework="pt") as f:
        metadata = f.metadata() or {}
        for name in json.loads(metadata.get("none", "[]")):
            prefix, _, key = name.partition(".")
            fields[prefix][key] = None
        for name in f.keys():
            tensors[name] = f.get_tensor(name)
    if "digest" in metadata and _digest(tensors) != metadata["digest"]:
        raise ValueError(f"{path} does not match its digest")
    for name, tensor in tensors.items():
        prefix, _, key = name.partition(".")
        fields[prefix][key] = tensor
    return checkpoint.conditionals_class(spec)(T3Cond(**fields["t3"]), fields["gen"])
