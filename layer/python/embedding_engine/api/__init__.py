"""The HTTP dialects the service speaks: OpenAI's embeddings API and text-embeddings-inference."""
