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
#: the voice a say uses without `--voice`: each model's own `conds`, as upstream ships it
BUILT_IN_VOICE = "built-in"
# S3 speech tokens run at 25 Hz and S3Gen renders 24 kHz audio: 960 samples a token.
SAMPLES_PER_TOKEN = SAMPLE_RATE // 25
# S3 speech token ids S3Gen renders; T3's head also has start/stop and unused ids
SPEECH_VOCAB_SIZE = 6561
#: the say options that steer sampling (options.SAMPLING checks them), by their API names
SAMPLING_OPTIONS = ("exaggeration", "cfg", "temperature", "top_p", "min_p", "repetition_penalty")
#: the one whose upstream `generate` keyword is spelled differently
_UPSTREAM_KEYWORD = {"cfg": "cfg_weight"}


@dataclass(frozen=True)
class ModelSpec:
    """Everything that differs between the models: files, classes, and how upstream drives
    each one. The rest of the package reads these fields and never compares model names,
    so adding a model is one entry in `SPECS` (plus its tests)."""

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
    #: the sampling options (`SAMPLING_OPTIONS`) upstream's `generate` acts on; it takes the
    #: others and ignores them, so a say notes them and the panel greys their sliders
    honours: tuple[str, ...] = SAMPLING_OPTIONS
    #: the T3 method upstream's `generate` calls, and the keyword that caps its tokens
    t3_method: str = "inference"
    t3_cap_keyword: str = "max_new_tokens"
    #: tokens T3 samples before its capped loop (turbo samples one first)
    t3_tokens_before_loop: int = 0
    #: key prefix of T3's transformer blocks, used to count layers in a checkpoint
    t3_layer_prefix: str = "tfmr.layers."
    #: T3 feeds its own speech embeddings to its backbone, whose text embedding upstream deletes
    drops_backbone_embedding: bool = False
    #: `generate` takes a `language_id` (the others speak English only)
    takes_language: bool = False
    #: a reference voice must be longer than this many seconds (turbo refuses shorter ones)
    min_reference_s: float = 0.0
    #: how the tokenizer is made: "english" (EnTokenizer), "gpt2" (AutoTokenizer), "grapheme" (MTLTokenizer)
    tokenizer: str = "english"
    #: T3 layers of the reduced-size dummy checkpoint (`--weights dummy:reduced`)
    dummy_t3_layers: int = 2
    #: S3Gen estimator middle blocks of the reduced dummy (upstream: 12): the same U-Net,
    #: about a fifth of the work, so a reduced say's S3Gen is short (tests)
    dummy_s3gen_mid_blocks: int = 1
    #: transformer blocks in each block of the reduced dummy's estimator (upstream: 4): with
    #: one, a reduced say's CFM took a third of the time (0.55 s against 1.6 s, 14 tokens, one
    #: thread) and its compiled package builds faster
    dummy_s3gen_transformer_blocks: int = 1
    #: blocks of the reduced dummy's S3 tokenizer encoder, conformer encoder and its upsampling
    #: half (upstream: 6, 6, 4): with one each, the reduced S3Gen file is 0.3 GB instead of
    #: 0.8 (the tokenizer's encoder alone was 0.47), which every cache build hashes and writes
    dummy_s3gen_front_blocks: int = 1
    #: upstream's `generate` does not drop the token ids S3Gen cannot render (random weights sample them)
    keeps_unrenderable_tokens: bool = False
    #: token streaming (engine/generation/streaming.py): the first piece's tokens (small: the first sound
    #: comes early), the earlier tokens S3Gen re-renders before each later piece for a
    #: seamless join, and the share of the time spent on a piece's tokens that what a
    #: render costs beyond them (the reference prompt, re-read on every call, the context)
    #: may add; later pieces grow until they fit it. English's S3Gen (10 CFM steps over
    #: prompt + tokens) is expensive per call; turbo's meanflow S3Gen (2 steps) ~10x cheaper.
    stream_first_tokens: int = 12
    stream_context_tokens: int = 8
    stream_overhead: float = 0.1
    #: T3's time per token over S3Gen's per rendered token (prompt included), as measured on the
    #: 2-core AVX-512 CPU in bfloat16 (english: 95 ms / 52 ms); plans the pieces (streaming.piece_tokens)
    stream_t3_per_s3gen_token: float = 1.8
    #: streaming is on by default on a CPU (on an accelerator it always is): english's first
    #: extra S3Gen call re-reads the whole prompt, +40 % on a one-sentence say on 2 cores
    #: (benchmarks/bench_streaming.py), so there it streams only when asked (`--stream`)
    stream_pays_on_cpu: bool = True
    #: what warm-up says, in `default_language`: short, medium, long (light warm-up: the first)
    warmup_texts: tuple[str, ...] = (
        "Hi.",
        "Warming up the model now.",
        "This longer sentence warms up the attention for longer inputs, too.",
    )

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

    def ignored(self, given: dict[str, Any]) -> list[str]:
        """The sampling options in `given` (API names) set away from this model's default
        that its `generate` ignores, in `SAMPLING_OPTIONS` order."""
        defaults = self.defaults()
        return [name for name in SAMPLING_OPTIONS if name not in self.honours and given.get(name) is not None
                and given[name] != defaults.get(_UPSTREAM_KEYWORD.get(name, name))]

    @property
    def default_language(self) -> str | None:
        """The language warm-up speaks in (None: the model takes none)."""
        return "en" if self.takes_language else None


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
        stream_pays_on_cpu=False,
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
        t3_method="inference_turbo",
        t3_cap_keyword="max_gen_len",
        t3_tokens_before_loop=1,
        t3_layer_prefix="tfmr.h.",
        drops_backbone_embedding=True,
        min_reference_s=5.0,
        tokenizer="gpt2",
        # upstream's turbo `generate` logs that CFG, min_p and exaggeration "will be ignored"
        honours=("temperature", "top_p", "repetition_penalty"),
        stream_first_tokens=8,
        stream_context_tokens=10,
        stream_overhead=0.3,
        stream_t3_per_s3gen_token=8.7,  # 83 ms per token / 2.31 s over 150 + 93 tokens (bench_streaming)
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
        takes_language=True,
        tokenizer="grapheme",
        # its alignment analyzer spies on attention heads in layers 9, 12 and 13
        dummy_t3_layers=14,
        keeps_unrenderable_tokens=True,
        stream_pays_on_cpu=False,
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
