"""``python -m levyjepa.eval RUN_DIR [key=value ...]`` (see :mod:`levyjepa.eval`)."""

import sys

from levyjepa.eval.command import main

sys.exit(main())
