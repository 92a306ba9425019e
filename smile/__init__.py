"""smile: face-attribute classifiers on CelebA with PyTorch Lightning."""

__version__ = "0.1.0"
