"""How a fit tells a stop asked for by code from a user's Ctrl-C.

A callback raising ``KeyboardInterrupt`` stops training the way skorch's
``EarlyStopping`` does (:class:`CallbackStop` carries which callback and
event); a real Ctrl-C (SIGINT) is seen by :class:`SigintWatch`, so that the
trainer rolls back the epoch in progress instead.
"""

from __future__ import annotations

import signal
import threading

__all__ = ["CallbackStop", "SigintWatch"]


class CallbackStop(Exception):
    """A callback raised ``KeyboardInterrupt`` (skorch's way to stop training)."""

    def __init__(self, name, event):
        super().__init__(name, event)
        self.name, self.event = name, event


class SigintWatch:
    """Tells a user's Ctrl-C from a ``KeyboardInterrupt`` raised by code.

    While active (main thread only: signals are delivered there), the
    current SIGINT handler is wrapped so that it first sets ``seen``.
    ``nested`` is true inside another fit's watch (a callback fitting another
    model): a Ctrl-C there must reach the outer fit too.
    """

    _active = 0  # watches open in this process (all on the main thread)

    def __init__(self):
        self.seen = False
        self.nested = False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            previous = signal.getsignal(signal.SIGINT)
            if callable(previous):
                def handler(signum, frame):
                    self.seen = True
                    return previous(signum, frame)

                signal.signal(signal.SIGINT, handler)
                self._previous = previous
                self.nested = SigintWatch._active > 0
                SigintWatch._active += 1
        return self

    def __exit__(self, *exc_info):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
            SigintWatch._active -= 1
