"""``model.channels_last`` and ``model.compile``: same network, same checkpoint keys."""

from __future__ import annotations

import torch

from smile.system import AttributeClassifier


def test_channels_last_keeps_the_outputs() -> None:
    torch.manual_seed(0)
    plain = AttributeClassifier(attributes=["Smiling", "Male"]).eval()
    fast = AttributeClassifier(attributes=["Smiling", "Male"], channels_last=True).eval()
    fast.load_state_dict(plain.state_dict())
    fast.configure_model()
    conv = fast.net.features[0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    images = torch.rand(4, 3, 64, 64)
    torch.testing.assert_close(fast(images), plain(images), rtol=1e-4, atol=1e-5)
    assert list(fast.state_dict()) == list(plain.state_dict())


def test_compile_keeps_the_checkpoint_keys() -> None:
    system = AttributeClassifier(compile=True)
    keys = list(system.state_dict())
    system.configure_model()
    system.configure_model()  # a second stage of the same run does not compile twice
    assert system.net._compiled_call_impl is not None
    assert list(system.state_dict()) == keys
