import pytest
import torch

from sklearn_deepnet import DeepMLPClassifier
from sklearn_deepnet._validation import InvalidParameterError, resolve_device

EST = DeepMLPClassifier()


@pytest.mark.parametrize("device", ["cpu", torch.device("cpu")])
def test_cpu_forms(device):
    assert resolve_device(EST, device) == torch.device("cpu")


def test_auto():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device(EST, "auto").type == expected


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "mps", "cpu:1", ""])
def test_invalid_forms(device):
    with pytest.raises(InvalidParameterError, match="'auto', 'cpu', 'cuda' or 'cuda:N'"):
        resolve_device(EST, device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_absent(device):
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device(EST, device)


@pytest.mark.gpu
def test_cuda_index_out_of_range():
    with pytest.raises(ValueError, match="CUDA device"):
        resolve_device(EST, f"cuda:{torch.cuda.device_count()}")
