"""`python -m scaler` runs the command line."""

import sys

from scaler.cli import console_main

sys.exit(console_main())
