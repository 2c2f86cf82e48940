"""The seed's "before" design, for `bench/boot.py`: the model loaded lazily, on the first request.

Run as `python -m awslambdaric bench.lazy_handler.lambda_handler` (cwd `function/`, the repo root on
PYTHONPATH). Init imports nothing heavy, so Lambda's init is short; the first invocation imports
`handler` (which loads, verifies and warms the model) and then delegates to it, so that first
request pays for everything the eager design does during init.
"""

from __future__ import annotations

import importlib
from typing import Any

_delegate: Any = None


def lambda_handler(event: Any, context: Any) -> Any:
    """Import `handler` on the first call (the lazy load), then hand every event to it."""
    global _delegate
    if _delegate is None:
        _delegate = importlib.import_module("handler").lambda_handler
    return _delegate(event, context)
