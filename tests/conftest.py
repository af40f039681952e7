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
