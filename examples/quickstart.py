"""Quickstart: fit both estimators on data that ships with scikit-learn.

Fits DeepMLPClassifier on the 8x8 digits (1,797 images, 10 classes) and
DeepMLPRegressor on the diabetes data (442 patients, 10 features), each in a
Pipeline with StandardScaler, next to scikit-learn's MLP with the same
network, and prints held-out scores and fit times.

Run: python examples/quickstart.py
"""

import time

from sklearn.compose import TransformedTargetRegressor
from sklearn.datasets import load_diabetes, load_digits
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_deepnet import DeepMLPClassifier, DeepMLPRegressor


def report(name, model, X_train, X_test, y_train, y_test, metric):
    start = time.perf_counter()
    model.fit(X_train, y_train)
    seconds = time.perf_counter() - start
    print(f"  {name:<58} {metric} = {model.score(X_test, y_test):.3f}   fit {seconds:5.1f} s")


def main():
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=0
    )
    print("Digits, 10 classes, 1,347 train / 450 test images")
    deep = DeepMLPClassifier(
        hidden_layer_sizes=(128, 128, 128),
        activation="elu",  # He initialization is picked automatically
        batch_norm="before",
        dropout=0.2,
        solver="nadam",
        early_stopping=True,
        random_state=0,
    )
    report("DeepMLPClassifier (3x128 ELU, BatchNorm, dropout, Nadam)",
           make_pipeline(StandardScaler(), deep), X_train, X_test, y_train, y_test,
           "accuracy")
    print(f"    stopped after {deep.n_iter_} epochs; best validation accuracy "
          f"{deep.best_validation_score_:.3f}")
    report("sklearn MLPClassifier (3x128 ReLU, Adam)",
           make_pipeline(StandardScaler(), MLPClassifier(
               (128, 128, 128), early_stopping=True, random_state=0, max_iter=500)),
           X_train, X_test, y_train, y_test, "accuracy")

    X, y = load_diabetes(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    print("\nDiabetes progression, 331 train / 111 test patients")
    deep_reg = DeepMLPRegressor(
        hidden_layer_sizes=(64, 64),
        activation="selu",  # LeCun init + alpha dropout: self-normalizing
        dropout=0.1,
        alpha=1e-2,
        learning_rate_init=1e-3,
        early_stopping=True,
        validation_fraction=0.2,
        n_iter_no_change=20,
        max_iter=500,
        random_state=0,
    )
    report("DeepMLPRegressor (2x64 SELU, alpha dropout)",
           TransformedTargetRegressor(make_pipeline(StandardScaler(), deep_reg),
                                      transformer=StandardScaler()),
           X_train, X_test, y_train, y_test, "R^2")
    report("sklearn MLPRegressor (2x64 ReLU, Adam)",
           TransformedTargetRegressor(make_pipeline(StandardScaler(), MLPRegressor(
               (64, 64), alpha=1e-2, early_stopping=True, validation_fraction=0.2,
               n_iter_no_change=20, max_iter=500, random_state=0)),
               transformer=StandardScaler()),
           X_train, X_test, y_train, y_test, "R^2")


if __name__ == "__main__":
    main()
