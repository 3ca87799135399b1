"""`python -m deepdrummer_live …` runs the command line, like `deepdrummer-live …`."""

import sys

from deepdrummer_live.cli import main

sys.exit(main())
