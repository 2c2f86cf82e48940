"""Document indexing: S3 objects to text, chunks, vectors, and rows in PostgreSQL + pgvector."""
