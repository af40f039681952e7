"""scikit-learn estimators for deep multi-layer perceptrons, trained with PyTorch."""

from ._classifier import DeepMLPClassifier
from ._init import VarianceScaling
from ._persist import TRUSTED_TYPES
from ._regressor import DeepMLPRegressor

__version__ = "0.1.0"

__all__ = [
    "TRUSTED_TYPES", "DeepMLPClassifier", "DeepMLPRegressor", "VarianceScaling", "__version__",
]
