"""Support for the indexing-flow tests: documents, a `Flow` from S3 through SQS into `lambda_handler`,
and the database it indexes into."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from fpdf import FPDF
from starlette.testclient import TestClient

from aws import CREATED, Aws, Pipeline
from embedding_engine.events.records import DocumentRecords
from embedding_engine.indexing.fetch import S3Fetcher
from embedding_engine.indexing.pipeline import Indexer
from embedding_engine.indexing.store import ChunkStore

OLD, NEW, NEWER = "0062E99A88DC407460", "0062E99A88DC4074A0", "0062E99A88DC4075F0"
TEXTS = {
    "notes/bees.txt": "Honeybees turn flower nectar into honey.\n\nWorker bees fan the comb with their "
    "wings until the water evaporates, then seal each cell with wax.",
    "recipes/sourdough.md": "# Sourdough bread\n\nFeed the **starter** with flour and water the night "
    "before baking.\n\n- Fold the dough every half hour.\n- Bake in a hot Dutch oven until it is dark.",
    "history/lighthouse.html": "<!doctype html><html><head><title>Lighthouses</title><script>var beacon = "
    "'XYZZY-SCRIPT';</script><style>p { color: red }</style></head><body><h1>Lighthouse keepers</h1>"
    "<p>The keeper trimmed the lamp at dusk so that ships could see the rocks.</p>"
    "<p>Fog horns sounded when the beam could not cut through the mist.</p></body></html>",
    "science/volcanoes.pdf": "Volcanoes erupt when magma rises through cracks in the crust.\n"
    "Cooling lava hardens into basalt, and ash clouds can ground flights.",
}
QUERIES = {
    "how do bees make honey?": "notes/bees.txt",
    "baking bread with a starter": "recipes/sourdough.md",
    "keeping ships off the rocks at night": "history/lighthouse.html",
    "molten rock and eruptions": "science/volcanoes.pdf",
}
KINDS = {".txt": "text/plain", ".md": "text/markdown", ".html": "text/html", ".pdf": "application/pdf"}
OLD_TEXT = "\n\n".join(f"Log entry {i}: the lighthouse keeper polished the great lens." for i in range(40))
NEW_TEXT = "The harbour ferry now leaves at seven each morning and returns before noon."


@dataclass
class Flow(Pipeline):
    """A pipeline into `lambda_handler`, and the database it indexes into."""

    db: psycopg.Connection[Any]

    def upload(self, key: str, text: str | None = None) -> int:
        """Put `text` (default TEXTS[key]; a .pdf key gets a PDF of its lines); the object's size."""
        text = TEXTS[key] if text is None else text
        return self.put(key, pdf(text) if key.endswith(".pdf") else text.encode())

    def chunks(self, key: str) -> list[tuple[Any, ...]]:
        """(id, text, indexed_at) of the object's chunks, in document order."""
        query = "SELECT id, text, indexed_at FROM chunks WHERE source = %s ORDER BY chunk_index"
        return self.db.execute(query, (self.source(key),)).fetchall()

    def documents(self) -> dict[str, tuple[Any, ...]]:
        """key: (deleted, sequencer, chunk_count, metadata) of every document row."""
        rows = self.db.execute("SELECT source, deleted, sequencer, chunk_count, metadata FROM documents")
        return {row[0].removeprefix(self.source("")): row[1:] for row in rows.fetchall()}


MakeFlow = Callable[..., Flow]


@pytest.fixture(name="make_flow")
def make_flow_fixture(aws: Aws, handler_module: Any, engine: Any, database_url: str) -> Iterator[MakeFlow]:
    """Flows into the session database, emptied first. `events=()`: S3 notifies nobody, the test
    does; `test_event=True` keeps the s3:TestEvent. The warm engine's S3 client is made afresh for
    moto: one made earlier in the session (for a sample payload's bucket) would point at AWS."""
    original = engine.indexer.fetcher
    engine.indexer.fetcher = S3Fetcher(max_bytes=original.max_bytes)
    with psycopg.connect(database_url, autocommit=True) as db:
        db.execute("TRUNCATE chunks, documents")

        def build(events: tuple[str, ...] = (CREATED,), test_event: bool = False) -> Flow:
            queue = aws.queue()
            bucket = aws.bucket(queue, events=events, test_event=test_event)
            return Flow(aws, bucket, queue, handler_module.lambda_handler, db)

        yield build
    engine.indexer.fetcher = original


def pdf(text: str) -> bytes:
    document = FPDF()
    document.add_page()
    document.set_font("helvetica", size=12)
    for line in text.splitlines():
        document.cell(text=line, new_x="LMARGIN", new_y="NEXT")
    return bytes(document.output())


def records(engine: Any, store: ChunkStore, *, max_bytes: int) -> DocumentRecords:
    """The SQS/S3 route around an indexer of the warm model, with its own store and size cap."""
    fetcher = S3Fetcher(max_bytes=max_bytes)
    overlap = engine.settings.chunk_overlap_tokens
    return DocumentRecords(Indexer(engine.embedder, store, fetcher=fetcher, overlap_tokens=overlap))


def search(client: TestClient, query: str) -> list[dict[str, Any]]:
    response = client.post("/search", json={"query": query})
    assert response.status_code == 200, response.text
    return list(response.json()["hits"])
