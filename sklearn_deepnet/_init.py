"""Where ``VarianceScaling`` lived before the engine became a subpackage.

Pickles and skops files written by earlier versions name the class
``sklearn_deepnet._init.VarianceScaling``; this alias lets them load.
"""

from ._engine.init import VarianceScaling

__all__ = ["VarianceScaling"]
