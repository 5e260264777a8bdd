"""``python -m load_testing``: see :mod:`load_testing.runner`."""

import sys

from load_testing.runner import main

if __name__ == "__main__":
    sys.exit(main())
