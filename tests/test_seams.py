"""The seams into chatterbox-tts (engine/seams/), checked against the pinned version.

Upstream's internals are not an API: each seam relies on a shape (a method and its
keywords, a module global a function calls, a loop). One contract test per seam reads
that shape off the installed package, so an upgrade that moves one fails here, naming
the seam, before a user's say does. The checks are plain functions returning problems;
the last tests run them against stand-ins that lack the shape, to see them fail.
Then: the seams restore exactly what was there, nested and across threads, and a say
leaves upstream as it found it.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import logging
import math
import inspect
import textwrap
import types
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from kernel_utils import seen_after_the_first_left

from chatterbox_nb.engine.seams import logs, points
from chatterbox_nb.engine.seams.hooks import Seam
from chatterbox_nb.engine.specs import SPECS

PINNED = "0.1.7"
T3_MODULE = "chatterbox.models.t3.t3"
#: the estimator's seams live in seams/estimator.py (the compiled path); their upstream shapes are checked here
ESTIMATOR_FORWARD = ("x", "mask", "mu", "t", "spks", "cond", "r")
CHUNK_MASK = ("xs", "masks", "use_dynamic_chunk", "use_dynamic_left_chunk", "decoding_chunk_size",
              "static_chunk_size", "num_decoding_left_chunks", "enable_full_context")


def _owner(seam: Seam) -> Any:
    module, _, cls = seam.owner.rpartition(".")
    try:
        return getattr(importlib.import_module(module), cls)
    except ImportError:  # the owner is a module
        return importlib.import_module(seam.owner)


def _broken(seam: str, where: str, problems: list[str]) -> str:
    return (f"seam '{seam}' ({where}) no longer fits chatterbox-tts {version('chatterbox-tts')}: "
            + "; ".join(problems))


# -- the checks: each returns what no longer holds (empty: the seam fits) ---------------------------

def _tree(obj: Any) -> ast.AST:
    return ast.parse(textwrap.dedent(inspect.getsource(obj)))


def _calls(tree: ast.AST, func: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and ast.unparse(n.func) == func]


def _token_loops(tree: ast.AST) -> list[ast.For]:
    """`for ... in tqdm(range(...))`: the loop T3 samples its tokens in."""
    return [n for n in ast.walk(tree) if isinstance(n, ast.For) and isinstance(n.iter, ast.Call)
            and ast.unparse(n.iter.func) == "tqdm" and n.iter.args and isinstance(n.iter.args[0], ast.Call)
            and ast.unparse(n.iter.args[0].func) == "range"]


def check_method(owner: Any, name: str, keywords: tuple[str, ...] = ()) -> list[str]:
    """`owner.name` is a function taking each of `keywords` by name."""
    method = getattr(owner, name, None)
    if not callable(method):
        return [f"{getattr(owner, '__name__', owner)} has no method {name}"]
    params = inspect.signature(method).parameters
    by_name = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [f"{name}() takes no keyword {k!r}" for k in keywords if k not in params or params[k].kind not in by_name]


def check_t3_sampler(t3: Any, method: str, cap: str, before_loop: int) -> list[str]:
    """T3's sampler takes the cap keyword, loops `for ... in tqdm(range(...))` (token_loop
    stands in for that tqdm) and samples each token in it with the module's
    `torch.multinomial` (what streaming sees); `before_loop` tokens are sampled before it."""
    problems = check_method(t3, method, (cap,))
    if problems:
        return problems
    tree = _tree(getattr(t3, method))
    loops = _token_loops(tree)
    if len(loops) != 1:
        return problems + [f"{method}() has {len(loops)} `for ... in tqdm(range(...))` token loops, not 1"]
    inside = _calls(loops[0], "torch.multinomial")
    if not inside:
        problems.append(f"{method}()'s token loop does not sample with torch.multinomial")
    outside = len(_calls(tree, "torch.multinomial")) - len(inside)
    if outside != before_loop:
        problems.append(f"{method}() samples {outside} tokens with torch.multinomial before its loop, not {before_loop}")
    return problems


def check_module_global(module: Any, name: str, expected: Any) -> list[str]:
    """`module` looks `name` up as its own global, which is `expected` (what the seam swaps out)."""
    if vars(module).get(name) is not expected:
        return [f"{module.__name__}.{name} is {vars(module).get(name)!r}, not {expected!r}"]
    return []


def check_calls(module: Any, name: str) -> list[str]:
    """`module`'s own code calls `name(...)` by that bare name (so a module global of that
    name stands in for it)."""
    return [] if _calls(_tree(module), name) else [f"{module.__name__} never calls {name}()"]


def check_generate(cls: Any, spec: Any) -> list[str]:
    """The model's `generate` takes the keywords a say passes (with the defaults the spec
    records) and calls T3, S3Gen and the watermarker through the attributes the seams shadow."""
    keywords = dict(spec.generate_defaults)
    problems = check_method(cls, "generate", tuple(keywords) + (("language_id",) if spec.takes_language else ()))
    if problems:
        return problems
    params = inspect.signature(cls.generate).parameters
    problems += [f"generate()'s default {k}={params[k].default!r}, the spec says {v!r}"
                 for k, v in keywords.items() if params[k].default != v]
    tree = _tree(cls.generate)
    for call, needs in ((f"self.t3.{spec.t3_method}", ()), ("self.s3gen.inference", ("speech_tokens", "ref_dict")),
                        ("self.watermarker.apply_watermark", ())):
        found = _calls(tree, call)
        if not found:
            problems.append(f"generate() does not call {call}()")
        elif any(n.args and call.startswith("self.t3") for n in found):
            problems.append(f"generate() passes {call}() positional arguments (the cap goes in by keyword)")
        else:
            given = {k.arg for n in found for k in n.keywords}
            problems += [f"generate() calls {call}() without {k}=" for k in needs if k not in given]
    return problems


def check_estimator_forward(cls: Any) -> list[str]:
    """The CFM estimator's forward takes (x, mask, mu, t, spks, cond, r) in that order (the
    compiled path traces and calls it positionally)."""
    problems = check_method(cls, "forward")
    if problems:
        return problems
    params = tuple(p for p in inspect.signature(cls.forward).parameters if p != "self")
    return [] if params == ESTIMATOR_FORWARD else [f"forward{params} is not forward{ESTIMATOR_FORWARD}"]


def check_chunk_mask(decoder: Any) -> list[str]:
    """The decoder module calls `add_optional_chunk_mask` as its own global, with upstream's
    parameters (the compiled path swaps in a branch-free one with the same signature)."""
    mask = vars(decoder).get("add_optional_chunk_mask")
    if mask is None:
        return [f"{decoder.__name__} has no global add_optional_chunk_mask"]
    params = tuple(inspect.signature(mask).parameters)
    problems = [] if params == CHUNK_MASK else [f"add_optional_chunk_mask{params} is not ...{CHUNK_MASK}"]
    return problems + check_calls(decoder, "add_optional_chunk_mask")


# -- one contract test per seam ------------------------------------------------------------------

def test_the_pinned_version_is_installed():
    assert version("chatterbox-tts") == PINNED, "the seams were checked against chatterbox-tts " + PINNED


@pytest.mark.parametrize("spec", SPECS.values(), ids=list(SPECS))
def test_t3_sampler_seam(spec):
    seam = points.t3_sampler(spec)
    problems = check_t3_sampler(_owner(seam), seam.attribute, spec.t3_cap_keyword, spec.t3_tokens_before_loop)
    assert not problems, _broken(seam.name, seam.where, problems)


@pytest.mark.parametrize("spec", SPECS.values(), ids=list(SPECS))
def test_generate_seam(spec):
    problems = check_generate(spec.tts_cls(), spec)
    assert not problems, _broken(f"{spec.name} generate", spec.tts_class, problems)


def test_t3_conditioning_seam():
    import dataclasses

    from chatterbox.models.t3.modules.cond_enc import T3Cond

    seam = points.T3_CONDITIONING
    problems = check_method(_owner(seam), seam.attribute, ("t3_cond",))
    problems += check_calls(importlib.import_module(T3_MODULE), "self.prepare_conditioning")
    if not dataclasses.is_dataclass(T3Cond):  # its fields are cast in place through vars()
        problems.append("T3Cond is no longer a dataclass")
    assert not problems, _broken(seam.name, seam.where, problems)


def test_s3gen_inference_seam():
    seam = points.S3GEN_INFERENCE
    problems = check_method(_owner(seam), seam.attribute, ("speech_tokens", "ref_dict", "n_cfm_timesteps"))
    assert not problems, _broken(seam.name, seam.where, problems)


def test_watermark_seam():
    seam = points.WATERMARK
    problems = check_method(_owner(seam), seam.attribute, ("sample_rate",))  # the signal comes first, by position
    assert not problems, _broken(seam.name, seam.where, problems)


def test_t3_torch_seam():
    import torch

    seam = points.T3_TORCH
    t3 = _owner(seam)
    problems = check_module_global(t3, "torch", torch) + check_calls(t3, "torch.multinomial")
    assert not problems, _broken(seam.name, seam.where, problems)


@pytest.mark.parametrize("name, call", [("flow-torch", "torch.randn_like"), ("hifigan-torch", "torch.randn_like"),
                                        ("s3gen-torch", "torch.randn")])
def test_s3gen_noise_seams(name, call):
    import torch

    seam = points.SEAMS[name]
    module = _owner(seam)
    problems = check_module_global(module, "torch", torch) + check_calls(module, call)
    assert not problems, _broken(seam.name, seam.where, problems)


def test_hifigan_uniform_seam():
    """HiFiGAN draws its sine phases through `torch.distributions`, which calls its own
    `torch.rand`: the seam swaps the `Uniform` the module calls by name, with the
    `rsample` the swapped class overrides."""
    from torch.distributions.uniform import Uniform

    seam = points.HIFIGAN_UNIFORM
    module = _owner(seam)
    problems = check_module_global(module, "Uniform", Uniform) + check_calls(module, "Uniform")
    if "rsample" not in vars(Uniform) or "sample_shape" not in inspect.signature(Uniform.rsample).parameters:
        problems.append("torch.distributions.Uniform has no rsample(sample_shape) of its own")
    assert not problems, _broken(seam.name, seam.where, problems)
    import torch

    from chatterbox_nb.engine.generation import rng

    torch.manual_seed(9)
    upstream = Uniform(low=-math.pi, high=math.pi).sample(sample_shape=(1, 9, 1))
    with rng.drawing(rng.StageRng(9)):  # the same numbers, from a generator of its own
        staged = rng.stage_uniform()(low=-math.pi, high=math.pi).sample(sample_shape=(1, 9, 1))
    torch.manual_seed(9)
    unbound = rng.stage_uniform()(low=-math.pi, high=math.pi).sample(sample_shape=(1, 9, 1))
    assert torch.equal(staged, upstream) and torch.equal(unbound, upstream)


def test_t3_tqdm_seam():
    from tqdm import tqdm

    seam = points.T3_TQDM
    problems = check_module_global(_owner(seam), "tqdm", tqdm)
    assert not problems, _broken(seam.name, seam.where, problems)  # its loops: test_t3_sampler_seam


def test_flow_tqdm_and_print_seams():
    from tqdm import tqdm

    flow = _owner(points.FLOW_TQDM)
    problems = check_module_global(flow, "tqdm", tqdm) + check_calls(flow, "tqdm")
    assert not problems, _broken(points.FLOW_TQDM.name, points.FLOW_TQDM.where, problems)
    problems = check_module_global(flow, "print", None) + check_calls(flow, "print")  # the builtin, by name
    assert not problems, _broken(points.FLOW_PRINT.name, points.FLOW_PRINT.where, problems)


def test_estimator_forward_seam():
    from chatterbox.models.s3gen.decoder import ConditionalDecoder

    problems = check_estimator_forward(ConditionalDecoder)
    assert not problems, _broken("estimator-forward", "chatterbox.models.s3gen.decoder.ConditionalDecoder.forward",
                                 problems)


def test_decoder_chunk_mask_seam():
    from chatterbox.models.s3gen import decoder

    problems = check_chunk_mask(decoder)
    assert not problems, _broken("decoder-chunk-mask", "chatterbox.models.s3gen.decoder.add_optional_chunk_mask",
                                 problems)


@pytest.mark.parametrize("rule", logs.RULES, ids=lambda r: r.parts[0][:30])
def test_log_rules_seam(rule):
    """Each upstream log line a say drops or replaces (seams/logs.py) is still spelled so
    in the module that logs it."""
    source = Path(importlib.util.find_spec(rule.logger).origin).read_text()
    missing = [part for part in rule.parts if part not in source]
    assert not missing, _broken("logs", rule.logger, [f"its source no longer says {m!r}" for m in missing])


def test_t3_linear_seam():
    from chatterbox.models.t3.t3 import T3
    from transformers.models.llama import modeling_llama

    seam = points.T3_LINEAR
    problems = check_method(_owner(seam), seam.attribute, ("input",))
    # T3's head and its transformer's layers are plain nn.Linear (the seam wraps only those)
    if "self.speech_head = nn.Linear(" not in inspect.getsource(T3.__init__):
        problems.append("T3's speech head is no longer an nn.Linear")
    if "nn.Linear(" not in inspect.getsource(modeling_llama.LlamaMLP):
        problems.append("Llama's MLP no longer uses nn.Linear")
    assert not problems, _broken(seam.name, seam.where, problems)


def test_wide_bfloat16_products_run_in_float32_and_narrow_ones_as_they_were(monkeypatch):
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    t3 = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4, bias=False))
    t3 = t3.to(torch.bfloat16)
    wide, narrow = torch.randn(2, 10, 8, dtype=torch.bfloat16), torch.randn(2, 1, 8, dtype=torch.bfloat16)
    before_narrow = t3(narrow)
    seen: list[torch.dtype] = []
    real_linear = F.linear
    monkeypatch.setattr(F, "linear", lambda x, w, b=None: seen.append(w.dtype) or real_linear(x, w, b))
    with points.wide_products_in_float32(t3, rows=16):
        out_wide, out_narrow = t3(wide), t3(narrow)
    assert seen == [torch.float32, torch.float32, torch.bfloat16, torch.bfloat16]  # 20 rows, then 2
    assert out_wide.dtype == out_narrow.dtype == torch.bfloat16
    assert torch.equal(out_narrow, before_narrow)  # a decoding step's product as it was
    h = F.relu(real_linear(wide.float(), t3[0].weight.float(), t3[0].bias.float()).to(torch.bfloat16))
    assert torch.equal(out_wide, real_linear(h.float(), t3[2].weight.float()).to(torch.bfloat16))
    assert not any("forward" in vars(m) for m in t3.modules())  # nothing left on the modules


def test_t3_conv1d_seam():
    from transformers.models.gpt2 import modeling_gpt2

    seam = points.T3_CONV1D
    problems = check_method(_owner(seam), seam.attribute, ("x",))
    # turbo's T3 is GPT-2, whose attention and MLP layers are this Conv1D, weight (in, out), bias always
    for cls in (modeling_gpt2.GPT2Attention, modeling_gpt2.GPT2MLP):
        if "Conv1D(" not in inspect.getsource(cls.__init__):
            problems.append(f"GPT-2's {cls.__name__} no longer uses Conv1D")
    layer = _owner(seam)(8, 4)
    if tuple(layer.weight.shape) != (4, 8) or layer.bias is None or layer.nf != 8:
        problems.append("Conv1D(nf, nx) no longer holds weight (nx, nf), a bias and nf")
    assert not problems, _broken(seam.name, seam.where, problems)


def test_gpt2_conv1d_wide_products_run_in_float32_and_narrow_ones_as_they_were(monkeypatch):
    """GPT-2's (in, out) weights (turbo's T3): a first pass's product in float32, a decoding
    step's in bfloat16 as it was."""
    import torch
    from transformers.pytorch_utils import Conv1D

    torch.manual_seed(0)
    t3 = torch.nn.Sequential(Conv1D(16, 8), torch.nn.ReLU(), Conv1D(4, 16)).to(torch.bfloat16)
    real_addmm = torch.addmm
    wide, narrow = torch.randn(2, 10, 8, dtype=torch.bfloat16), torch.randn(2, 1, 8, dtype=torch.bfloat16)
    before_narrow = t3(narrow)
    seen: list[torch.dtype] = []
    monkeypatch.setattr(torch, "addmm", lambda b, m, w: seen.append(w.dtype) or real_addmm(b, m, w))
    with points.wide_products_in_float32(t3, rows=16):
        out_wide, out_narrow = t3(wide), t3(narrow)
    monkeypatch.setattr(torch, "addmm", real_addmm)
    assert seen == [torch.float32, torch.float32, torch.bfloat16, torch.bfloat16]  # 20 rows, then 2
    assert torch.equal(out_narrow, before_narrow)
    h = torch.relu(real_addmm(t3[0].bias.float(), wide.reshape(-1, 8).float(), t3[0].weight.float()).to(torch.bfloat16))
    expected = real_addmm(t3[2].bias.float(), h.float(), t3[2].weight.float()).to(torch.bfloat16)
    assert out_wide.shape == (2, 10, 4) and torch.equal(out_wide, expected.view(2, 10, 4))
    assert not any("forward" in vars(m) for m in t3.modules())  # nothing left on the modules


@pytest.mark.parametrize("native", [False, True], ids=["emulated-bf16", "native-bf16"])
def test_a_bfloat16_turbo_t3_lays_its_conv1d_weights_out_by_column_where_bfloat16_is_emulated(native, monkeypatch):
    """The same values, stored column by column: what the emulated kernel multiplies fast (a
    decoding step's product 45x faster than row by row, measured); left as they are elsewhere."""
    from types import SimpleNamespace

    import torch
    from transformers.pytorch_utils import Conv1D

    from chatterbox_nb.engine.models import precision

    torch.manual_seed(0)
    t3 = torch.nn.Sequential(Conv1D(16, 8), torch.nn.ReLU(), Conv1D(4, 16), torch.nn.Linear(4, 4)).to(torch.bfloat16)
    before = [p.clone() for p in t3.parameters()]
    x = torch.randn(2, 1, 8, dtype=torch.bfloat16)
    out = t3(x)
    tts = SimpleNamespace(t3=t3, s3gen=SimpleNamespace(flow=SimpleNamespace(decoder=SimpleNamespace(estimator=None))))
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    monkeypatch.setattr(precision, "autocast_estimator", lambda estimator, dtype: None)
    precision.apply(tts, "bfloat16", "cpu")
    assert all(torch.equal(a, b) for a, b in zip(before, t3.parameters()))  # the same values
    assert [t3[0].weight.stride(), t3[2].weight.stride()] == ([(16, 1), (4, 1)] if native else [(1, 8), (1, 16)])
    assert t3[3].weight.stride() == (4, 1)  # an nn.Linear is already laid out for it
    assert torch.allclose(t3(x).float(), out.float(), atol=1e-2)


@pytest.mark.parametrize("model", ["english", "turbo"])
@pytest.mark.parametrize("native", [False, True], ids=["emulated-bf16", "native-bf16"])
def test_a_bfloat16_say_widens_t3_s_products_only_where_the_cpu_emulates_bfloat16(native, model, monkeypatch):
    import chatterbox_nb as cnb
    from transformers.pytorch_utils import Conv1D

    from chatterbox_nb.engine.generation import stopping
    from chatterbox_nb.engine.models import loader, precision

    cnb.load(model, weights="dummy:reduced", device="cpu", dtype="bfloat16", warmup="off", wait=True)
    (m,) = [m for m in loader.loaded_models() if m.weights == "dummy:reduced" and m.dtype == "bfloat16"
            and m.name == model]
    # english's T3 is Llama (nn.Linear), turbo's GPT-2 (Conv1D)
    layer = m.tts.t3.speech_head if model == "english" else next(
        x for x in m.tts.t3.tfmr.modules() if type(x) is Conv1D)
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    wrapped: list[bool] = []
    with stopping.watching(lambda stage, n: wrapped.append("forward" in vars(layer))):
        cnb.say("Hi there.", model=model, weights="dummy:reduced", device="cpu", dtype="bfloat16", max_tokens=3, seed=1)
    assert wrapped and set(wrapped) == {not native}  # at each of T3's tokens
    assert "forward" not in vars(layer)  # and not after


def test_every_seam_has_a_contract_test():
    tested = {"t3-inference", "t3-inference-turbo", "t3-conditioning", "s3gen-inference", "watermark", "t3-torch",
              "t3-tqdm", "flow-tqdm", "flow-print", "flow-torch", "hifigan-torch", "s3gen-torch", "t3-linear",
              "t3-conv1d", "hifigan-uniform"}
    assert set(points.SEAMS) == tested, "a new seam needs its contract test here"


# -- the checks fail when upstream's shape differs ---------------------------------------------

class _ArgmaxT3:
    """A T3 that picks tokens without torch.multinomial (streaming would see none)."""

    def inference(self, *, t3_cond: Any, max_new_tokens: int = 1000) -> Any:
        for _ in tqdm(range(max_new_tokens)):  # noqa: F821 - read, never run
            token = torch.argmax(t3_cond)  # noqa: F821
        return token


class _EagerTurbo:
    """A turbo T3 whose loop is no longer a tqdm over a range."""

    def inference_turbo(self, t3_cond: Any, max_gen_len: int = 1000) -> Any:
        token = torch.multinomial(t3_cond, 1)  # noqa: F821
        for _ in range(max_gen_len):
            token = torch.multinomial(t3_cond, 1)  # noqa: F821
        return token


def test_the_sampler_check_fails_on_another_shape():
    assert check_t3_sampler(_ArgmaxT3, "inference", "max_new_tokens", 0) == [
        "inference()'s token loop does not sample with torch.multinomial"]
    assert "token loops, not 1" in check_t3_sampler(_EagerTurbo, "inference_turbo", "max_gen_len", 1)[0]
    assert check_t3_sampler(_ArgmaxT3, "inference", "max_gen_len", 0) == ["inference() takes no keyword 'max_gen_len'"]


def test_a_missing_upstream_method_names_its_seam(monkeypatch):
    from chatterbox.models.t3.t3 import T3

    monkeypatch.delattr(T3, "inference_turbo")
    with pytest.raises(AssertionError, match="seam 't3-inference-turbo'.*T3.inference_turbo.*no method"):
        test_t3_sampler_seam(SPECS["turbo"])


def test_the_generate_check_fails_on_another_shape():
    class Renamed:
        def generate(self, text: str, cfg: float = 0.5, temperature: float = 0.8) -> Any:
            return self.s3gen.inference(tokens=text)

    problems = check_generate(Renamed, SPECS["turbo"])
    assert "generate() takes no keyword 'cfg_weight'" in problems


def test_the_module_checks_fail_on_another_module():
    import torch

    fake = types.ModuleType("fake_flow", "no tqdm here")
    fake.print = print
    assert check_module_global(fake, "torch", torch) and check_module_global(fake, "print", None)


def test_the_estimator_checks_fail_on_another_shape(monkeypatch):
    from chatterbox.models.s3gen import decoder

    class Reordered:
        def forward(self, x: Any, mu: Any, mask: Any, t: Any, spks: Any = None, cond: Any = None) -> Any: ...

    assert check_estimator_forward(Reordered)
    monkeypatch.delattr(decoder, "add_optional_chunk_mask")
    with pytest.raises(AssertionError, match="seam 'decoder-chunk-mask'.*no global add_optional_chunk_mask"):
        test_decoder_chunk_mask_seam()


# -- applying and undoing -----------------------------------------------------------------------

class _Upstream:
    def speak(self) -> str:
        return "upstream"


_SPEAK = Seam("test-speak", f"{__name__}._Upstream", "speak", "a test")


def test_shadowed_seams_stack_and_restore_exactly():
    obj = _Upstream()
    with _SPEAK.shadowed(obj, lambda f: lambda: f"timed({f()})"):
        with _SPEAK.shadowed(obj, lambda f: lambda: f"streamed({f()})"):
            assert obj.speak() == "streamed(timed(upstream))"
        assert obj.speak() == "timed(upstream)"
    assert "speak" not in vars(obj) and obj.speak() == "upstream"
    own = vars(obj)["speak"] = lambda: "someone's own"  # restores what was there, not the class's
    with _SPEAK.shadowed(obj, lambda f: lambda: "wrapped"), pytest.raises(RuntimeError):
        raise RuntimeError("the call fails")
    assert vars(obj)["speak"] is own


def test_a_swapped_global_is_counted_across_threads():
    """Two says in two threads share a module global: the first to leave must not take it
    from under the other, and the last puts back exactly what was there."""
    module = types.ModuleType("fake_upstream")
    module.tqdm = original = object()
    sys_modules = importlib.import_module("sys").modules
    sys_modules["fake_upstream"] = module
    seam, stand_in = Seam("test-tqdm", "fake_upstream", "tqdm", "a test"), object()
    try:
        seen = seen_after_the_first_left(lambda: seam.swapped(stand_in), lambda: module.tqdm)
        assert seen is stand_in and module.tqdm is original
        del module.tqdm
        with seam.swapped(stand_in):
            assert module.tqdm is stand_in
        assert "tqdm" not in vars(module)  # a global the module did not have is taken out again
        with seam.swapped(stand_in):
            module.tqdm = theirs = object()
        assert module.tqdm is theirs  # one replaced meanwhile by someone else is left alone
    finally:
        del sys_modules["fake_upstream"]


def test_a_say_leaves_upstream_as_it_found_it(english_reduced):
    """No process-wide patch outlives the say: T3's and the flow's globals are upstream's
    again, and no wrapper is left on the model's objects."""
    from tqdm import tqdm

    from chatterbox_nb.engine.generation import stopping, synth

    t3, flow = importlib.import_module(T3_MODULE), _owner(points.FLOW_TQDM)
    tts, spec = english_reduced.tts, english_reduced.spec
    steps: list[int] = []
    with english_reduced.use(), stopping.watching(lambda stage, n: steps.append(n)):
        synth.generate(tts, spec, "Hi.", max_tokens=4, seed=1, sampling=spec.defaults())
    assert steps, "T3's loop went through token_loop during the say"
    assert t3.tqdm is tqdm and flow.tqdm is tqdm and "print" not in vars(flow)
    assert not {"inference", "prepare_conditioning"} & set(vars(tts.t3))
    assert "inference" not in vars(tts.s3gen) and "apply_watermark" not in vars(tts.watermarker)
    # transformers' notice that sdpa gives no attentions is dropped per say (seams/logs.py), not silenced for good
    assert logging.getLogger("transformers.integrations.sdpa_attention").level == logging.NOTSET


def test_the_sdpa_notice_is_dropped_within_a_say_only(caplog):
    """transformers says once per process that sdpa attention gives no attentions (T3 asks
    for them); within a say it is dropped, outside it the logger is left alone."""
    logger = logging.getLogger("transformers.integrations.sdpa_attention")
    notice = ("`sdpa` attention does not support `output_attentions=True`. Please set your attention to `eager` "
              "if you want any of these features.")
    with caplog.at_level(logging.WARNING, logger=logger.name):
        with logs.translated():
            logger.warning(notice)
        assert notice not in caplog.text
        logger.warning(notice)
        assert notice in caplog.text
