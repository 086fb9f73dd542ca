"""S3Gen's estimator runner (engine/seams/estimator.py): one object in the estimator's
`forward` with a mode, put in place once and undone; and the export's branch-free chunk
mask, seen by the traced forward only, never by the decoder module the says run through.
On upstream's estimator class at a few thousandths of its size (export takes seconds)."""

from __future__ import annotations

import pytest

from chatterbox_nb.engine.generation import compiled
from chatterbox_nb.engine.seams import estimator as seam


@pytest.fixture
def tiny():
    import torch
    from types import SimpleNamespace

    from chatterbox.models.s3gen.decoder import ConditionalDecoder

    torch.manual_seed(0)
    est = ConditionalDecoder(in_channels=320, out_channels=80, causal=True, channels=[32], n_blocks=1,
                             num_mid_blocks=1, num_heads=2, attention_head_dim=16).eval()
    return SimpleNamespace(s3gen=SimpleNamespace(flow=SimpleNamespace(decoder=SimpleNamespace(estimator=est))))


def test_one_runner_with_a_mode_put_in_once_and_undone(tiny):
    import torch

    est = compiled.estimator(tiny)
    inputs = compiled.sample_inputs(tiny, 40)
    with torch.inference_mode():
        upstream = type(est).forward(est, **inputs)
        assert seam.current(est) is None and "forward" not in vars(est)  # asking adds nothing
        run = seam.runner(est)
        assert seam.runner(est) is run and est.forward is run and run.mode == "eager"
        assert torch.equal(est.forward(**inputs), upstream)  # eager: upstream's forward, bit for bit
        run.autocast = torch.bfloat16
        assert run.mode == "autocast"
        cast = est.forward(**inputs)
        assert cast.dtype == torch.float32 and not torch.equal(cast, upstream)
        assert (cast - upstream).abs().max().item() < 0.2  # bfloat16 matmuls, same function
        calls = []
        compiled.install(tiny, lambda *a, **k: calls.append(1) or run.run_eager(*a, **k), {"factor": 2.0})
        assert run.mode == "compiled" and compiled.is_installed(tiny)
        assert torch.equal(est.forward(**inputs), cast) and calls == [1]
        compiled.uninstall(tiny)
        assert run.mode == "autocast" and not compiled.is_installed(tiny)
        copy = compiled.private_copy(tiny)  # an export's copy runs the class's forward, not ours
        assert "forward" not in vars(compiled.estimator(copy))
        seam.remove(est)
        assert "forward" not in vars(est) and torch.equal(est.forward(**inputs), upstream)


def test_a_foreign_forward_is_not_wrapped_over(tiny):
    est = compiled.estimator(tiny)
    est.forward = lambda *a, **k: None
    with pytest.raises(RuntimeError, match="already replaced"):
        seam.runner(est)


def test_the_branch_free_mask_is_the_exported_forward_s_alone(tiny, monkeypatch):
    """While export traces, the decoder module's `add_optional_chunk_mask` stays upstream's
    (a say running beside the export in another thread uses it); only the traced copy of
    the forward calls the branch-free one."""
    from chatterbox.models.s3gen import decoder

    upstream = decoder.add_optional_chunk_mask
    seen = []
    real = seam.branch_free_chunk_mask

    def spy(*args, **kwargs):
        seen.append(decoder.add_optional_chunk_mask is upstream)
        return real(*args, **kwargs)

    monkeypatch.setattr(seam, "branch_free_chunk_mask", spy)
    compiled.export_estimator(compiled.private_copy(tiny))
    assert seen and all(seen)  # the export called it, the module never saw it
    assert decoder.add_optional_chunk_mask is upstream


def _per_call(est, inputs):
    """The autocast path as it was: upstream's forward under autocast, every weight cast
    by autocast itself on this call."""
    import torch

    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        return type(est).forward(est, **inputs).float()


def _weight_casts(est, call):
    """How many times `call` casts one of the estimator's parameters (a `to` or `_to_copy`
    with a parameter's storage as its input: autocast calls `aten.to.dtype`)."""
    from torch.utils._python_dispatch import TorchDispatchMode
    import torch

    storages = {p.untyped_storage().data_ptr() for p in est.parameters()}
    seen = []
    casts = (torch.ops.aten._to_copy.default, torch.ops.aten.to.dtype)

    class Count(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func in casts and args[0].untyped_storage().data_ptr() in storages:
                seen.append(tuple(args[0].shape))
            return func(*args, **(kwargs or {}))

    with Count():
        out = call()
    return out, len(seen)


def test_autocast_casts_the_weights_once_with_the_same_result(tiny):
    """Autocast cast every linear and convolution weight on every call; the runner casts
    them on its first call only, and the output stays bit for bit the per-call cast's."""
    import torch

    est = compiled.estimator(tiny)
    inputs = compiled.sample_inputs(tiny, 40)
    with torch.inference_mode():
        reference, per_call = _weight_casts(est, lambda: _per_call(est, inputs))
        assert per_call > 0  # what autocast does by itself
        seam.runner(est).autocast = torch.bfloat16
        first, _ = _weight_casts(est, lambda: est.forward(**inputs))
        again, casts = _weight_casts(est, lambda: est.forward(**inputs))
    assert casts == 0
    assert torch.equal(first, reference) and torch.equal(again, reference)
    assert all(type(p) is torch.nn.Parameter and p.dtype == torch.float32 for p in est.parameters())  # put back
    seam.remove(est)


def test_the_cast_weights_live_only_in_autocast_mode(tiny):
    """The copies are dropped when the mode leaves autocast (eager runs float32 weights, bit
    for bit upstream), when a package is installed, and when the runner is removed."""
    import torch

    est = compiled.estimator(tiny)
    inputs = compiled.sample_inputs(tiny, 40)
    with torch.inference_mode():
        upstream = type(est).forward(est, **inputs)
        run = seam.runner(est)
        run.autocast = torch.bfloat16
        est.forward(**inputs)
        shadowed = sum(p.numel() for m in est.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv1d))
                       for p in m.parameters(recurse=False))
        assert run.cast_bytes == 2 * shadowed  # every linear and convolution weight and bias, in bfloat16
        run.autocast = None
        assert run.cast_bytes == 0 and torch.equal(est.forward(**inputs), upstream)
        run.autocast = torch.bfloat16
        est.forward(**inputs)
        compiled.install(tiny, lambda *a, **k: run.run_eager(*a, **k), {"factor": 2.0})
        assert run.cast_bytes == 0 and torch.equal(est.forward(**inputs), _per_call(est, inputs))
        assert run.cast_bytes == 0  # the package's fallback casts per call, holds nothing
        compiled.uninstall(tiny)
        est.forward(**inputs)
        assert run.cast_bytes > 0
        seam.remove(est)
        assert run.cast_bytes == 0 and torch.equal(est.forward(**inputs), upstream)


def test_a_changed_or_replaced_weight_is_cast_again(tiny):
    import torch

    est = compiled.estimator(tiny)
    inputs = compiled.sample_inputs(tiny, 40)
    linears = [m for m in est.modules() if isinstance(m, torch.nn.Linear)]
    with torch.inference_mode():
        seam.runner(est).autocast = torch.bfloat16
        before = est.forward(**inputs)
        with torch.no_grad():
            linears[0].weight.mul_(1.5)  # in place: the same Parameter object
    linears[1].weight = torch.nn.Parameter(linears[1].weight.detach() * 0.5)  # a new Parameter
    with torch.inference_mode():
        after = est.forward(**inputs)
        assert not torch.equal(after, before) and torch.equal(after, _per_call(est, inputs))
    seam.remove(est)


def _bfloat16_reduced():
    import chatterbox_nb as cnb

    from chatterbox_nb.engine.models import loader

    result = cnb.load("english", weights="dummy:reduced", device="cpu", dtype="bfloat16", warmup="off", wait=True)
    (loaded,) = [m for m in loader.loaded_models()
                 if m.name == "english" and m.weights == "dummy:reduced" and m.dtype == "bfloat16"]
    return loaded, result.source


def test_cast_once_is_bit_identical_on_a_loaded_model_s_real_inputs(monkeypatch):
    """The reduced English dummy loaded in bfloat16 on a CPU with native bfloat16 (its
    estimator in autocast mode; forced on other CPUs): the inputs of a real estimator call,
    captured during a short say, give the same output bit for bit cast once as cast per call."""
    import chatterbox_nb as cnb
    import torch

    loaded, _ = _bfloat16_reduced()
    est = compiled.estimator(loaded.tts)
    run = seam.runner(est)
    monkeypatch.setattr(run, "autocast", torch.bfloat16)  # what the load sets where bfloat16 is native
    assert run.mode == "autocast"
    captured = []
    run.run_eager = lambda *a, _real=run.run_eager, **k: captured.append((a, k)) or _real(*a, **k)
    try:
        cnb.say("Hello there.", model="english", weights="dummy:reduced", device="cpu", dtype="bfloat16",
                max_tokens=6, seed=1)
    finally:
        del run.run_eager
    assert captured and run.cast_bytes > 0  # the say itself ran the cast-once path
    args, inputs = captured[0]
    assert not args  # upstream's solve_euler passes keywords
    with torch.inference_mode():
        reference = _per_call(est, inputs)
        once = est.forward(**inputs)
        _, casts = _weight_casts(est, lambda: est.forward(**inputs))
    assert run.cast_bytes > 0 and casts == 0
    assert torch.equal(once, reference)


@pytest.mark.parametrize("native", [True, False], ids=["native-bf16", "emulated-bf16"])
def test_a_bfloat16_load_autocasts_the_estimator_only_where_the_cpu_has_bfloat16(native, monkeypatch, english_reduced):
    """Where the CPU computes bfloat16 natively, the estimator runs under autocast and a
    model's size (what the memory budget adds up) includes its bfloat16 weight copies from
    the load on, before its first say makes them. Elsewhere the estimator stays float32,
    with no copies (emulated autocast rendered 7x slower), and only T3 is bfloat16."""
    import chatterbox_nb as cnb
    import torch
    from conftest import fresh_loads_of

    from chatterbox_nb.engine.models import precision
    from chatterbox_nb.engine.store import build

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    with fresh_loads_of(english_reduced):
        loaded, source = _bfloat16_reduced()
        assert source != "memory"  # loaded now, on the CPU under test
        run = seam.current(compiled.estimator(loaded.tts))
        beside = loaded.nbytes - build.module_bytes(loaded.tts)
        assert precision.t3_dtype(loaded.tts) == torch.bfloat16
        if not native:
            assert (run is None or run.autocast is None) and beside == 0
            return
        assert beside == seam.cast_copies_bytes(run.module, run.autocast) > 0
        cnb.say("Hello there.", model="english", weights="dummy:reduced", device="cpu", dtype="bfloat16",
                max_tokens=4, seed=1)
        assert run.cast_bytes == beside
