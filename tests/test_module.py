import pytest
import torch
from torch import nn

from sklearn_deepnet import DeepMLPClassifier
from sklearn_deepnet._engine.module import MLP


def _kinds(block):
    return [name for name, _ in block.named_children()]


@pytest.mark.parametrize(
    "batch_norm, order",
    [(None, ["linear", "activation"]),
     ("before", ["linear", "batch_norm", "activation"]),
     ("after", ["linear", "activation", "batch_norm"])],
)
def test_batch_norm_position(batch_norm, order):
    net = MLP(5, [7, 7, 7], 2, batch_norm=batch_norm)
    for block in net.hidden:
        assert _kinds(block) == order
    assert (net.hidden[0].linear.bias is None) == (batch_norm == "before")
    assert isinstance(net.input_norm, nn.Identity)


def test_batch_norm_settings_and_input():
    net = MLP(5, [7], 2, batch_norm="after", batch_norm_input=True,
              batch_norm_momentum=0.01, batch_norm_epsilon=1e-3)
    for bn in (net.input_norm, net.hidden[0].batch_norm):
        assert isinstance(bn, nn.BatchNorm1d)
        assert bn.momentum == 0.01 and bn.eps == 1e-3


def test_any_depth_and_linear_model():
    deep = MLP(4, [3] * 20, 2)
    assert len(deep.hidden) == 20
    linear = MLP(4, [], 2)
    assert len(linear.hidden) == 0 and linear(torch.zeros(3, 4)).shape == (3, 2)


def test_dropout_only_in_training():
    torch.manual_seed(0)
    net = MLP(10, [200, 200], 3, dropout=0.5).initialize_()
    x = torch.randn(4, 10)
    net.train()
    assert not torch.allclose(net(x), net(x))
    net.eval()
    assert torch.equal(net(x), net(x))
    assert isinstance(net.hidden[0].dropout, nn.Dropout)


def test_selu_gets_alpha_dropout():
    net = MLP(10, [20], 3, activation="selu", dropout=0.1)
    assert isinstance(net.hidden[0].dropout, nn.AlphaDropout)
    assert not hasattr(MLP(10, [20], 3, dropout=0.0).hidden[0], "dropout")


def test_alpha_dropout_keeps_selu_statistics():
    torch.manual_seed(0)
    net = MLP(300, [300] * 8, 1, activation="selu", dropout=0.2).initialize_()
    net.train()
    h = torch.randn(2000, 300)
    h = net.input_norm(h)
    for block in net.hidden:
        h = block(h)
    assert abs(h.mean().item()) < 0.2 and abs(h.std().item() - 1) < 0.2


def test_dropout_changes_training(clf_data):
    X, y = clf_data
    plain = DeepMLPClassifier((32,), max_iter=5, random_state=0).fit(X, y)
    dropped = DeepMLPClassifier((32,), dropout=0.5, max_iter=5, random_state=0).fit(X, y)
    assert dropped.loss_curve_[-1] > plain.loss_curve_[-1]


def test_batch_norm_statistics_updated_by_fit(clf_data):
    X, y = clf_data
    clf = DeepMLPClassifier((8,), batch_norm="before", batch_norm_input=True, max_iter=3,
                            random_state=0).fit(X + 5.0, y)
    running_mean = clf.net_.module_.input_norm.running_mean
    assert running_mean.mean().item() > 1.0  # moved towards the inputs' mean (~5)


@pytest.mark.parametrize("momentum", [0.0, 1.0])
def test_batch_norm_momentum_changes_running_stats(momentum, clf_data):
    X, y = clf_data
    clf = DeepMLPClassifier((8,), batch_norm_input=True, batch_norm_momentum=momentum,
                            batch_size=200, shuffle=False, max_iter=1, random_state=0)
    clf.fit(X + 3.0, y)
    running = clf.net_.module_.input_norm.running_mean.numpy()
    if momentum == 0.0:  # PyTorch convention: 0 never updates the running mean
        assert (running == 0).all()
    else:  # 1 keeps only the last batch, here the whole training set
        assert running == pytest.approx((X + 3.0).mean(axis=0), rel=1e-4)


def test_batch_norm_epsilon_changes_outputs():
    torch.manual_seed(0)
    x = torch.randn(64, 5) * 0.1
    small = MLP(5, [4], 2, batch_norm_input=True, batch_norm_epsilon=1e-5).input_norm(x)
    big = MLP(5, [4], 2, batch_norm_input=True, batch_norm_epsilon=1.0).input_norm(x)
    assert small.std().item() == pytest.approx(1.0, rel=0.05)
    assert big.std().item() < 0.2
