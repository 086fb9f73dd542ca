"""Who holds a model (engine/models/loader.py `LoadedModel.use`): users go first; background
work (warm-up) waits for the queue of users to empty, woken by it rather than polling."""

from __future__ import annotations

import threading
import time

from chatterbox_nb._state import STATE
from chatterbox_nb.engine.models.loader import LoadedModel, ModelKey


def _model() -> LoadedModel:
    return LoadedModel(ModelKey("english", "test:use", "cpu", "float32"), None, None, None, 0.0, 0)


def test_background_use_wakes_when_the_users_are_done(monkeypatch):
    model = _model()
    order: list[str] = []
    errors: list[BaseException] = []
    release = {name: threading.Event() for name in ("first", "second")}
    entered = {name: threading.Event() for name in ("first", "second", "background")}

    def hold(name: str, user: bool) -> None:
        try:
            with model.use(user=user):
                order.append(name)
                entered[name].set()
                if name in release:
                    assert release[name].wait(60)
        except BaseException as exc:  # noqa: BLE001 - checked by the test, not lost in the thread
            errors.append(exc)
            entered[name].set()

    def start(name: str, user: bool) -> threading.Thread:
        thread = threading.Thread(target=hold, args=(name, user), daemon=True)
        thread.start()
        return thread

    threads = [start("first", True)]
    assert entered["first"].wait(60)
    threads.append(start("second", True))  # queues behind the first
    deadline = time.monotonic() + 60
    while STATE.users_waiting < 1 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert STATE.users_waiting == 1

    polled = threading.Event()

    def no_polling(seconds: float) -> None:
        polled.set()
        raise AssertionError(f"use(user=False) polled with time.sleep({seconds})")

    monkeypatch.setattr(time, "sleep", no_polling)
    threads.append(start("background", False))  # a user is queued: it must wait, without sleeping
    polled.wait(2)  # the old busy-wait reached its sleep at once; the condition never does
    release["first"].set()
    assert entered["second"].wait(60) and not entered["background"].is_set()  # users first
    release["second"].set()
    assert entered["background"].wait(60), "background use was never woken"
    for thread in threads:
        thread.join(60)
        assert not thread.is_alive()
    monkeypatch.undo()
    assert not errors, errors
    assert order == ["first", "second", "background"] and not polled.is_set()
    assert not model.lock.locked() and STATE.users_waiting == 0
