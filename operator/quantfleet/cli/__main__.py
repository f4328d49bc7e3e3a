"""`python -m quantfleet.cli`."""

import sys

from quantfleet.cli import main

sys.exit(main())
