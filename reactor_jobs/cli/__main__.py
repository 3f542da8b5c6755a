"""`python -m reactor_jobs.cli` runs the `reactor` command."""

import sys

from reactor_jobs.cli import main

sys.exit(main())
