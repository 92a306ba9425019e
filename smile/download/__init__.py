"""Getting CelebA (``smile download``): :mod:`.celeba` tries the sources in turn, one module per source
(:mod:`.gdrive`, :mod:`.huggingface`, :mod:`.kaggle`), :mod:`.common` holds what they share. The
sources' optional packages (gdown, huggingface_hub, pyarrow, kaggle) are imported only when used."""
