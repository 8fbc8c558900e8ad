"""``python -m zmi_reconciler`` is the same as the ``zmi-reconciler`` console script."""

import sys

from zmi_reconciler.cli import main

sys.exit(main())
