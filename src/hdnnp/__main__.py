"""``python -m hdnnp ...`` runs the command line (as the ``hdnnp`` console script)."""

import sys

from hdnnp.cli import main

sys.exit(main())
