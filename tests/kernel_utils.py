"""A real IPython kernel driven through jupyter_client, for tests of kernel behaviour."""

from __future__ import annotations

import queue
import time
from typing import Any, Callable

import torch
from jupyter_client.manager import start_new_kernel

# What this machine has, for tests whose expectations depend on it (a "no GPU" case
# must not fail on a machine with one).
HAS_CUDA = torch.cuda.is_available()
HAS_MPS = bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


class Kernel:
    def __init__(self) -> None:
        self.km, self.kc = start_new_kernel(kernel_name="python3")

    def execute(self, code: str, timeout: float = 600) -> dict[str, Any]:
        """Run `code`; collect its outputs, result and error."""
        msg_id = self.kc.execute(code)
        reply = self.kc.get_shell_msg(timeout=timeout)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = self.kc.get_shell_msg(timeout=timeout)
        outputs: list[dict[str, Any]] = []
        deadline = time.monotonic() + 30
        while True:
            try:
                msg = self.kc.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
            if msg["msg_type"] not in ("status", "execute_input"):
                outputs.append({"type": msg["msg_type"], **msg["content"]})
        return {"status": reply["content"]["status"], "reply": reply["content"], "outputs": outputs}

    # The stop button, pressed from inside the kernel the moment the state a test needs is
    # reached (not some seconds in): SIGINT to the kernel's process, as jupyter_client's
    # `interrupt_kernel` sends it. `_interrupted_at` records when it was pressed.

    @staticmethod
    def interrupting_at_token(token: int, line: str) -> str:
        """A cell running `line` (a say) that presses the stop button as T3 samples its
        `token`-th token; `_interrupted_at == [(chunks whose T3 had ended, token)]`."""
        return (
            "import os as _os, signal as _signal\n"
            "from chatterbox_nb.engine.generation import stopping as _stopping\n"
            "_interrupted_at, _t3_ended = [], []\n"
            "def _press(stage, n):\n"
            "    if stage == 'vocoder':\n"
            "        _t3_ended.append(n)\n"
            f"    elif n >= {token} and not _interrupted_at:\n"
            "        _interrupted_at.append((len(_t3_ended), n))\n"
            "        _os.kill(_os.getpid(), _signal.SIGINT)\n"
            "with _stopping.watching(_press):\n"
            f"    {line}\n"
        )

    @staticmethod
    def interrupting_when(condition: str, line: str) -> str:
        """A cell running `line` that presses the stop button once `condition` (an expression
        evaluated in the kernel every 5 ms while `line` runs) holds; `_interrupted_at == [True]`."""
        return (
            "import os as _os, signal as _signal, threading as _threading\n"
            "_interrupted_at, _cell_done = [], _threading.Event()\n"
            "def _watch():\n"
            "    while not _cell_done.wait(0.005):\n"
            f"        if {condition}:\n"
            "            _interrupted_at.append(True)\n"
            "            _os.kill(_os.getpid(), _signal.SIGINT)\n"
            "            return\n"
            "_threading.Thread(target=_watch, daemon=True).start()\n"
            "try:\n"
            f"    {line}\n"
            "finally:\n"
            "    _cell_done.set()\n"
        )

    @staticmethod
    def text(result: dict[str, Any]) -> str:
        return "".join(o.get("text", "") for o in result["outputs"] if o["type"] == "stream" and o["name"] == "stdout")

    def value(self, expr: str) -> Any:
        """Evaluate a Python literal expression in the kernel."""
        import ast

        result = self.execute(f"print(repr({expr}))")
        assert result["status"] == "ok", result
        return ast.literal_eval(self.text(result).strip())

    @staticmethod
    def ok(result: dict[str, Any]) -> dict[str, Any]:
        assert result["status"] == "ok", result["reply"]
        return result

    def restart(self) -> None:
        self.km.restart_kernel(now=True)
        self.kc.wait_for_ready(timeout=60)

    def shutdown(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


# For a script run in a fresh process (`python -c`) that must load S3Gen's compiled package
# without compiling anything: compiling raises, and `calls` records each call of the package.
PACKAGE_SPY = """
calls = []
def refuse(*a, **k):
    raise AssertionError("compiled again in a fresh process")
compiled.export_estimator = compiled.build_package = torch.compile = refuse
real_load = torch._inductor.aoti_load_package
def counting_load(path):
    package = real_load(path)
    def run(*a):
        calls.append(a[0].shape[-1])
        return package(*a)
    return run
torch._inductor.aoti_load_package = counting_load
"""


def seen_after_the_first_left(enter: Callable[[], Any], probe: Callable[[], Any]) -> Any:
    """Two threads inside `enter()` (a context manager) at once: what `probe()` sees in the
    second after the first has left. Both threads are joined before it returns."""
    import threading

    entered, leave_first, first_left, leave_second = (threading.Event() for _ in range(4))
    seen: dict[str, Any] = {}

    def first() -> None:
        with enter():
            entered.set()
            leave_first.wait(30)
        first_left.set()

    def second() -> None:
        entered.wait(30)
        with enter():
            leave_first.set()
            first_left.wait(30)
            seen["after the first left"] = probe()
            leave_second.wait(30)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    first_left.wait(30)
    leave_second.set()
    for t in threads:
        t.join(30)
        assert not t.is_alive()
    return seen["after the first left"]
