"""Memory soak: thousands of varied requests in-process through `handler.lambda_handler`, as one warm
Lambda container serves them, with the resident set size (VmRSS) read every `--every` requests and a
short single-query latency probe at each reading.

The allocator is chosen when the process starts (`LD_PRELOAD`, `MALLOC_*`), so each allocator gets its
own process: `python -m bench.soak --requests 10000 --out soak.json` under the environment to test.

The mix (deterministic for a seed): OpenAI requests (30 % of them base64, some with `dimensions`),
TEI requests, requests carrying one over-long text (truncated), and a few bad requests (400/422);
1 to `--max-texts` texts of 3-60 words each, drawn uniformly or log-uniformly (`--spread`).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from embedding_engine.memory import allocator, resident_mb
from helpers import FakeLambdaContext, http_api_event  # tests/helpers.py (bench/__init__.py)

REPO = Path(__file__).resolve().parents[1]
LONG_TEXT_WORDS = (600, 1500)
BIG_INPUT_BYTES = 5_900_000  # one input just under Lambda's 6 MB request limit


class Traffic:
    """A deterministic stream of varied request bodies, with the path each one goes to."""

    def __init__(self, *, seed: int, max_texts: int, spread: str) -> None:
        from bench.corpus import CLAUSES, OBJECTS, SUBJECTS, VERBS

        self.rng = random.Random(seed)
        self.max_texts = max_texts
        self.spread = spread
        phrases = SUBJECTS + VERBS + OBJECTS + CLAUSES
        self.words = sorted({word.strip(".,").lower() for phrase in phrases for word in phrase.split()})
        # Rarer words too, so token counts vary beyond the corpus's vocabulary.
        self.words += ["".join(self.rng.choices("abcdefghijklmnopqrstuvwxyz", k=n)) for n in range(3, 15)]

    def text(self, low: int = 3, high: int = 60) -> str:
        return " ".join(self.rng.choices(self.words, k=self.rng.randint(low, high)))

    def count(self) -> int:
        if self.spread == "uniform":
            return self.rng.randint(1, self.max_texts)
        return min(self.max_texts, int(math.exp(self.rng.uniform(0, math.log(self.max_texts + 1)))))

    def request(self) -> tuple[str, dict[str, Any]]:
        """(path, JSON body) of the next request."""
        texts = [self.text() for _ in range(self.count())]
        roll = self.rng.random()
        if roll < 0.02:  # bad requests: refused before any work
            return "/v1/embeddings", self.rng.choice([{"input": [*texts, ""]}, {"input": {"text": "x"}}])
        if roll < 0.05:  # one over-long text among the others: truncated to the max sequence length
            texts[self.rng.randrange(len(texts))] = self.text(*LONG_TEXT_WORDS)
        if roll < 0.20:
            return "/embed", {"inputs": texts, "truncate": True, "normalize": self.rng.random() < 0.9}
        body: dict[str, Any] = {"input": texts, "model": "any"}
        if self.rng.random() < 0.3:
            body["encoding_format"] = "base64"
        if self.rng.random() < 0.1:
            body["dimensions"] = self.rng.choice([64, 128, 256])
        return "/v1/embeddings", body


def probe_ms(handler: Any, context: Any, calls: int = 21) -> float:
    """Median latency of one short query through the handler, in ms."""
    event = http_api_event(json.dumps({"input": ["How do I avoid Lambda cold starts?"]}))
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        handler.lambda_handler(event, context)
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 3)


def soak(*, requests: int, every: int, max_texts: int, spread: str, seed: int) -> dict[str, Any]:
    """Send `requests` varied requests through the handler; a reading every `every` requests."""
    started = time.perf_counter()
    handler, context = _boot()
    init_s = time.perf_counter() - started
    traffic = Traffic(seed=seed, max_texts=max_texts, spread=spread)
    statuses: Counter[int] = Counter()
    texts = 0
    readings = [{"requests": 0, "seconds": 0.0, **resident_mb(), "query_ms": probe_ms(handler, context)}]
    print(f"  {allocator()}: {readings[0]}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    for number in range(1, requests + 1):
        path, body = traffic.request()
        texts += len(body.get("input") or body.get("inputs") or [])
        response = handler.lambda_handler(http_api_event(json.dumps(body), path), context)
        statuses[int(response["statusCode"])] += 1
        if number % every == 0:
            reading = {
                "requests": number,
                "seconds": round(time.perf_counter() - started, 1),
                **resident_mb(),
                "query_ms": probe_ms(handler, context),
            }
            readings.append(reading)
            print(f"  {allocator()}: {reading}", file=sys.stderr, flush=True)
    return {
        "allocator": allocator(),
        "model": handler.engine.embedder.model_id,
        "requests": requests,
        "texts": texts,
        "spread": spread,
        "max_texts": max_texts,
        "seed": seed,
        "init_seconds": round(init_s, 1),
        "statuses": {str(code): count for code, count in sorted(statuses.items())},
        "readings": readings,
    }


def big_input(*, whole: bool) -> dict[str, Any]:
    """Peak and resident memory around one 5.9 MB input: through the handler (cut before it is
    tokenized), or `whole`: straight into `model.encode`, which tokenizes all of it before truncating
    (what the handler did before the cut)."""
    from bench.corpus import corpus

    handler, context = _boot()
    text = ""
    for document in corpus(400, paragraphs=40):
        text += document + "\n\n"
        if len(text) >= BIG_INPUT_BYTES:
            break
    text = text[:BIG_INPUT_BYTES]
    before = resident_mb()
    if whole:
        handler.engine.embedder.model.encode([text])
    else:
        response = handler.lambda_handler(http_api_event(json.dumps({"input": text})), context)
        assert response["statusCode"] == 200, response["body"][:300]
    after = resident_mb()
    return {
        "allocator": allocator(),
        "path": "whole" if whole else "cut",
        "input_bytes": len(text.encode()),
        "rss_before_mb": before["rss_mb"],
        "peak_mb": after["peak_mb"],
        "rss_after_mb": after["rss_mb"],
    }


def _boot() -> tuple[Any, Any]:
    """`import handler` (Lambda's init) and a Lambda context."""
    sys.path.insert(0, str(REPO / "function"))
    import handler

    return handler, FakeLambdaContext()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--every", type=int, default=500)
    parser.add_argument("--max-texts", type=int, default=64)
    parser.add_argument("--spread", choices=["uniform", "log"], default="log")
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--big-input", choices=["cut", "whole"], help="measure one 5.9 MB input instead")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.big_input:
        result = big_input(whole=args.big_input == "whole")
    else:
        result = soak(
            requests=args.requests,
            every=args.every,
            max_texts=args.max_texts,
            spread=args.spread,
            seed=args.seed,
        )
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
