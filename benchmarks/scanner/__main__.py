from __future__ import annotations

import sys

from .evaluate import main

sys.exit(main())
