import signal
import threading

import numpy as np
import pytest
import torch
from sklearn.datasets import make_classification, make_regression


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)


@pytest.fixture(autouse=True, scope="session")
def _sigint_raises_keyboard_interrupt():
    """The Ctrl-C tests send SIGINT to this process and expect Python's
    KeyboardInterrupt. A process started in the background by a script
    (``cmd &`` without job control) inherits SIGINT ignored, and those tests
    would then train on, sleeping a second per batch: give the session the
    disposition a terminal gives, and put back what it inherited."""
    inherited = signal.getsignal(signal.SIGINT)
    if inherited is signal.SIG_IGN and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)
        yield
        signal.signal(signal.SIGINT, inherited)
    else:
        yield


@pytest.fixture
def clf_data():
    X, y = make_classification(
        n_samples=200, n_features=8, n_informative=5, n_classes=3, random_state=0
    )
    return X.astype(np.float64), y


@pytest.fixture
def reg_data():
    X, y = make_regression(n_samples=200, n_features=6, noise=0.1, random_state=0)
    return X, y / y.std()
