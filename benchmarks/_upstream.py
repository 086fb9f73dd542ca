"""Upstream's own `from_local`, fitted to the checkpoint's files: the one copy that the
upstream worker (bench_*), `gpu_check.py` and the bit-identity tests load upstream with.

A reduced dummy has fewer T3 layers and S3Gen blocks than upstream builds, so its
constructors get those counts (read from the files, as chatterbox_nb's loader reads them;
the modules stay upstream's). Turbo's `from_local` loads S3Gen strictly and the dummy's
file, like the hub's english one, holds no copy of the S3 tokenizer's mel filters and
window: those two are taken from the module as its constructor made them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

_S3GEN_OPTIONAL = ("tokenizer._mel_filters", "tokenizer.window")


def from_local(spec: Any, folder: Path, device: str, adjusted: list[str] | None = None) -> Any:
    """Upstream's `from_local`; `adjusted` gets what was changed for these files (nothing for a
    full-size english checkpoint)."""
    from unittest import mock

    from chatterbox.models.s3gen import S3Gen
    from chatterbox.models.t3 import T3

    from chatterbox_nb.engine.specs import t3_config
    from chatterbox_nb.engine.store.build import trim_s3gen
    from chatterbox_nb.engine.store.checkpoint import count_t3_layers, s3gen_shape, weight_keys

    adjusted = [] if adjusted is None else adjusted
    layers = count_t3_layers(spec, weight_keys(folder / spec.t3_file))
    shape = s3gen_shape(weight_keys(folder / spec.s3gen_file))

    hp = t3_config(spec, layers)
    reduced_t3 = hp.llama_config_name != t3_config(spec).llama_config_name
    if reduced_t3:
        adjusted.append(f"T3 built with the checkpoint's {layers} layers")
    if shape.mid_blocks is not None:
        adjusted.append(f"S3Gen's estimator built with the checkpoint's {shape.mid_blocks} middle blocks")
    if shape.transformer_blocks is not None:
        adjusted.append(f"S3Gen's estimator built with the checkpoint's {shape.transformer_blocks} transformer "
                        "blocks in each block")
    if shape.front_blocks is not None:
        adjusted.append(f"S3Gen's encoders and S3 tokenizer built with the checkpoint's {shape.front_blocks} "
                        "blocks each")

    def s3gen(*args: Any, **kwargs: Any) -> Any:
        module = trim_s3gen(S3Gen(*args, **kwargs), shape)
        built = module.state_dict()
        strict_load = module.load_state_dict

        def load_state_dict(state: dict, *a: Any, **k: Any) -> Any:
            missing = {key: built[key] for key in _S3GEN_OPTIONAL if key in built and key not in state}
            if missing and k.get("strict", a[0] if a else True):
                adjusted.append(f"S3Gen's {', '.join(missing)} as its constructor made them (strict load)")
            return strict_load({**state, **missing}, *a, **k)

        module.load_state_dict = load_state_dict
        return module

    def t3(*args: Any, **kwargs: Any) -> Any:  # english builds T3(), turbo T3(hp): the reduced config for both
        return T3(hp) if reduced_t3 else T3(*args, **kwargs)

    module = spec.tts_class.partition(":")[0]
    with mock.patch(f"{module}.T3", t3), mock.patch(f"{module}.S3Gen", s3gen):
        return spec.tts_cls().from_local(folder, device)
