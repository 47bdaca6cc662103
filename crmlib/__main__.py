"""``python -m crmlib`` is the ``crm-reports`` command."""

import sys

from crmlib.cli import main

if __name__ == "__main__":
    sys.exit(main())
