"""What each Chatterbox model is made of: hub repo, file names, classes, T3 config.

These are facts about chatterbox-tts 0.1.7 (see its `from_local` methods); the rest of
the engine reads them from here instead of repeating them. Nothing here imports torch
at module level.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

# Upstream's T3 loop hard-codes 1000 new tokens; we expose it as --max-tokens.
DEFAULT_MAX_TOKENS = 1000
SAMPLE_RATE = 24_000
# S3 speech tokens run at 25 Hz and S3Gen renders 24 kHz audio: 960 samples a token.
SAMPLES_PER_TOKEN = SAMPLE_RATE // 25


@dataclass(frozen=True)
class ModelSpec:
    name: str
    repo_id: str
    tts_class: str  # "module:Class"
    ve_file: str
    t3_file: str
    s3gen_file: str
    tokenizer_files: tuple[str, ...]
    hub_patterns: tuple[str, ...]
    meanflow: bool = False
    #: keyword defaults of the upstream `generate` (the ones we expose)
    generate_defaults: tuple[tuple[str, Any], ...] = ()

    @property
    def weight_files(self) -> tuple[str, str, str]:
        return (self.ve_file, self.t3_file, self.s3gen_file)

    @property
    def files(self) -> tuple[str, ...]:
        return (*self.weight_files, *self.tokenizer_files, "conds.pt")

    def tts_cls(self) -> type:
        module, _, cls = self.tts_class.partition(":")
        return getattr(importlib.import_module(module), cls)

    def defaults(self) -> dict[str, Any]:
        return dict(self.generate_defaults)


_ENGLISH_DEFAULTS = (
    ("exaggeration", 0.5),
    ("cfg_weight", 0.5),
    ("temperature", 0.8),
    ("top_p", 1.0),
    ("min_p", 0.05),
    ("repetition_penalty", 1.2),
)

SPECS: dict[str, ModelSpec] = {
    "english": ModelSpec(
        name="english",
        repo_id="ResembleAI/chatterbox",
        tts_class="chatterbox.tts:ChatterboxTTS",
        ve_file="ve.safetensors",
        t3_file="t3_cfg.safetensors",
        s3gen_file="s3gen.safetensors",
        tokenizer_files=("tokenizer.json",),
        hub_patterns=("ve.safetensors", "t3_cfg.safetensors", "s3gen.safetensors", "tokenizer.json", "conds.pt"),
        generate_defaults=_ENGLISH_DEFAULTS,
    ),
    "turbo": ModelSpec(
        name="turbo",
        repo_id="ResembleAI/chatterbox-turbo",
        tts_class="chatterbox.tts_turbo:ChatterboxTurboTTS",
        ve_file="ve.safetensors",
        t3_file="t3_turbo_v1.safetensors",
        s3gen_file="s3gen_meanflow.safetensors",
        tokenizer_files=("tokenizer_config.json",),  # plus vocab.json/merges.txt or tokenizer.json
        hub_patterns=("*.safetensors", "*.json", "*.txt", "*.pt", "*.model"),
        meanflow=True,
        generate_defaults=(
            ("exaggeration", 0.0),
            ("cfg_weight", 0.0),
            ("temperature", 0.8),
            ("top_p", 0.95),
            ("min_p", 0.0),
            ("repetition_penalty", 1.2),
        ),
    ),
    "multilingual": ModelSpec(
        name="multilingual",
        repo_id="ResembleAI/chatterbox",
        tts_class="chatterbox.mtl_tts:ChatterboxMultilingualTTS",
        ve_file="ve.pt",
        t3_file="t3_mtl23ls_v2.safetensors",
        s3gen_file="s3gen.pt",
        tokenizer_files=("grapheme_mtl_merged_expanded_v1.json", "Cangjie5_TC.json"),
        hub_patterns=(
            "ve.pt",
            "t3_mtl23ls_v2.safetensors",
            "s3gen.pt",
            "grapheme_mtl_merged_expanded_v1.json",
            "conds.pt",
            "Cangjie5_TC.json",
        ),
        generate_defaults=(*_ENGLISH_DEFAULTS[:-1], ("repetition_penalty", 2.0)),
    ),
}


def languages() -> dict[str, str]:
    """Language codes of the multilingual model, as chatterbox-tts lists them.
    (Importing `chatterbox.mtl_tts` imports torch, so this is only called when needed.)"""
    from chatterbox.mtl_tts import SUPPORTED_LANGUAGES

    return dict(SUPPORTED_LANGUAGES)


def t3_config(spec: ModelSpec, n_layers: int | None = None) -> Any:
    """The T3Config that `from_local` builds, optionally with fewer transformer layers.

    A reduced-size T3 (same classes, fewer layers) is registered as an extra entry in
    upstream's LLAMA_CONFIGS table, which is how T3 picks its backbone.
    """
    from chatterbox.models.t3.llama_configs import LLAMA_CONFIGS
    from chatterbox.models.t3.modules.t3_config import T3Config

    if spec.name == "turbo":
        hp = T3Config(text_tokens_dict_size=50276)
        hp.llama_config_name = "GPT2_medium"
        hp.speech_tokens_dict_size = 6563
        hp.input_pos_emb = None
        hp.speech_cond_prompt_len = 375
        hp.use_perceiver_resampler = False
        hp.emotion_adv = False
    elif spec.name == "multilingual":
        hp = T3Config.multilingual()
    else:
        hp = T3Config.english_only()

    base = LLAMA_CONFIGS[hp.llama_config_name]
    layers_key = "n_layer" if base.get("model_type") == "gpt2" else "num_hidden_layers"
    if n_layers is not None and n_layers != base[layers_key]:
        name = f"{hp.llama_config_name}-{n_layers}L"
        LLAMA_CONFIGS.setdefault(name, {**base, layers_key: n_layers})
        hp.llama_config_name = name
    return hp


def t3_layer_prefix(spec: ModelSpec) -> str:
    """Key prefix of T3's transformer blocks, used to count layers in a checkpoint."""
    return "tfmr.h." if spec.name == "turbo" else "tfmr.layers."
