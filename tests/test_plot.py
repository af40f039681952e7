"""The Display classes of sklearn_deepnet.plot render headless, accept ax=, and fail clearly."""

import numpy as np
import pytest
from sklearn.datasets import load_digits

from sklearn_deepnet import DeepMLPClassifier

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from sklearn_deepnet.plot import (  # noqa: E402
    ActivationStatsDisplay,
    GradientFlowDisplay,
    TrainingHistoryDisplay,
)

X, y = load_digits(return_X_y=True)
X = X / 16.0


@pytest.fixture(scope="module")
def fitted():
    return DeepMLPClassifier((16, 16, 16), max_iter=4, diagnostics=True, early_stopping=True,
                             n_iter_no_change=10, random_state=0).fit(X, y)


def test_training_history_display(fitted):
    display = TrainingHistoryDisplay.from_estimator(fitted)
    assert len(display.ax_) == 3  # loss, validation score, learning rate
    assert [len(display.lines_[k]) for k in ("loss", "score", "learning rate")] == [2, 1, 1]
    np.testing.assert_allclose(display.lines_["loss"][0].get_ydata(), fitted.loss_curve_)
    np.testing.assert_allclose(display.lines_["score"][0].get_ydata(),
                               fitted.validation_scores_)
    assert display.ax_[0].get_xlabel() == "epoch" and display.ax_[2].get_yscale() == "log"
    fig, ax = plt.subplots()
    one = TrainingHistoryDisplay.from_estimator(fitted, ax=ax)
    assert one.ax_ == [ax] and one.figure_ is fig and list(one.lines_) == ["loss"]
    plain = DeepMLPClassifier((8,), max_iter=2, random_state=0).fit(X, y)
    assert len(TrainingHistoryDisplay.from_estimator(plain).ax_) == 2  # no validation
    plt.close("all")


def test_gradient_flow_display(fitted):
    fig, ax = plt.subplots()
    display = GradientFlowDisplay.from_estimator(fitted, ax=ax)
    assert display.ax_ is ax and display.figure_ is fig
    assert len(display.lines_) == 4  # one per epoch
    np.testing.assert_allclose(display.lines_[-1].get_ydata(),
                               fitted.history_[-1]["diagnostics"]["grad_norm"])
    assert ax.get_yscale() == "log" and ax.get_ylabel() and ax.get_legend() is not None
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "3", "out"]
    plt.close("all")


def test_activation_stats_display(fitted):
    display = ActivationStatsDisplay.from_estimator(fitted)
    assert len(display.ax_) == 2 and len(display.lines_["fraction"]) == 3  # ReLU: dead units
    np.testing.assert_allclose(display.lines_["std"][0].get_ydata(),
                               fitted.history_[-1]["diagnostics"]["act_std"])
    first = ActivationStatsDisplay.from_estimator(fitted, epoch=0)
    assert first.epoch == 1 and "after epoch 1" in first.ax_[0].get_title()
    elu = DeepMLPClassifier((8, 8), activation="elu", max_iter=1, diagnostics=True).fit(X, y)
    fig, ax = plt.subplots()
    only = ActivationStatsDisplay.from_estimator(elu, ax=ax)  # nothing dies or saturates
    assert only.ax_ == [ax] and "fraction" not in only.lines_
    plt.close("all")


def test_displays_need_diagnostics_and_a_fitted_estimator():
    plain = DeepMLPClassifier((8,), max_iter=1, random_state=0).fit(X, y)
    for cls in (GradientFlowDisplay, ActivationStatsDisplay):
        with pytest.raises(ValueError, match="refit it with diagnostics=True"):
            cls.from_estimator(plain)
    with pytest.raises(Exception, match="not fitted"):
        TrainingHistoryDisplay.from_estimator(DeepMLPClassifier())
