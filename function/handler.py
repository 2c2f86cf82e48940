"""Lambda entry point: `handler.lambda_handler`.

Importing this module is Lambda's init phase: it loads, verifies and warms the CPU model, so every
invocation, the first included, finds it ready. `lambda_handler` itself only routes.
"""

from __future__ import annotations

import time

INIT_STARTED = time.perf_counter()

from typing import Any  # noqa: E402  (the imports below are part of the timed init)

from aws_lambda_powertools.utilities.typing import LambdaContext  # noqa: E402

from embedding_engine.api.app import create_app  # noqa: E402
from embedding_engine.engine import Engine  # noqa: E402
from embedding_engine.events import EventRoute, dispatch  # noqa: E402
from embedding_engine.events.batch_operations import BatchOperationTasks  # noqa: E402
from embedding_engine.events.http import HttpRequest  # noqa: E402
from embedding_engine.events.records import DocumentRecords  # noqa: E402
from embedding_engine.events.warmup import WarmupPing  # noqa: E402
from embedding_engine.observability import logger, metrics  # noqa: E402
from embedding_engine.settings import Settings  # noqa: E402

engine = Engine.start(Settings.from_env(), init_started=INIT_STARTED)
app = create_app(engine)
http = HttpRequest(app)
# Order matters: pings, records and tasks are recognised before anything is handed to Mangum.
routes: tuple[EventRoute, ...] = (
    WarmupPing(engine.embedder, engine.state),
    DocumentRecords(engine.indexer),
    BatchOperationTasks(engine.indexer),
    http,
)
engine.finish_init(http_warmup=http.warm_up)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: Any, context: LambdaContext) -> Any:
    """Route one invocation: warm-up ping, S3/SQS records, S3 Batch Operations tasks, or an HTTP
    request."""
    engine.state.record_invocation()
    return dispatch(event, context, routes)
