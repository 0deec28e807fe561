"""`python -m local_pipeline` (what `make demo` runs): the whole pipeline locally on embedded defaults."""

import sys

from local_pipeline.demo import main

sys.exit(main())
