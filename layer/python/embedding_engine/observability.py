"""Powertools Logger (JSON lines) and Metrics (CloudWatch EMF), shared by every module.

Never log input texts: log counts, sizes and ids only.
"""

from __future__ import annotations

import logging
import warnings

from aws_lambda_powertools import Logger, Metrics

SERVICE_NAME = "embeddings"
METRICS_NAMESPACE = "ServerlessEmbeddings"

logger = Logger(service=SERVICE_NAME)
metrics = Metrics(namespace=METRICS_NAMESPACE, service=SERVICE_NAME)

# pypdf logs warnings that quote document bytes: keep them out of the logs.
logging.getLogger("pypdf").setLevel(logging.ERROR)
# Health checks and refused requests add no metric; that is expected, not worth a line in every log.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)
