"""``python -m smile.download``, the same as ``python -m smile download``."""

import sys

from smile.download.cli import main

sys.exit(main())
