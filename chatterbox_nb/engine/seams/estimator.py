"""S3Gen's CFM estimator, run one way: one runner object with a mode.

Upstream's `solve_euler` calls `estimator.forward(...)` itself (not `estimator(...)`), so
what runs is the instance's `forward` attribute. `runner(est)` puts one `EstimatorRunner`
there, once, and keeps the class's forward as `_old_forward`, as accelerate's
`add_hook_to_module` does; `remove(est)` puts the module back as upstream made it. The
runner's mode says which path runs:

- `eager`: upstream's forward as it is (float32: bit-identical to upstream);
- `autocast`: that forward under CPU autocast (matmuls and convolutions in bfloat16, the
  weights and the result in float32). Autocast would cast every linear and convolution
  weight to bfloat16 on every call (its weight cache serves only grad-requiring leaves):
  the runner casts them once, on the first call, and runs the forward with those copies
  in their place, the values autocast would make, so the output is bit-identical. The
  copies (half the bytes of the weights they shadow) are released when the mode leaves
  autocast or the runner is removed, and a parameter replaced or changed in place is
  cast again;
- `compiled`: a packaged forward (engine/generation/compiled.py) for the inputs it
  covers, the path it replaced (`run_eager`) for the others.

`each_call(tick)`: within the block, in its thread, the runner calls `tick()` before each
call (ten a render): an overlapped render's thread share follows T3 (overlap.py).

Export needs the decoder's chunk mask without its `.item()` branch: `exportable_forward`
gives a copy of the class's forward that sees a branch-free mask, so nothing process-wide
changes while an export traces in a background thread and says run beside it.
"""

from __future__ import annotations

import contextlib
import contextvars
import types
from typing import Any, Callable, Iterator

__all__ = ["EstimatorRunner", "branch_free_chunk_mask", "cast_copies_bytes", "current", "each_call",
           "exportable_forward", "remove", "runner"]

_EACH_CALL: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar(
    "chatterbox_nb_each_estimator_call", default=None
)


@contextlib.contextmanager
def each_call(tick: Callable[[], None]) -> Iterator[None]:
    """Within this block (in this thread), every estimator runner calls `tick()` first."""
    token = _EACH_CALL.set(tick)
    try:
        yield
    finally:
        _EACH_CALL.reset(token)


class EstimatorRunner:
    """What `estimator.forward` is while chatterbox_nb holds the model."""

    def __init__(self, module: Any) -> None:
        self.module = module
        #: the class's forward, unbound (a bound one would tie copies of the module to this one)
        self._old_forward = type(module).forward
        self._autocast: Any = None
        self._compiled: Callable[..., Any] | None = None
        #: the package timed against the eager path (what payoff.measure returns), None if not timed
        self.verdict: dict[str, Any] | None = None
        #: whether the timings said once what a full warm-up would buy (compiled.warmup_hint)
        self.hinted = False
        #: the autocast dtype's copies of the weights autocast casts: name -> (parameter, its
        #: `_stamp` when cast, copy); filled on the first autocast call
        self._cast: dict[str, tuple[Any, tuple[int, int], Any]] = {}

    @property
    def autocast(self) -> Any:
        """The dtype of the CPU autocast the eager path runs under, None for none."""
        return self._autocast

    @autocast.setter
    def autocast(self, dtype: Any) -> None:
        if dtype != self._autocast:
            self._cast = {}
        self._autocast = dtype

    @property
    def compiled(self) -> Callable[..., Any] | None:
        """The packaged forward, None while the eager path runs."""
        return self._compiled

    @compiled.setter
    def compiled(self, fn: Callable[..., Any] | None) -> None:
        if fn is not None:  # the package runs: the copies would only hold memory
            self._cast = {}
        self._compiled = fn

    @property
    def cast_bytes(self) -> int:
        """What the weights' autocast copies hold now (0 outside autocast mode)."""
        return sum(copy.numel() * copy.element_size() for _, _, copy in self._cast.values())

    def release(self) -> None:
        """Drop the weights' autocast copies (made again on the next autocast call)."""
        self._cast = {}

    @property
    def mode(self) -> str:
        if self.compiled is not None:
            return "compiled"
        return "autocast" if self.autocast is not None else "eager"

    def run_eager(self, *args: Any, **kwargs: Any) -> Any:
        """The path without the package: upstream's forward, under autocast if set (with the
        weights cast once while the runner is in autocast mode and nothing needs gradients).
        The module holds the copies in its parameters' places for this call only; the model's
        lock (`LoadedModel.use`) keeps other readers, such as an export's private copy, out."""
        if self.autocast is None:
            return self._old_forward(self.module, *args, **kwargs)
        import torch
        from torch.nn.utils.stateless import _reparametrize_module

        if self.compiled is not None or torch.is_grad_enabled():
            with torch.autocast(device_type="cpu", dtype=self.autocast):
                return self._old_forward(self.module, *args, **kwargs).float()
        copies = self._copies()  # before autocast: the copies are made outside it
        with _reparametrize_module(self.module, copies), torch.autocast(device_type="cpu", dtype=self.autocast):
            return self._old_forward(self.module, *args, **kwargs).float()

    def _copies(self) -> dict[str, Any]:
        """The autocast dtype's copy of each weight autocast casts, made where missing or
        stale (the parameter replaced, or changed in place: its version counter moved)."""
        import torch

        cast, kept = self._cast, {}
        for name, param in _cast_parameters(self.module):
            held, stamp = cast.get(name), _stamp(param)
            if held is None or held[0] is not param or held[1] != stamp:
                with torch.inference_mode(False), torch.no_grad():  # usable in and out of inference mode
                    held = (param, stamp, param.detach().to(self.autocast))
            kept[name] = held
        self._cast = kept
        return {name: copy for name, (_, _, copy) in kept.items()}

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        tick = _EACH_CALL.get()
        if tick is not None:
            tick()
        compiled = self.compiled
        if compiled is not None:
            return compiled(*args, **kwargs)
        return self.run_eager(*args, **kwargs)

    def __deepcopy__(self, memo: dict[int, Any]) -> None:
        """A copy of the module (an export's private copy) runs the class's forward."""
        return None


def cast_copies_bytes(module: Any, dtype: Any) -> int:
    """What the runner's copies of the module's weights in `dtype` hold once made (the
    memory budget counts them from the load, before the first call makes them)."""
    import torch

    size = torch.empty(0, dtype=dtype).element_size()
    return sum(param.numel() * size for _, param in _cast_parameters(module))


def _stamp(param: Any) -> tuple[int, int]:
    """What changes when a parameter's values may have: its storage (`.data` replaced) and
    its version counter (changed in place; inference tensors keep none)."""
    return param.data_ptr(), (-1 if param.is_inference() else param._version)


def _cast_parameters(module: Any) -> Iterator[tuple[str, Any]]:
    """The floating-point weights and biases of the module's linear layers and convolutions:
    what CPU autocast casts to its lower precision on every call."""
    import torch

    kinds = (torch.nn.Linear, torch.nn.modules.conv._ConvNd)
    for prefix, sub in module.named_modules():
        if isinstance(sub, kinds):
            for name, param in sub.named_parameters(recurse=False):
                if param.is_floating_point() and param.dtype == torch.float32:
                    yield (f"{prefix}.{name}" if prefix else name), param


def current(module: Any) -> EstimatorRunner | None:
    """The module's runner, None while upstream's forward runs untouched (asking adds none)."""
    found = vars(module).get("forward")
    return found if isinstance(found, EstimatorRunner) else None


def runner(module: Any) -> EstimatorRunner:
    """The module's runner, put in place on first use."""
    current = vars(module).get("forward")
    if isinstance(current, EstimatorRunner):
        return current
    if current is not None:
        raise RuntimeError(f"the estimator's forward is already replaced by {current!r}")
    made = EstimatorRunner(module)
    module.forward = made
    return made


def remove(module: Any) -> None:
    """Upstream's forward again (the class's), whatever mode ran; also on a copy made while
    the runner was in place (which holds None there, see `__deepcopy__`)."""
    found = vars(module).get("forward")
    if isinstance(found, EstimatorRunner):
        found.release()
    if "forward" in vars(module) and (found is None or isinstance(found, EstimatorRunner)):
        del module.forward


def branch_free_chunk_mask(xs: Any, masks: Any, use_dynamic_chunk: bool, use_dynamic_left_chunk: bool,
                           decoding_chunk_size: int, static_chunk_size: int, num_decoding_left_chunks: int,
                           enable_full_context: bool = True) -> Any:
    """Upstream's `add_optional_chunk_mask` as the estimator calls it (no chunking): an
    all-masked row becomes all True, without asking `.item()` whether there is one."""
    if use_dynamic_chunk or static_chunk_size > 0:
        raise NotImplementedError("chunked attention masks are not exported")
    return masks | (masks.sum(dim=-1, keepdim=True) == 0)


def exportable_forward(module: Any) -> Callable[..., Any]:
    """The class's forward (unbound) as a new function whose module globals see the
    branch-free chunk mask: the swap is this function's alone, not the decoder module's."""
    forward = type(module).forward
    scope = {**forward.__globals__, "add_optional_chunk_mask": branch_free_chunk_mask}
    copy = types.FunctionType(forward.__code__, scope, forward.__name__, forward.__defaults__, forward.__closure__)
    copy.__kwdefaults__ = forward.__kwdefaults__
    return copy
