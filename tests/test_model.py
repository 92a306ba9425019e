"""The original network: its size, its outputs, and the system around it."""

from __future__ import annotations

import pytest
import torch

from smile.models import build_network
from smile.models.layers import Dropout
from smile.models.original import OriginalCNN
from smile.system import AttributeClassifier
from smile.training.recipe import positive_weights


def test_original_cnn_has_the_notebooks_parameter_count() -> None:
    assert sum(p.numel() for p in OriginalCNN(num_outputs=1).parameters()) == 388_673


@pytest.mark.parametrize("outputs", [1, 40])
def test_network_returns_one_logit_per_attribute(outputs: int) -> None:
    net = build_network("original", outputs).eval()
    logits = net(torch.rand(5, 3, 64, 64))
    assert logits.shape == (5, outputs)
    assert ((logits < 0) | (logits > 1)).any() or outputs == 1  # logits, not probabilities


def test_unknown_network_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="model.net 'resnet9000' is not a network; choose one of: original"):
        build_network("resnet9000", 1)


def test_unknown_network_argument_names_the_accepted_ones() -> None:
    with pytest.raises(
        ValueError, match="resnet takes no 'blokcs'; it accepts: widths, blocks, dropout, head"
    ):
        build_network("resnet", 1, blokcs=1)


def test_system_predicts_probabilities() -> None:
    system = AttributeClassifier(attributes=["Smiling", "Male"]).eval()
    probs = system.predict_step(torch.rand(4, 3, 64, 64), 0)
    assert probs.shape == (4, 2) and ((probs >= 0) & (probs <= 1)).all()
    assert system.hparams.attributes == ["Smiling", "Male"]


@pytest.mark.parametrize("p", [0.5, 0.2])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cpu_dropout_is_torchs_dropout_function(p: float, dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    layer = Dropout(p)
    x = (torch.rand(64, 32, 32, 32) + 0.5).to(dtype).requires_grad_()
    out = layer(x)
    kept = out != 0
    # Kept activations are scaled by 1 / (1 - p), dropped ones are zero, each dropped with probability p.
    torch.testing.assert_close(out[kept], x[kept] / (1 - p))
    assert abs(kept.float().mean().item() - (1 - p)) < 0.005
    out.backward(torch.ones_like(out))
    torch.testing.assert_close(x.grad, kept.to(dtype) / (1 - p))
    # A different mask each call, the identity in evaluation, zeros for p = 1.
    assert not torch.equal(layer(x) != 0, kept)
    assert torch.equal(layer.eval()(x), x)
    assert not Dropout(1.0)(x).any()


def test_cpu_dropout_keeps_channels_last() -> None:
    x = torch.rand(2, 8, 4, 4).contiguous(memory_format=torch.channels_last)
    assert Dropout(0.5)(x).is_contiguous(memory_format=torch.channels_last)


def test_positive_weights_balance_each_attributes_classes() -> None:
    rates = torch.tensor([0.5, 0.1, 0.02])
    assert positive_weights(rates, "balanced").tolist() == pytest.approx([1.0, 9.0, 49.0])
    assert positive_weights(rates, "sqrt").tolist() == pytest.approx([1.0, 3.0, 7.0])
    assert positive_weights(torch.tensor([0.0]), "balanced").item() == pytest.approx(999.0)  # clamped
    with pytest.raises(ValueError, match="model.positive_weight is 'inverse'; choose balanced, sqrt or null"):
        positive_weights(rates, "inverse")
