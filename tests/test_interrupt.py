"""_interrupt: a callback's stop (CallbackStop) and a user's Ctrl-C (SigintWatch).

The trainer's use of both is tested end to end in tests/test_trainer.py (Ctrl-C
in callbacks, nested fits); here the two classes are tested on their own,
with a recording SIGINT handler in place of Python's default one.
"""

import signal
import threading

import pytest

from sklearn_deepnet._interrupt import CallbackStop, SigintWatch


@pytest.fixture
def recorder():
    """A recording SIGINT handler installed for the test (and the old one put back)."""
    calls = []

    def handler(signum, frame):
        calls.append(signum)

    original = signal.getsignal(signal.SIGINT)
    active = SigintWatch._active
    signal.signal(signal.SIGINT, handler)
    try:
        yield handler, calls
    finally:
        signal.signal(signal.SIGINT, original)
        SigintWatch._active = active


def _press_ctrl_c():
    """Deliver a real SIGINT to this (main) thread; its handler runs before this returns."""
    signal.raise_signal(signal.SIGINT)


# ------------------------------------------------------------- CallbackStop
def test_callback_stop_carries_the_callback_and_event():
    stop = CallbackStop("EarlyStopping", "on_epoch_end")
    assert (stop.name, stop.event) == ("EarlyStopping", "on_epoch_end")
    assert stop.args == ("EarlyStopping", "on_epoch_end")
    # An ordinary exception: an `except KeyboardInterrupt` (a Ctrl-C handler)
    # must not catch a callback's stop.
    assert isinstance(stop, Exception) and not isinstance(stop, KeyboardInterrupt)
    with pytest.raises(CallbackStop) as info:
        try:
            raise stop
        except KeyboardInterrupt:  # pragma: no cover - the point is it does not match
            pytest.fail("CallbackStop caught as a KeyboardInterrupt")
    assert info.value is stop


# -------------------------------------------------------------- SigintWatch
def test_watch_wraps_the_handler_and_puts_it_back(recorder):
    handler, calls = recorder
    watch = SigintWatch()
    assert (watch.seen, watch.nested) == (False, False)
    with watch as entered:
        assert entered is watch
        wrapped = signal.getsignal(signal.SIGINT)
        assert wrapped is not handler and callable(wrapped)
        assert SigintWatch._active == 1
        assert not watch.seen  # nothing arrived yet
    assert signal.getsignal(signal.SIGINT) is handler
    assert SigintWatch._active == 0
    assert calls == [] and not watch.seen


def test_a_real_sigint_is_seen_and_reaches_the_previous_handler(recorder):
    handler, calls = recorder
    with SigintWatch() as watch:
        _press_ctrl_c()
        assert watch.seen
        assert calls == [signal.SIGINT]  # the previous handler ran too (once)
    # After the watch, a SIGINT goes to the previous handler alone.
    _press_ctrl_c()
    assert calls == [signal.SIGINT, signal.SIGINT]


def test_the_wrapper_calls_the_previous_handler_with_its_arguments(recorder):
    seen = []

    def raising(signum, frame):
        seen.append((signum, frame))
        raise KeyboardInterrupt("from the handler")

    signal.signal(signal.SIGINT, raising)
    with SigintWatch() as watch:
        wrapper = signal.getsignal(signal.SIGINT)
        with pytest.raises(KeyboardInterrupt, match="from the handler"):
            wrapper(signal.SIGINT, "frame")
        assert watch.seen and seen == [(signal.SIGINT, "frame")]
    assert signal.getsignal(signal.SIGINT) is raising


def test_a_code_raised_keyboard_interrupt_is_not_seen(recorder):
    with pytest.raises(KeyboardInterrupt), SigintWatch() as watch:
        raise KeyboardInterrupt  # raised by code (e.g. a callback), no signal
    assert not watch.seen
    assert signal.getsignal(signal.SIGINT) is recorder[0]  # put back on the way out


def test_nested_watches_and_a_ctrl_c_reaching_both(recorder):
    handler, calls = recorder
    with SigintWatch() as outer:
        assert not outer.nested
        outer_wrapper = signal.getsignal(signal.SIGINT)
        with SigintWatch() as inner:  # a callback of the outer fit fits another model
            assert inner.nested and SigintWatch._active == 2
            _press_ctrl_c()
            assert inner.seen and outer.seen  # the inner wrapper chains to the outer one
            assert calls == [signal.SIGINT]
        assert signal.getsignal(signal.SIGINT) is outer_wrapper
        assert SigintWatch._active == 1
        with SigintWatch() as again:  # another one inside the outer fit: nested too
            assert again.nested and not again.seen
    assert signal.getsignal(signal.SIGINT) is handler
    assert SigintWatch._active == 0
    with SigintWatch() as later:  # no fit around it any more
        assert not later.nested


def test_only_the_inner_watch_sees_nothing_of_an_earlier_signal(recorder):
    with SigintWatch() as outer:
        _press_ctrl_c()
        with SigintWatch() as inner:
            assert outer.seen and not inner.seen
    assert recorder[1] == [signal.SIGINT]


def test_exit_twice_is_harmless(recorder):
    handler, _ = recorder
    watch = SigintWatch()
    watch.__enter__()
    watch.__exit__(None, None, None)
    watch.__exit__(None, None, None)  # nothing left to restore: no second decrement
    assert signal.getsignal(signal.SIGINT) is handler
    assert SigintWatch._active == 0


@pytest.mark.parametrize("disposition", [signal.SIG_IGN, signal.SIG_DFL],
                         ids=["ignored", "default"])
def test_a_handler_that_is_not_a_function_is_left_alone(recorder, disposition):
    signal.signal(signal.SIGINT, disposition)
    with SigintWatch() as watch:
        assert signal.getsignal(signal.SIGINT) is disposition
        assert SigintWatch._active == 0 and not watch.nested
    assert signal.getsignal(signal.SIGINT) is disposition
    assert SigintWatch._active == 0


def test_outside_the_main_thread_the_watch_does_nothing(recorder):
    handler, _ = recorder
    seen = {}

    def run():
        with SigintWatch() as watch:
            seen["handler"] = signal.getsignal(signal.SIGINT)
            seen["active"] = SigintWatch._active
            seen["nested"] = watch.nested
        seen["after"] = SigintWatch._active

    with SigintWatch():  # a fit in the main thread meanwhile
        wrapper = signal.getsignal(signal.SIGINT)
        thread = threading.Thread(target=run)
        thread.start()
        thread.join()
        # signal.signal would raise in a thread: it was never called there
        assert seen == {"handler": wrapper, "active": 1, "nested": False, "after": 1}
    assert signal.getsignal(signal.SIGINT) is handler
