import numpy as np
import pytest
import torch

from sklearn_deepnet._engine.losses import (
    REGRESSION_LOSSES,
    PerSampleLoss,
    binary_log_loss,
    loss_function,
    multiclass_log_loss,
)

OUT = torch.tensor([[0.5, -1.0], [2.0, 0.0], [-0.3, 0.7]])
Y = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])


def test_regression_losses_match_formulas():
    d = OUT - Y
    expected = {
        "squared_error": 0.5 * (d**2).mean(dim=1),
        "absolute_error": d.abs().mean(dim=1),
        "huber": torch.where(d.abs() <= 1.0, 0.5 * d**2, d.abs() - 0.5).mean(dim=1),
        "poisson": (torch.exp(OUT) - Y * OUT).mean(dim=1),
    }
    for name, entry in REGRESSION_LOSSES.items():
        got = entry.factory(1.0)(OUT, Y)
        assert got.shape == (3,)
        torch.testing.assert_close(got, expected[name])


def test_huber_delta():
    d = torch.tensor([[3.0]])
    loss = REGRESSION_LOSSES["huber"].factory(2.0)(d, torch.zeros(1, 1))
    assert loss.item() == pytest.approx(2.0 * (3.0 - 1.0))


def test_classification_losses():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    ce = multiclass_log_loss(logits, torch.tensor([0, 2]))
    manual = -torch.log_softmax(logits, dim=1)[[0, 1], [0, 2]]
    torch.testing.assert_close(ce, manual)
    bce = binary_log_loss(torch.tensor([[0.0, 2.0]]), torch.tensor([[1.0, 0.0]]))
    assert bce.item() == pytest.approx(np.log(2) + np.log1p(np.exp(2.0)), rel=1e-6)


def test_per_sample_loss_module_wraps_the_function():
    fn = REGRESSION_LOSSES["huber"].factory(2.0)
    module = PerSampleLoss(fn)
    torch.testing.assert_close(module(OUT, Y), fn(OUT, Y))
    assert loss_function(module) is fn and loss_function(fn) is fn
    assert module.state_dict() == {}  # nothing to save, but skorch can save it
    assert not module.class_indices
    assert PerSampleLoss(multiclass_log_loss, class_indices=True).class_indices
