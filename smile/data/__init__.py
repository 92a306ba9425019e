"""CelebA as data: its constants, on-disk layouts, datasets, transforms, the decoded cache, sampling,
the data check, the synthetic generator and the LightningDataModule."""
