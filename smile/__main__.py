"""``python -m smile``."""

import sys

from smile.cli import main

if __name__ == "__main__":
    sys.exit(main())
