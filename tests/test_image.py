"""The image users deploy, booted as Lambda runs it (`make image-test`; `make image` builds it).

Each container runs under Lambda's conditions (`lambda_container.Conditions`: read-only root, a
512 MB /tmp, a non-root user, memory capped at MemorySize, 1 or 2 CPUs, an init as PID 1) against
the tests' Runtime API, and answers the real payloads of tests/events/ as the in-process tests
expect: HTTP through each front door, warm-up pings, and an SQS batch of S3 notifications indexed
into the session's PostgreSQL from moto's S3. Outcomes only, never speed: `make bench` records
init and request times from the image.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aws import Aws
from flow import TEXTS, MakeFlow, pdf
from helpers import cosine_rows, http_api_event, load_event, log_records, request_payload
from lambda_container import IMAGE, Conditions, LambdaContainer, container_command, lambda_container
from runtime_api import Result
from tcp_forward import tcp_database_url
from test_batch_operations import task_event

pytestmark = pytest.mark.image

MIN_COSINE = 0.9999
# Lambda's CPU share follows memory: one vCPU's worth at 1,769 MB, two at 3,538 MB.
ONE_CPU = Conditions(memory_mb=1769, cpus="0")
TWO_CPUS = Conditions(memory_mb=3538, cpus="0-1")
HTTP_EVENTS = ["apigw_http_v2", "apigw_rest_v1", "function_url", "alb"]
WARMUP_EVENTS = ["warmup_schedule_input", "eventbridge_scheduled", "serverless_plugin_warmup"]
# What the engine mounts into every container (name resolution, its own marker): not the function's.
ENGINE_MOUNTS = {"/etc", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/run", "/run/.containerenv"}


@pytest.fixture(scope="session", autouse=True)
def image_exists() -> None:
    try:
        container_command("image", "inspect", IMAGE)
    except RuntimeError as error:
        pytest.fail(f"no image {IMAGE}: run `make image` first ({error})")


@pytest.fixture(scope="session")
def tcp_database(database_url: str) -> Iterator[str]:
    with tcp_database_url(database_url) as url:
        yield url


def function_env(aws: Aws, database_url: str) -> dict[str, str]:
    """The settings the template gives the function, pointed at moto and the session database."""
    return {
        "DATABASE_URL": database_url,
        "AWS_ENDPOINT_URL": aws.endpoint,
        **{name: "testing" for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")},
    }


@pytest.fixture(scope="module", params=[ONE_CPU, TWO_CPUS], ids=["1-cpu", "2-cpus"])
def booted(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, aws: Aws, tcp_database: str
) -> Iterator[tuple[LambdaContainer, Result, Conditions]]:
    """A container under Lambda's conditions, and its answer to its first event (a warm-up ping)."""
    conditions: Conditions = request.param
    log_path = tmp_path_factory.mktemp("image") / "function.log"
    with lambda_container(log_path, conditions, function_env(aws, tcp_database)) as container:
        first = container.invoke(load_event("warmup_schedule_input"))
        yield container, first, conditions


def body_of(result: Result) -> Any:
    assert result.ok, result.body
    response = result.json()
    assert response["statusCode"] == 200, response
    return json.loads(response["body"])


def test_init_loads_the_model_before_the_first_event(
    booted: tuple[LambdaContainer, Result, Conditions],
) -> None:
    container, first, _ = booted
    assert container.api.first_next_at is not None  # the runtime asked for an event: init is over
    messages = [record.get("message") for record in log_records(container.log())]
    assert messages.index("model ready") < messages.index("init complete")
    assert first.ok, first.body
    ping = first.json()
    assert (ping["cold_start"], ping["first_invocation"], ping["invocations"]) == (True, True, 1)
    assert ping["model"] == "sentence-transformers/all-MiniLM-L6-v2"


def test_health_shows_the_load_strategy_init_phases_and_memory_under_the_cap(
    booted: tuple[LambdaContainer, Result, Conditions],
) -> None:
    container, _, conditions = booted
    health = body_of(container.invoke(load_event("apigw_http_v2_health")))
    assert health["load_strategy"] == "cpu"
    assert health["failed_strategies"] == []
    assert {"imports", "load", "warmup", "total"} <= set(health["timings_ms"])
    assert health["document_store"] == "configured"
    memory = health["memory"]
    assert memory["allocator"].startswith("jemalloc")
    assert 0 < memory["peak_mb"] < conditions.memory_mb


@pytest.mark.parametrize("name", HTTP_EVENTS)
def test_http_events_get_the_models_vectors(
    booted: tuple[LambdaContainer, Result, Conditions], reference_model: Any, name: str
) -> None:
    container, _, _ = booted
    event = load_event(name)
    payload = request_payload(event)
    body = body_of(container.invoke(event))
    if "input" in payload:  # OpenAI: POST /v1/embeddings
        texts, vectors = payload["input"], [item["embedding"] for item in body["data"]]
    else:  # TEI: POST /embed answers a bare list of vectors
        texts, vectors = payload["inputs"], body
    expected = reference_model.encode(texts)
    assert np.asarray(vectors).shape == expected.shape
    assert cosine_rows(vectors, expected).min() >= MIN_COSINE


@pytest.mark.parametrize("name", WARMUP_EVENTS)
def test_warmup_pings_answer_warm(booted: tuple[LambdaContainer, Result, Conditions], name: str) -> None:
    container, _, _ = booted
    result = container.invoke(load_event(name))
    assert result.ok, result.body
    ping = result.json()
    assert ping["warm"] is True
    assert ping["first_invocation"] is False


def test_an_sqs_batch_is_indexed_and_a_bad_document_fails_alone(
    booted: tuple[LambdaContainer, Result, Conditions], make_flow: MakeFlow
) -> None:
    container, _, _ = booted
    flow = make_flow()
    flow.handler = lambda event, _context: container.invoke(event).json()
    flow.upload("notes/bees.txt")
    flow.put("scans/broken.pdf", pdf("Half a PDF")[:300])
    flow.upload("recipes/sourdough.md")

    delivery = flow.deliver()

    assert len(delivery.event["Records"]) == 3
    assert delivery.failed_keys == {"scans/broken.pdf"}
    assert set(flow.documents()) == {"notes/bees.txt", "recipes/sourdough.md"}
    indexed = flow.chunks("notes/bees.txt")
    assert indexed and all(
        line in TEXTS["notes/bees.txt"] for _, text, _ in indexed for line in text.splitlines()
    )
    # Delivered again (SQS is at-least-once): nothing changes.
    flow.aws.sqs.send_message(QueueUrl=flow.queue.url, MessageBody=delivery.event["Records"][0]["body"])
    again = flow.deliver()
    assert again.failed_keys <= {"scans/broken.pdf"}
    assert flow.chunks("notes/bees.txt") == indexed
    search = http_api_event(json.dumps({"query": "how do bees make honey?", "k": 1}), "/search")
    [hit] = body_of(container.invoke(search))["hits"]
    assert hit["source"] == flow.source("notes/bees.txt")


def test_a_batch_operations_task_indexes_an_object_s3_never_notified(
    booted: tuple[LambdaContainer, Result, Conditions], make_flow: MakeFlow
) -> None:
    container, _, _ = booted
    flow = make_flow(events=())  # in the bucket before the stack: no notification
    flow.upload("history/lighthouse.html")

    [result] = container.invoke(task_event(flow, "history/lighthouse.html")).json()["results"]

    assert result["resultCode"] == "Succeeded" and result["resultString"].startswith("indexed: ")
    assert flow.chunks("history/lighthouse.html")


def test_the_docs_page_and_its_vendored_files_are_served_from_the_image(
    booted: tuple[LambdaContainer, Result, Conditions],
) -> None:
    """/docs, Swagger UI's files and /openapi.json come from the package in the image: nothing is fetched."""
    container, _, _ = booted
    answers = {}
    for path in ("/docs", "/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css", "/openapi.json"):
        event = load_event("apigw_http_v2_health")
        event["rawPath"] = event["requestContext"]["http"]["path"] = path
        event["routeKey"] = event["requestContext"]["routeKey"] = f"GET {path}"
        answers[path] = container.invoke(event).json()

    assert {path: answer["statusCode"] for path, answer in answers.items()} == dict.fromkeys(answers, 200)
    assert "swagger-ui-bundle.js" in answers["/docs"]["body"]
    assert "/search" in json.loads(answers["/openapi.json"]["body"])["paths"]


def test_only_the_runtime_runs_and_sigterm_stops_it(
    booted: tuple[LambdaContainer, Result, Conditions],
) -> None:
    container, _, _ = booted
    container.invoke(load_event("apigw_http_v2"))
    processes = container.processes()
    assert len(processes) == 2, processes  # the init (PID 1) and the runtime, nothing left behind
    assert any("awslambdaric handler.lambda_handler" in args for args in processes), processes
    # Lambda sends SIGTERM at shutdown: the init passes it on and the runtime ends by it (128 + 15),
    # instead of being killed 10 s later as a PID 1 that ignores it would be (137).
    assert container.stop() == 143


def test_nothing_is_written_outside_tmp_and_the_code_is_read_only(
    tmp_path: Path, aws: Aws, tcp_database: str, make_flow: MakeFlow
) -> None:
    """The same work as root on a writable root file system, so that every write it attempts
    succeeds and shows (in Lambda each would be an error, some swallowed: a bytecode cache, say)."""
    writable = Conditions(memory_mb=ONE_CPU.memory_mb, cpus=ONE_CPU.cpus, read_only=False, user="0:0")
    with lambda_container(tmp_path / "function.log", writable, function_env(aws, tcp_database)) as container:
        for name in ["warmup_schedule_input", *HTTP_EVENTS]:
            assert container.invoke(load_event(name)).ok
        flow = make_flow()
        flow.handler = lambda event, _context: container.invoke(event).json()
        flow.upload("notes/bees.txt")
        assert flow.deliver().failed_ids == set()
        written = [(kind, path) for kind, path in container.changes() if path not in ENGINE_MOUNTS]
        writable_code = container.run("find", "/opt/model", "/opt/python", "/var/task", "-writable")
    assert written == [], written
    assert writable_code.split() == []


def test_backend_onnx_serves_the_models_vectors_without_torch(
    tmp_path: Path, aws: Aws, tcp_database: str, reference_model: Any
) -> None:
    """The same image with BACKEND=onnx (the model folder carries onnx/model.onnx): the runtime
    process never maps torch's library, and answers with the model's vectors."""
    env = {**function_env(aws, tcp_database), "BACKEND": "onnx"}
    with lambda_container(tmp_path / "function.log", ONE_CPU, env) as container:
        event = load_event("apigw_http_v2")
        body = body_of(container.invoke(event))
        health = body_of(container.invoke(load_event("apigw_http_v2_health")))
        libraries = container.run(
            "sh", "-c", "cat /proc/[0-9]*/maps 2>/dev/null | grep -o '[^/]*\\.so[^ ]*' | sort -u"
        )
    assert (health["backend"], health["load_strategy"]) == ("onnx", "onnx")
    assert "libonnxruntime" in libraries
    assert "libtorch" not in libraries
    texts = request_payload(event)["input"]
    vectors = [item["embedding"] for item in body["data"]]
    assert cosine_rows(vectors, reference_model.encode(texts)).min() >= MIN_COSINE
