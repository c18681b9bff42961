"""``python -m levyjepa.data.shards SRC OUT``: write a folder as tar shards
(:mod:`levyjepa.data.shards.writer`)."""

import sys

from levyjepa.data.shards.writer import main

if __name__ == "__main__":
    sys.exit(main())
