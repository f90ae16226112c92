"""Ctrl-C and SIGTERM, the runner's one set of rules for them.

A signal stops a run with KeyboardInterrupt, and the pipeline settles the month in progress. Two
kinds of code need help with that: code that, cut off, is left half-initialised (dbt importing and
parsing: `deferred`), and code that catches every exception and so can turn the KeyboardInterrupt
into an error of its own (psycopg2's COPY, dbt's artifact decoders: `noted`). A signal the runner
was started ignoring (`nohup`, a shell's background job) stays ignored in both.
"""

from __future__ import annotations

import _thread
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

STOPPING_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def handled() -> dict[int, Any]:
    """SIGINT and SIGTERM with their handlers, but not one the runner was started ignoring: there
    the user asked for the run not to be stopped by it."""
    handlers = {signum: signal.getsignal(signum) for signum in STOPPING_SIGNALS}
    return {signum: handler for signum, handler in handlers.items() if handler is not signal.SIG_IGN}


@contextmanager
def _handled_by(make_handler: Callable[[dict[int, Any]], Callable[[int, Any], None]]) -> Iterator[None]:
    """Inside the block the signals `handled` names go to the handler made from their handlers
    until then, which come back after it. Only the main thread may set handlers: elsewhere
    nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = handled()
    handler = make_handler(previous)
    for signum in previous:
        signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, before in previous.items():
            signal.signal(signum, before)


@contextmanager
def deferred() -> Iterator[None]:
    """Signals received inside the block raise KeyboardInterrupt when it ends."""
    received: list[int] = []
    with _handled_by(lambda previous: lambda signum, frame: received.append(signum)):
        yield
    if received:
        raise KeyboardInterrupt


@contextmanager
def noted() -> Iterator[list[int]]:
    """Inside the block a signal does what it did before (inside `deferred` it waits, elsewhere it
    raises KeyboardInterrupt) and is also noted in the list the block gets: whatever the code made
    of the KeyboardInterrupt, the list says the run was interrupted."""
    noted_signals: list[int] = []

    def noting(previous: dict[int, Any]) -> Callable[[int, Any], None]:
        def note(signum: int, frame: Any) -> None:
            noted_signals.append(signum)
            handler = previous[signum]
            if not callable(handler):  # SIG_DFL: the runner's own SIGTERM handler is not set in-process
                raise KeyboardInterrupt
            handler(signum, frame)

        return note

    with _handled_by(noting):
        yield noted_signals


def interrupts_survive_finalizers() -> None:
    """A KeyboardInterrupt raised inside a finalizer the garbage collector runs (multiprocessing's,
    which dbt's thread pools use) cannot propagate: Python prints it, traceback and all, as
    "Exception ignored in", and drops it. With this hook it is not printed, and the signal comes
    again a moment later, once the finalizer is over, so the run still stops."""
    previous = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        if not isinstance(unraisable.exc_value, KeyboardInterrupt):
            previous(unraisable)
            return
        stopping = handled()
        if stopping:  # SIGINT if Python handles it, else SIGTERM (Ctrl-C ignored under nohup)
            threading.Thread(target=_deliver_later, args=(min(stopping),), daemon=True).start()

    sys.unraisablehook = hook


def _deliver_later(signum: int) -> None:
    time.sleep(0.05)  # raised in the hook itself, it would be dropped again
    _thread.interrupt_main(signum)
