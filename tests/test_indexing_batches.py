"""Documents embedded together: an SQS batch and the CLI's windows of files are encoded in groups of
whole documents (their chunks in batches of similar lengths), each document still stored in its own
transaction, with the same vectors as alone, failures kept to the documents at fault, and the deadline
stopping only what cannot finish."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest

from aws import deliver, object_keys
from embedding_engine.cli import index_paths
from embedding_engine.deadline import Deadline
from embedding_engine.embedder import Throughput
from embedding_engine.indexing.batch import (
    GROUP_BATCHES,
    NOT_STARTED,
    document_groups,
    encode_batches,
    index_documents,
)
from embedding_engine.indexing.chunking import Chunk
from embedding_engine.indexing.pipeline import IndexOutcome, PreparedDocument
from flow import OLD_TEXT, TEXTS, MakeFlow, pdf
from helpers import FakeLambdaContext, cosine_rows

NOTES = {
    f"notes/{n:02d}.txt": f"Note {n}: the harbour ferry carried {n * 7} passengers across the bay today."
    for n in range(6)
}


@pytest.fixture
def embed_calls(engine: Any, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of texts of each `Embedder.embed` call made meanwhile."""
    calls: list[int] = []
    embed = engine.embedder.embed

    def counting(texts: Any, **options: Any) -> Any:
        calls.append(len(texts))
        return embed(texts, **options)

    monkeypatch.setattr(engine.embedder, "embed", counting)
    return calls


def stored_vectors(db: psycopg.Connection[Any], source: str) -> np.ndarray[Any, Any]:
    rows = db.execute(
        "SELECT embedding::real[] FROM chunks WHERE source = %s ORDER BY chunk_index", (source,)
    ).fetchall()
    return np.array([row[0] for row in rows], dtype=np.float32)


def test_a_batch_is_embedded_together_and_a_corrupt_document_fails_alone(
    make_flow: MakeFlow, embed_calls: list[int]
) -> None:
    flow = make_flow()
    for key, text in NOTES.items():
        flow.upload(key, text)
    flow.put("notes/03-scan.pdf", pdf("Half a PDF")[:300])

    delivery = flow.deliver()

    assert len(delivery.event["Records"]) == len(NOTES) + 1
    assert delivery.failed_keys == {"notes/03-scan.pdf"}
    assert set(flow.documents()) == set(NOTES)
    assert all(len(flow.chunks(key)) == 1 for key in NOTES)
    assert embed_calls == [len(NOTES)]  # one call for the whole batch, not one per document
    assert flow.waiting() == 1


def test_vectors_stored_from_a_batch_equal_those_of_each_document_alone(
    make_flow: MakeFlow, engine: Any
) -> None:
    texts = {**{key: TEXTS[key] for key in ("notes/bees.txt", "recipes/sourdough.md")}, **NOTES}
    texts["logs/keeper.txt"] = OLD_TEXT  # several chunks, of other lengths than the notes
    flow = make_flow()
    for key, text in texts.items():
        flow.upload(key, text)

    assert flow.deliver().failed_ids == set()

    indexer = engine.indexer
    for key, text in texts.items():
        alone = indexer.read_document(
            flow.source(key), data=text.encode(), name=key, content_type=None, sequencer="1", version=None
        )
        vectors = indexer.embed_chunks(alone.chunks, deadline=Deadline.never())
        stored = stored_vectors(flow.db, flow.source(key))
        assert stored.shape == vectors.shape, key
        assert cosine_rows(stored, vectors).min() >= 0.9999, key
    assert len(flow.chunks("logs/keeper.txt")) > 1


def test_a_redelivered_batch_changes_nothing(make_flow: MakeFlow, embed_calls: list[int]) -> None:
    flow = make_flow()
    for key, text in NOTES.items():
        flow.upload(key, text)
    first = flow.deliver()
    assert first.failed_ids == set()
    before = {key: flow.chunks(key) for key in NOTES}
    documents = flow.documents()

    for record in first.event["Records"]:  # at-least-once: every message again
        flow.aws.sqs.send_message(QueueUrl=flow.queue.url, MessageBody=record["body"])
    again = flow.deliver()

    assert (len(again.event["Records"]), again.failed_ids) == (len(NOTES), set())
    assert {key: flow.chunks(key) for key in NOTES} == before  # the same ids, not even rewritten
    assert flow.documents() == documents
    assert embed_calls == [len(NOTES)]  # the redelivered events were seen as applied before embedding


def test_the_deadline_stops_only_the_documents_that_cannot_finish(
    make_flow: MakeFlow, engine: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """At 100 tokens/s, 8 s of work: the batch (notes a and b, a logbook of over 12 s alone, note c)
    cannot be embedded together, so its documents are tried alone: a and b finish, the logbook is
    refused, c is not started. The estimate stays put: batches under 512 tokens do not update it."""
    monkeypatch.setattr(engine.embedder, "throughput", Throughput(tokens_per_second=100.0))
    flow = make_flow()
    flow.upload("a/note.txt", "The ferry leaves at seven.")
    flow.upload("b/note.txt", "The ferry returns before noon.")
    flow.upload("b/zlogbook.txt", OLD_TEXT * 2)
    flow.upload("c/note.txt", "The ferry does not run on Sundays.")

    context = FakeLambdaContext(remaining_ms=13_000)  # 5 s of it kept in reserve
    delivery = deliver(flow.queue.url, in_key_order(flow.handler), context)

    assert len(delivery.event["Records"]) == 4
    assert delivery.failed_keys == {"b/zlogbook.txt", "c/note.txt"}
    assert set(flow.documents()) == {"a/note.txt", "b/note.txt"}
    assert flow.waiting() == 2  # redelivered later
    lines = [vars(record) for record in caplog.records if record.getMessage() == "record failed"]
    failed = {line["source"]: line for line in lines}
    assert set(failed) == {flow.source("b/zlogbook.txt"), flow.source("c/note.txt")}
    assert {line["error_type"] for line in lines} == {"DeadlineExceededError"}
    assert "need about" in failed[flow.source("b/zlogbook.txt")]["reason"]
    assert failed[flow.source("c/note.txt")]["reason"] == NOT_STARTED


def in_key_order(handler: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """The handler, given the batch's records sorted by object key (SQS does not promise an order)."""

    def invoke(event: Any, context: Any) -> Any:
        event["Records"].sort(key=lambda record: object_keys(record["body"]))
        return handler(event, context)

    return invoke


def test_groups_hold_whole_documents_and_a_large_one_alone() -> None:
    def document(name: str, chunks: int) -> PreparedDocument:
        pieces = [Chunk(index=i, text="x", start=i, end=i + 1, tokens=3) for i in range(chunks)]
        return PreparedDocument(name, "1", None, pieces, {}, 0.0)

    documents = [document(name, n) for name, n in [("a", 3), ("b", 0), ("c", 4), ("d", 9), ("e", 2)]]

    groups = document_groups(documents, chunks=8)

    assert [[d.source for d in group] for group in groups] == [["a", "b", "c"], ["d"], ["e"]]


def test_an_encoding_error_fails_its_group_alone(
    engine: Any, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches of 1 make groups of GROUP_BATCHES one-chunk documents: the group holding the poisoned
    text fails with its error, the others are stored."""
    indexer = engine.indexer
    monkeypatch.setattr(engine.embedder, "batch_size", 1)
    embed_chunks = indexer.embed_chunks

    def poisoned(chunks: list[Chunk], **options: Any) -> Any:
        if any("poison" in chunk.text for chunk in chunks):
            raise RuntimeError("the model choked")
        return embed_chunks(chunks, **options)

    monkeypatch.setattr(indexer, "embed_chunks", poisoned)
    texts = [f"Note {n}: the tide came in at {n} o'clock." for n in range(3 * GROUP_BATCHES)]
    texts[GROUP_BATCHES + 1] = "Note: the poison garden is closed."
    documents = [
        indexer.read_document(
            f"s3://batches/{n}.txt",
            data=text.encode(),
            name=f"{n}.txt",
            content_type=None,
            sequencer="1",
            version=None,
        )
        for n, text in enumerate(texts)
    ]

    results = [result for _, result in index_documents(indexer, documents, deadline=Deadline.never())]

    failed = [n for n, result in enumerate(results) if isinstance(result, RuntimeError)]
    assert failed == list(range(GROUP_BATCHES, 2 * GROUP_BATCHES))
    indexed = [result for result in results if isinstance(result, IndexOutcome)]
    assert [outcome.action for outcome in indexed] == ["indexed"] * 2 * GROUP_BATCHES


def test_chunks_go_longest_first_in_batches_of_similar_lengths() -> None:
    tokens = [40, 256, 250, 30, 240, 200, 120, 256, 35, 90]

    batches = encode_batches(tokens, size=3)

    # 256, 256, 250 fill a batch; 240, 200, 120 would make one of 3, under MIN_BATCH: no cut by length.
    assert [[tokens[i] for i in batch] for batch in batches] == [
        [256, 256, 250],
        [240, 200, 120],
        [90, 40, 35],
        [30],
    ]
    assert sorted(i for batch in batches for i in batch) == list(range(len(tokens)))
    assert [[tokens[i] for i in b] for b in encode_batches(tokens, size=32)] == [
        [256, 256, 250, 240, 200],  # 120 is under 3/4 of 256, and the batch holds 4 already
        [120, 90, 40, 35],  # 40 and 35 are short, but the batch held fewer than 4
        [30],
    ]


def test_the_cli_indexes_a_folder_in_windows_and_skips_unchanged_files(
    engine: Any,
    database_url: str,
    embed_calls: list[int],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with psycopg.connect(database_url, autocommit=True) as db:
        db.execute("TRUNCATE chunks, documents")
    batch = engine.embedder.batch_size
    files = GROUP_BATCHES * batch + 5  # a window of one group's worth of chunks, then 5
    for n in range(files):
        (tmp_path / f"note-{n:03d}.txt").write_text(f"Note {n}: the lighthouse lamp was lit at dusk.")
    (tmp_path / "scan.pdf").write_bytes(pdf("Half a PDF")[:300])  # read last

    assert index_paths(engine.indexer, [tmp_path]) == 1  # the broken PDF
    out = capsys.readouterr()
    assert f"{files} files indexed ({files} chunks), 0 unchanged, 1 failed" in out.out
    assert f"not indexed: {tmp_path / 'scan.pdf'}: " in out.out
    # Notes of about the same length: full batches across files.
    assert embed_calls == [batch] * GROUP_BATCHES + [5]

    changed = tmp_path / "note-007.txt"
    changed.write_text("Note 7: the lamp now runs on electricity.")
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 1_000_000_000))
    index_paths(engine.indexer, [tmp_path])

    assert f"1 files indexed (1 chunks), {files - 1} unchanged, 1 failed" in capsys.readouterr().out
    assert embed_calls[-1] == 1
    with psycopg.connect(database_url) as db:
        [(text,)] = db.execute(
            "SELECT text FROM chunks WHERE source = %s", (changed.resolve().as_uri(),)
        ).fetchall()
        assert text == "Note 7: the lamp now runs on electricity."
        assert db.execute("SELECT count(*) FROM documents").fetchone() == (files,)
