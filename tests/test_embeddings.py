"""Numeric embeddings of the engine (``_engine/embeddings.py``): formulas, bins, the plan."""

import math

import numpy as np
import pytest
import torch

from sklearn_deepnet._engine.embeddings import (
    EmbeddingSpec,
    PeriodicEmbedding,
    PiecewiseLinearEmbedding,
    quantile_bins,
)
from sklearn_deepnet._engine.module import MLP, plan_blocker


def test_quantile_bins_are_distinct_float32_quantiles():
    rng = np.random.default_rng(0)
    columns = [rng.normal(size=1000), np.repeat([0.0, 1.0, 2.0], 100), np.full(10, 3.0)]
    bins = quantile_bins(columns, 4)
    np.testing.assert_allclose(bins[0], np.quantile(columns[0], [0, .25, .5, .75, 1]),
                               rtol=1e-6)
    assert bins[1] == (0.0, 1.0, 2.0)  # coinciding quantiles: fewer bins
    assert bins[2] == (3.0, 4.0)  # a constant column: one bin of width 1
    assert all(np.all(np.diff(np.float32(b)) > 0) for b in bins)


def test_piecewise_linear_encoding_by_hand():
    spec = EmbeddingSpec("piecewise_linear", 2, (0,), size=3, bins=((0.0, 1.0, 3.0, 4.0),))
    m = PiecewiseLinearEmbedding(spec)
    x = torch.tensor([[-1.0, 5.0], [0.5, 5.0], [2.0, 5.0], [3.5, 5.0], [6.0, 5.0]])
    encoded = m.encode(x[:, :1])[:, 0]
    # first bin unclipped below, last unclipped above, middle ones in [0, 1]
    expected = torch.tensor([[-1.0, 0, 0], [0.5, 0, 0], [1, 0.5, 0], [1, 1, 0.5], [1, 1, 3]])
    torch.testing.assert_close(encoded, expected)
    out = m(x)
    torch.testing.assert_close(out[:, :3], torch.relu(encoded @ m.weight[0] + m.bias[0]))
    torch.testing.assert_close(out[:, 3], x[:, 1])  # the other column passes through


def test_piecewise_linear_columns_with_fewer_bins_are_padded_with_zeros():
    spec = EmbeddingSpec("piecewise_linear", 2, (0, 1), size=2,
                         bins=((0.0, 1.0, 2.0, 3.0), (0.0, 10.0)))
    m = PiecewiseLinearEmbedding(spec)
    x = torch.tensor([[0.5, -5.0], [2.5, 25.0]])
    encoded = m.encode(x)
    torch.testing.assert_close(encoded[:, 1], torch.tensor([[-0.5, 0, 0], [2.5, 0, 0]]))
    assert all(torch.isfinite(t).all() for t in m.state_dict().values())


def test_periodic_embedding_by_hand():
    torch.manual_seed(0)
    spec = EmbeddingSpec("periodic", 3, (0, 2), size=4, n_frequencies=5, frequency_scale=0.2)
    m = PeriodicEmbedding(spec)
    assert m.frequencies.abs().max() <= 0.6  # truncated at 3 standard deviations
    x = torch.randn(6, 3)
    out = m(x)
    for k, j in enumerate((0, 2)):
        v = 2 * math.pi * m.frequencies[k] * x[:, j:j + 1]
        enc = torch.cat([torch.cos(v), torch.sin(v)], dim=1)
        torch.testing.assert_close(out[:, 4 * k:4 * k + 4],
                                   torch.relu(enc @ m.weight[k] + m.bias[k]))
    torch.testing.assert_close(out[:, 8], x[:, 1])
    assert spec.n_out == 9 and spec.other == (1,)


def test_frequencies_start_from_frequency_scale():
    torch.manual_seed(0)
    spec = EmbeddingSpec("periodic", 50, tuple(range(50)), n_frequencies=40,
                         frequency_scale=0.5)
    f = PeriodicEmbedding(spec).frequencies
    assert 0.4 < float(f.detach().std()) < 0.5  # a normal truncated at 3 sigma: std ~0.493


def test_frequencies_start_from_each_columns_scale():
    torch.manual_seed(0)
    spec = EmbeddingSpec("periodic", 3, (0, 1, 2), n_frequencies=2000,
                         frequency_scale=(0.1, 10.0, 0.1))
    f = PeriodicEmbedding(spec).frequencies.detach()
    std = f.std(dim=1)
    assert 0.09 < float(std[0]) < 0.1 and 0.09 < float(std[2]) < 0.1
    assert 9.0 < float(std[1]) < 10.0
    assert float(f[1].abs().max()) <= 30.0  # truncated at 3 of its own scale


@pytest.mark.parametrize("kind", ["periodic", "piecewise_linear"])
def test_the_plan_starts_with_the_embedding(kind):
    bins = ((0.0, 1.0, 2.0),) * 2 if kind == "piecewise_linear" else None
    spec = EmbeddingSpec(kind, 4, (1, 3), size=5, n_frequencies=3, bins=bins)
    module = MLP(4, [7], 2, embedding=spec, batch_norm_input=True)
    paths = [path for path, _ in module.plan.ops()]
    assert paths[:3] == ["embedding", "input_norm", "hidden.0.linear"]
    assert module.plan.block_starts == (2, 4)
    assert module.hidden[0].linear.in_features == 2 * 5 + 2
    assert module.input_norm.num_features == 12
    assert list(module._modules)[0] == "embedding"
    assert plan_blocker(module) is None
    assert module(torch.randn(3, 4)).shape == (3, 2)


def test_no_embedding_keeps_the_plan_and_state_keys():
    module = MLP(4, [7], 2)
    assert "embedding" not in module._modules
    assert all(not k.startswith("embedding") for k in module.state_dict())
    assert module.plan.embedding is None


def test_a_replaced_embedding_takes_the_network_off_the_plan():
    spec = EmbeddingSpec("periodic", 4, (0, 1), size=2, n_frequencies=3)
    module = MLP(4, [7], 2, embedding=spec)
    module.embedding = torch.nn.Identity()
    assert "numeric embedding" in plan_blocker(module)
    module = MLP(4, [7], 2, embedding=spec)
    module.embedding.register_buffer("extra", torch.zeros(1))
    assert "holds parameters or buffers" in plan_blocker(module)
