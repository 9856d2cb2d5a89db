"""python -m analysis <command> ... (see `python -m analysis --help`)."""

import sys

from analysis.cli.base import main

if __name__ == "__main__":
    sys.exit(main())
