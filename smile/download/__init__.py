"""``python -m smile download``: CelebA from Google Drive, the Hugging Face mirror or the Kaggle mirror.

The sources' optional packages (gdown, huggingface_hub, pyarrow, kaggle) are imported only when used.
"""

from smile.download.cli import main

__all__ = ["main"]
