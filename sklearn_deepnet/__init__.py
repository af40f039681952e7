"""scikit-learn estimators for deep multi-layer perceptrons, trained with PyTorch."""

from ._classifier import DeepMLPClassifier
from ._engine.init import VarianceScaling
from ._lr_finder import LearningRateFinder, find_learning_rate
from ._persist import TRUSTED_TYPES
from ._presets import recommended_params
from ._regressor import DeepMLPRegressor
from .preprocessing import RobustSmoothClipScaler

__version__ = "0.1.0"

__all__ = [
    "TRUSTED_TYPES", "DeepMLPClassifier", "DeepMLPRegressor", "LearningRateFinder",
    "RobustSmoothClipScaler", "VarianceScaling", "__version__", "find_learning_rate",
    "recommended_params",
]
