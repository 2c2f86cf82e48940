"""`python -m embedding_engine`: local indexing and search."""

import sys

from embedding_engine.cli import main

sys.exit(main())
