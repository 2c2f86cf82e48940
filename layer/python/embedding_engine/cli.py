"""Local indexing, search and serving without AWS: `python -m embedding_engine index PATH...`,
`python -m embedding_engine search "query"` and `python -m embedding_engine serve` (`make run`),
against DATABASE_URL (or DATABASE_SECRET_ARN) or the local .pgdata PostgreSQL; the indexes of a
database (`indexes`, `drop-index`); and S3 Batch Operations backfills (`backfill`). Development and
operations only: not in the image."""

from __future__ import annotations

import argparse
import hashlib
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, get_args

from embedding_engine.api.search import DEFAULT_MODE, SearchRequest, search
from embedding_engine.deadline import Deadline
from embedding_engine.engine import Engine, store_url
from embedding_engine.errors import DocumentError, StoreUnavailableError
from embedding_engine.indexing.documents import SUPPORTED_EXTENSIONS
from embedding_engine.indexing.pipeline import Indexer, PreparedDocument
from embedding_engine.indexing.retrieval import GroupBy, Mode
from embedding_engine.local_db import start_local_postgres
from embedding_engine.settings import Settings


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    exit_on_sigterm()
    if args.command == "backfill":  # AWS only: no model, no database
        from embedding_engine import backfill

        return backfill.run(args)
    settings = Settings.from_env()
    if not settings.store_configured:
        settings = replace(settings, database_url=start_local_postgres(args.pgdata))
    if args.command in ("indexes", "drop-index"):  # the database only: no model
        return manage_indexes(args, settings)
    engine = Engine.start(settings, init_started=time.perf_counter())
    if args.command == "serve":
        from embedding_engine.serve import serve

        return serve(engine, host=args.host, port=args.port)
    if args.command == "index":
        if engine.indexer is None:  # the store was configured above, so the engine built an indexer
            raise StoreUnavailableError("No indexer: the document store did not open.")
        return index_paths(engine.indexer, args.paths)
    request = SearchRequest(
        query=args.query, k=args.k, source_prefix=args.source_prefix, mode=args.mode, group_by=args.group_by
    )
    hits = search(request, engine.embedder, engine.store, deadline=Deadline.never())["hits"]
    for rank, hit in enumerate(hits, start=1):
        snippet = " ".join(hit["text"].split())[:160]
        print(f"{rank}. {hit['score']:.3f}  {hit['source']}#{hit['chunk']}\n   {snippet}")
    return 0


def parser() -> argparse.ArgumentParser:
    """The commands and their arguments."""
    from embedding_engine import backfill

    parser = argparse.ArgumentParser(prog="python -m embedding_engine", description=__doc__)
    parser.add_argument("--pgdata", type=Path, default=Path(".pgdata"), help="local database folder")
    common = argparse.ArgumentParser(add_help=False)  # --pgdata after the command works too
    common.add_argument("--pgdata", type=Path, default=argparse.SUPPRESS, help="local database folder")
    commands = parser.add_subparsers(dest="command", required=True)
    index = commands.add_parser("index", parents=[common], help="index files and folders (recursively)")
    index.add_argument("paths", nargs="+", type=Path)
    find = commands.add_parser("search", parents=[common], help="print the chunks nearest to a query")
    find.add_argument("query")
    find.add_argument("-k", type=int, default=5)
    find.add_argument("--source-prefix", default=None)
    find.add_argument("--mode", choices=get_args(Mode), default=DEFAULT_MODE)
    find.add_argument("--group-by", choices=get_args(GroupBy), default="chunk")
    serving = commands.add_parser("serve", parents=[common], help="serve the HTTP API (`make run`)")
    serving.add_argument("--host", default="127.0.0.1")
    serving.add_argument("--port", type=int, default=8080)
    commands.add_parser("indexes", parents=[common], help="list the database's indexes (one per model)")
    drop = commands.add_parser("drop-index", parents=[common], help="drop an index no function uses")
    drop.add_argument("name", help="the index's schema, as `indexes` lists it")
    drop.add_argument("--yes", action="store_true", help="do not ask to type the name again")
    drop.add_argument("--force", action="store_true", help="drop it even while connections use it")
    backfill.add_arguments(
        commands.add_parser("backfill", help="index a bucket's objects with S3 Batch Operations")
    )
    return parser


def exit_on_sigterm() -> None:
    """SIGTERM ends the process as Ctrl-C does, through its exit handlers, so the local PostgreSQL it
    started stops with it (uvicorn, once shut down, re-raises the signal to the handler found here)."""
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))


def manage_indexes(args: argparse.Namespace, settings: Settings) -> int:
    """`indexes`: each index (one PostgreSQL schema per model) with its size and the connections using
    it, this configuration's marked `*`; `drop-index NAME`: drop one, after confirmation."""
    from embedding_engine.errors import IndexNotDroppedError
    from embedding_engine.indexing.connect import connect
    from embedding_engine.indexing.indexes import drop_index, list_indexes
    from embedding_engine.indexing.schema import index_schema

    with connect(store_url(settings), timeout=5) as connection:
        if args.command == "indexes":
            ours = index_schema(settings.model_id)
            print(f"  {'index':<56}{'model':<48}{'documents':>10}{'chunks':>10}{'MB':>9}{'in use':>8}")
            for index in list_indexes(connection):
                mark = "*" if index.schema == ours else " "
                print(
                    f"{mark} {index.schema:<56}{index.model_id:<48}{index.documents:>10}{index.chunks:>10}"
                    f"{index.bytes / 1e6:>9.1f}{index.sessions:>8}"
                )
            return 0
        if not args.yes and input(f"Type {args.name} to drop it and all its chunks: ").strip() != args.name:
            print("Not dropped.", file=sys.stderr)
            return 1
        try:
            dropped = drop_index(connection, args.name, force=args.force)
        except IndexNotDroppedError as refused:
            print(refused, file=sys.stderr)
            return 2
    counts = f"{dropped.documents} documents, {dropped.chunks} chunks"
    print(f"Dropped {dropped.schema} ({dropped.model_id}: {counts}).")
    return 0


def index_paths(indexer: Indexer, paths: Sequence[Path]) -> int:
    """Index every supported file under `paths`: files are read and chunked until they make a group's
    worth of chunks (GROUP_BATCHES encoder batches), then embedded together, each stored in its own
    transaction. Unchanged files (same mtime) are skipped."""
    from tqdm import tqdm

    from embedding_engine.indexing.batch import GROUP_BATCHES

    files = sorted(set(supported_files(paths)))
    counts = {"indexed": 0, "unchanged": 0, "failed": 0, "chunks": 0}
    group_chunks = GROUP_BATCHES * indexer.embedder.batch_size
    with tqdm(total=len(files), desc="indexing", unit="file") as progress:
        window: list[PreparedDocument] = []
        chunks = 0
        for path in files:
            document = read_file(indexer, path, counts)
            if document is None:
                progress.update()
                continue
            window.append(document)
            chunks += len(document.chunks)
            if chunks >= group_chunks:
                index_window(indexer, window, counts, progress.update)
                window, chunks = [], 0
        index_window(indexer, window, counts, progress.update)
    print(
        f"{counts['indexed']} files indexed ({counts['chunks']} chunks), "
        f"{counts['unchanged']} unchanged, {counts['failed']} failed"
    )
    return 1 if counts["failed"] else 0


def index_window(
    indexer: Indexer, documents: Sequence[PreparedDocument], counts: dict[str, int], done: Callable[[], Any]
) -> None:
    """Embed `documents` together and store each, calling `done` after each. A store error stops the
    command, as on any database error."""
    from embedding_engine.indexing.batch import index_documents

    for _, result in index_documents(indexer, documents, deadline=Deadline.never()):
        if isinstance(result, Exception):
            raise result
        counts["indexed"] += 1
        counts["chunks"] += result.chunks
        done()


def read_file(indexer: Indexer, path: Path, counts: dict[str, int]) -> PreparedDocument | None:
    """`path` read and chunked; None, counted, when it is unchanged or cannot be read (reported)."""
    from tqdm import tqdm

    source = path.resolve().as_uri()
    sequencer = f"{path.stat().st_mtime_ns:x}"
    if indexer.store.has_applied(source, sequencer):
        counts["unchanged"] += 1
        return None
    data = path.read_bytes()
    try:
        return indexer.read_document(
            source,
            data=data,
            name=path.name,
            content_type=None,
            sequencer=sequencer,
            version=hashlib.sha256(data).hexdigest()[:16],
        )
    except DocumentError as error:
        counts["failed"] += 1
        tqdm.write(f"not indexed: {path}: {error}")
        return None


def supported_files(paths: Sequence[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_file():
            yield path  # named explicitly: an unsupported type is reported, not silently passed over
        elif path.is_dir():
            yield from (
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED_EXTENSIONS
            )
        else:
            raise SystemExit(f"no such file or folder: {path}")
