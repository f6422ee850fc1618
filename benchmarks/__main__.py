"""``python -m benchmarks``: run every benchmark (see ``benchmarks.runner``)."""

import sys

from benchmarks.runner import main

sys.exit(main())
