"""A real IPython kernel driven through jupyter_client, for tests of kernel behaviour."""

from __future__ import annotations

import queue
import time
from typing import Any

import torch
from jupyter_client.manager import start_new_kernel

# What this machine has, for tests whose expectations depend on it (a "no GPU" case
# must not fail on a machine with one).
HAS_CUDA = torch.cuda.is_available()
HAS_MPS = bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


class Kernel:
    def __init__(self) -> None:
        self.km, self.kc = start_new_kernel(kernel_name="python3")

    def execute(self, code: str, timeout: float = 600, interrupt_after: float | None = None) -> dict[str, Any]:
        """Run `code`; collect its outputs, result and error. With `interrupt_after`,
        press the stop button (a kernel interrupt) that many seconds in."""
        msg_id = self.kc.execute(code)
        if interrupt_after is not None:
            time.sleep(interrupt_after)
            self.km.interrupt_kernel()
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
