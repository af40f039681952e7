"""Tests of sklearn_deepnet._proba."""

import numpy as np
from scipy.special import softmax as scipy_softmax

from sklearn_deepnet._proba import softmax


def test_the_softmax_is_scipys_and_row_by_row():
    # The softmax reduces over the transpose (fast for few classes): scipy's
    # result within rounding, each row's bits independent of the other rows,
    # a new C-ordered array, extreme logits handled.
    rng = np.random.default_rng(0)
    for z in (rng.normal(size=(50, 7)) * 30, np.array([[800.0, -800.0, 0.0]]),
              rng.normal(size=(1, 3)).astype(np.float32).astype(np.float64),
              rng.normal(size=(300, 2)) * 5, rng.normal(size=(3, 500))):
        before = z.copy()
        p = softmax(z)
        np.testing.assert_array_equal(z, before)  # (the logits untouched)
        np.testing.assert_allclose(p, scipy_softmax(z, axis=1), rtol=1e-14, atol=1e-300)
        assert p.flags.c_contiguous and p.flags.owndata and p.shape == z.shape
        for rows in ([0], [len(z) - 1, 0], slice(None, None, 2)):
            np.testing.assert_array_equal(softmax(z[rows]), p[rows])
    z = np.array([[800.0, -800.0, 0.0]])
    assert softmax(z)[0, 0] == 1.0 and softmax(z)[0, 1] == 0.0
    assert softmax(np.empty((0, 3))).shape == (0, 3)
    # Row by row whatever the number of classes and rows (numpy sums a single
    # row's column another way: the function must not let it).
    for k in (2, 3, 7, 10, 26, 100, 500):
        z = rng.normal(size=(300, k)) * 5
        full = softmax(z)
        for start, n in ((0, 1), (7, 1), (0, 2), (3, 3), (1, 17), (0, 299)):
            np.testing.assert_array_equal(softmax(z[start : start + n]),
                                          full[start : start + n], err_msg=f"{k} {start} {n}")
