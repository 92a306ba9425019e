"""The original network: its size, its outputs, and the system around it."""

from __future__ import annotations

import pytest
import torch

from smile.models import build_network
from smile.models.original import OriginalCNN
from smile.system import AttributeClassifier


def test_original_cnn_has_the_notebooks_parameter_count() -> None:
    assert sum(p.numel() for p in OriginalCNN(num_outputs=1).parameters()) == 388_673


@pytest.mark.parametrize("outputs", [1, 40])
def test_network_returns_one_logit_per_attribute(outputs: int) -> None:
    net = build_network("original", outputs).eval()
    logits = net(torch.rand(5, 3, 64, 64))
    assert logits.shape == (5, outputs)
    assert ((logits < 0) | (logits > 1)).any() or outputs == 1  # logits, not probabilities


def test_unknown_network_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="Unknown network 'resnet9000'.*original"):
        build_network("resnet9000", 1)


def test_system_predicts_probabilities_and_uses_bce_with_logits() -> None:
    system = AttributeClassifier(attributes=["Smiling", "Male"]).eval()
    probs = system.predict_step(torch.rand(4, 3, 64, 64), 0)
    assert probs.shape == (4, 2) and ((probs >= 0) & (probs <= 1)).all()
    assert isinstance(system.loss_fn, torch.nn.BCEWithLogitsLoss)
    assert system.hparams.attributes == ["Smiling", "Male"]
