"""The shared engine of the serverless embeddings service, laid out as a Lambda layer (`python/`)."""
