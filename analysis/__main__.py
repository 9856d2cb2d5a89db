"""python -m analysis <command> ... (see `python -m analysis --help`)."""

import sys

from . import plugins  # noqa: F401  (modules register their commands and methods)
from .cli import main

if __name__ == "__main__":
    sys.exit(main())
