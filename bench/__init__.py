"""`make bench`: measured side by side in one run, medians over repetitions.

The bench reuses the tests' Lambda pieces (`tests/runtime_api.py`, `tests/helpers.py`) rather than
copying them: the tests folder is appended to sys.path, so its modules never shadow a library.
"""

import sys
from pathlib import Path

TESTS = str(Path(__file__).resolve().parents[1] / "tests")
if TESTS not in sys.path:
    sys.path.append(TESTS)
