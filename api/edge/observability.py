"""What operators see: structured JSON logs carrying the request id, Prometheus metrics, and
OpenTelemetry tracing switched on by the standard ``OTEL_*`` variables.

Nothing here is built at import time. Logs never carry customer data: requests are logged without
their query string or body, SQLAlchemy is told to hide bound parameters, and every message and
exception text passes through ``redact`` (e-mail addresses, phone numbers, long digit runs) as a last
line of defence.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import re
import sys
import traceback
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import IO, Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine

from authz.catalogue import CATALOGUE
from infra.db import pool_status
from infra.settings import Settings

log = logging.getLogger("tierwise.observability")

request_id_var: ContextVar[str | None] = ContextVar("tierwise_request_id", default=None)

# ---------------------------------------------------------------- redaction

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
# phone numbers written internationally (+49 151 …) or with an area code in parentheses
_PHONE = re.compile(r"(?<![\w.])(?:\+\d|\(\d+\))[\d\s().-]{5,}\d(?![\w])")
# identifiers and local numbers: six or more digits, maybe joined by dashes (not dots or spaces, so
# IP addresses, decimals and "200 12.5 ms" stay readable); digits glued to letters (hex ids) stay too
_DIGITS = re.compile(r"(?<![\w.-])\d(?:-?\d){5,}(?![\w])")
_QUOTED_VALUE = re.compile(r"(Key \([^)]*\)=\()[^)]*(\))")  # PostgreSQL DETAIL lines


def redact(text: str) -> str:
    """Mask what looks like personal data in a log text."""
    text = _EMAIL.sub("<email>", text)
    text = _QUOTED_VALUE.sub(r"\1<value>\2", text)
    text = _PHONE.sub("<number>", text)
    return _DIGITS.sub("<number>", text)


# ---------------------------------------------------------------- logs

_STANDARD_ATTRS = frozenset(
    logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None).__dict__.keys()
    | {"message", "asctime", "request_id", "color_message", "taskName"}
)


class RequestIdFilter(logging.Filter):
    """Puts the current request id on every record (``record.request_id``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get()
        return True


def _safe(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if depth < 3 and isinstance(value, Mapping):
        return {str(k): _safe(v, depth + 1) for k, v in value.items()}
    if depth < 3 and isinstance(value, list | tuple):
        return [_safe(v, depth + 1) for v in value]
    return redact(str(value))


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_TOKEN = re.compile(r"[^\s,;:()\[\]{}<>=/]+")
_SAFE_ID = re.compile(r"^(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{16,64})$", re.I)


def _scrub_token(match: re.Match[str]) -> str:
    token = match.group(0)
    if sum(c.isdigit() for c in token) >= 4 and not _SAFE_ID.match(token):
        return "<value>"
    return token


def scrub_exception_message(message: str) -> str:
    """An exception's message may quote the data that caused it (PostgreSQL does: ``invalid input
    syntax for type integer: "…"``): drop quoted text and any token with four or more digits (ids,
    phone numbers, national ids) but uuids and hex ids, then redact."""
    message = _QUOTED.sub("<value>", redact(message))
    return _TOKEN.sub(_scrub_token, message)


def _exception_text(exc_info: Any) -> tuple[str, str]:
    """The traceback (frames as Python prints them) with every exception message scrubbed."""
    exc_type, exc, _tb = exc_info
    name = exc_type.__name__ if exc_type else "Exception"
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < 10:
        seen.add(id(current))
        frames = "".join(traceback.format_list(traceback.extract_tb(current.__traceback__)))
        message = scrub_exception_message(str(current))
        parts.insert(0, f"Traceback (most recent call last):\n{frames}{type(current).__name__}: {message}\n")
        current = current.__cause__ or current.__context__
    return name, "\nThe above exception led to the following one:\n\n".join(parts)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, request_id, the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        if request_id:
            out["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                out[key] = _safe(value)
        if record.exc_info and record.exc_info[0] is not None:
            out["exc_type"], out["exc"] = _exception_text(record.exc_info)
        return orjson.dumps(out, default=str).decode()


class TextFormatter(logging.Formatter):
    """Human-readable lines for development, redacted like the JSON ones."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """The message, the request id and any stack are redacted; the record's own fields (time,
        level, logger) are not: a date is not a sensitive digit run there."""
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        record.request_id = redact(request_id) if request_id else request_id
        record.message = redact(record.getMessage())
        record.asctime = self.formatTime(record, self.datefmt)
        line = self.formatMessage(record)
        if record.exc_info and record.exc_info[0] is not None:
            line = f"{line}\n{redact(self.formatException(record.exc_info))}"
        if record.stack_info:
            line = f"{line}\n{redact(self.formatStack(record.stack_info))}"
        return line

    def formatException(self, ei: Any) -> str:
        return _exception_text(ei)[1].rstrip()


_QUIET = {
    # SQLAlchemy logs statements (and, without hide_parameters, values) at INFO: keep it to warnings.
    "sqlalchemy.engine": logging.WARNING,
    "sqlalchemy.pool": logging.WARNING,
    "casbin": logging.WARNING,
    # uvicorn's access log prints query strings (GET variables can carry customer data); tierwise
    # writes its own access line without them.
    "uvicorn.access": logging.CRITICAL + 1,
    "strawberry.execution": logging.CRITICAL + 1,  # errors are logged once, by api/graphql/core/errors.py
}


def configure_logging(settings: Settings, stream: IO[str] | None = None) -> logging.Handler:
    """Route every log record through one handler with the configured format; returns it."""
    use_json = settings.log_format == "json" or (settings.log_format == "auto" and settings.is_production)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    for name, level in _QUIET.items():
        logging.getLogger(name).setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    return handler


# ---------------------------------------------------------------- metrics

_OPERATION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_MAX_OPERATION_LABELS = 200
_DENIED_FIELD = re.compile(r"\b([A-Z][A-Za-z0-9]*\.[a-z][A-Za-z0-9]*)\b")
ROUTES = ("/graphql", "/healthz", "/readyz", "/metrics")


class _PoolCollector(Collector):
    def __init__(self) -> None:
        self.engine: AsyncEngine | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if self.engine is None:
            return
        status = pool_status(self.engine)
        for name, doc, value in (
            ("tierwise_db_pool_size", "Connections the pool keeps", status.size),
            ("tierwise_db_pool_capacity", "Connections the pool may open (size + overflow)", status.capacity),
            ("tierwise_db_pool_checked_out", "Connections in use by requests and jobs", status.checked_out),
            ("tierwise_db_pool_checked_in", "Idle connections in the pool", status.checked_in),
            ("tierwise_db_pool_overflow", "Connections open beyond the pool size", status.overflow),
        ):
            yield GaugeMetricFamily(name, doc, value=value)


class Metrics:
    """The instance's Prometheus metrics, in a registry of its own (one per app, never global)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "tierwise_graphql_requests", "GraphQL operations by name and type", ["operation", "type"], registry=r
        )
        self.latency = Histogram(
            "tierwise_graphql_request_duration_seconds",
            "Time to answer a GraphQL operation, by name and type",
            ["operation", "type"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.http = Counter(
            "tierwise_http_responses", "HTTP responses by route and status", ["route", "status"], registry=r
        )
        self.errors = Counter("tierwise_graphql_errors", "GraphQL errors by code", ["code"], registry=r)
        self.denials = Counter(
            "tierwise_authz_denials",
            "Authorization denials by field (Type.field) and code",
            ["field", "code"],
            registry=r,
        )
        self.rate_limited = Counter("tierwise_rate_limited", "Operations refused by rate limits", ["kind"], registry=r)
        self.rate_limit_check = Histogram(
            "tierwise_rate_limit_check_seconds",
            "Time spent leasing a slice of a rate-limit bucket in PostgreSQL (a statement per slice, not per request)",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5),
            registry=r,
        )
        self.cost = Histogram(
            "tierwise_graphql_query_cost",
            "Estimated cost of executed operations",
            buckets=(1, 5, 10, 50, 100, 500, 1000, 5000, 10000),
            registry=r,
        )
        self.db_failures = Counter("tierwise_db_failures", "Database failures seen by requests", ["kind"], registry=r)
        self.job_runs = Counter(
            "tierwise_job_runs", "Background job runs by task and outcome", ["task", "status"], registry=r
        )
        self._pool = _PoolCollector()
        r.register(self._pool)
        self._operation_names: set[str] = set()

    def watch_pool(self, engine: AsyncEngine | None) -> None:
        self._pool.engine = engine

    def operation_label(self, name: str | None) -> str:
        """Operation names come from clients: keep the label set small and well-formed."""
        if not name:
            return "anonymous"
        if not _OPERATION_NAME.match(name):
            return "invalid"
        if name not in self._operation_names:
            if len(self._operation_names) >= _MAX_OPERATION_LABELS:
                return "other"
            self._operation_names.add(name)
        return name

    def observe_errors(self, errors: list[dict[str, Any]], operation_type: str | None) -> None:
        for error in errors:
            code = str((error.get("extensions") or {}).get("code", "UNKNOWN"))
            self.errors.labels(code).inc()
            if code in ("FORBIDDEN", "FORBIDDEN_FIELD", "FORBIDDEN_ARGUMENT"):
                self.denials.labels(denied_field(error, operation_type), code).inc()

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


def denied_field(error: Mapping[str, Any], operation_type: str | None) -> str:
    """The catalogue field (``Type.field``) a denial is about; bounded to catalogue keys."""
    match = _DENIED_FIELD.search(str(error.get("message", "")))
    if match and match.group(1) in CATALOGUE:
        return match.group(1)
    path = error.get("path") or []
    if len(path) == 1 and operation_type in ("query", "mutation"):
        key = f"{operation_type.capitalize()}.{path[0]}"
        if key in CATALOGUE:
            return key
    return "other"


class JobMetricsHandler(logging.Handler):
    """Counts procrastinate's job outcomes (its worker logs one record per finished job)."""

    OUTCOMES = {
        "job_success": "succeeded",
        "job_error": "failed",
        "job_error_retry": "retried",
        "job_aborted": "aborted",
        "job_aborted_retry": "retried",
    }

    def __init__(self, metrics: Metrics) -> None:
        super().__init__(logging.INFO)
        self.metrics = metrics

    def emit(self, record: logging.LogRecord) -> None:
        status = self.OUTCOMES.get(getattr(record, "action", ""))
        if status is None:
            return
        job = getattr(record, "job", None) or {}
        task = str(job.get("task_name", "unknown")) if isinstance(job, Mapping) else "unknown"
        self.metrics.job_runs.labels(task, status).inc()


@contextlib.contextmanager
def job_metrics(metrics: Metrics) -> Iterator[None]:
    worker_log = logging.getLogger("procrastinate.worker")
    handler = JobMetricsHandler(metrics)
    previous = worker_log.level
    if worker_log.getEffectiveLevel() > logging.INFO:
        worker_log.setLevel(logging.INFO)
    worker_log.addHandler(handler)
    try:
        yield
    finally:
        worker_log.removeHandler(handler)
        worker_log.setLevel(previous)


# ---------------------------------------------------------------- tracing


def tracing_requested(env: Mapping[str, str] | None = None) -> bool:
    """The standard switches: an OTLP endpoint or a traces exporter other than ``none``, unless
    ``OTEL_SDK_DISABLED=true``."""
    env = os.environ if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return False
    return bool(exporter or env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


class Tracing:
    """Spans for HTTP requests and GraphQL operations, exported as the ``OTEL_*`` variables say.
    Built only when ``tracing_requested()``; imports OpenTelemetry only then (the ``otel`` extra)."""

    def __init__(self, provider: Any, tracer: Any, propagate: Any, trace_api: Any) -> None:
        self._provider = provider
        self._tracer = tracer
        self._propagate = propagate
        self._trace = trace_api

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Tracing | None:
        env = os.environ if env is None else env
        if not tracing_requested(env):
            return None
        try:
            from opentelemetry import propagate, trace
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
        except ImportError:
            log.warning("OTEL_* is set but OpenTelemetry is not installed (pip install 'tierwise[otel]'): no tracing")
            return None
        exporter_name = env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() or "otlp"
        exporter: SpanExporter
        if exporter_name == "console":
            exporter = ConsoleSpanExporter()
        else:
            if exporter_name != "otlp":
                log.warning("OTEL_TRACES_EXPORTER=%s is not supported here: using otlp", exporter_name)
            protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", env.get("OTEL_EXPORTER_OTLP_PROTOCOL", ""))
            try:
                if protocol.strip().lower() == "grpc":
                    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
                else:
                    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                        OTLPSpanExporter,
                    )
            except ImportError:
                log.warning("the OTLP exporter for %r is not installed: no tracing", protocol or "http/protobuf")
                return None
            exporter = OTLPSpanExporter()
        resource = Resource.create({"service.name": env.get("OTEL_SERVICE_NAME", "tierwise")})
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(BatchSpanProcessor(exporter))
        log.info("tracing on: %s exporter", exporter_name)
        return cls(provider, provider.get_tracer("tierwise"), propagate, trace)

    @contextlib.contextmanager
    def server_span(self, name: str, headers: Mapping[str, str], attributes: dict[str, Any]) -> Iterator[Any]:
        parent = self._propagate.extract(carrier=dict(headers))
        kind = self._trace.SpanKind.SERVER
        with self._tracer.start_as_current_span(name, context=parent, kind=kind, attributes=attributes) as span:
            yield span

    @contextlib.contextmanager
    def span(self, name: str, attributes: dict[str, Any] | None = None) -> Iterator[Any]:
        with self._tracer.start_as_current_span(name, attributes=attributes or {}) as span:
            yield span

    def shutdown(self) -> None:
        self._provider.shutdown()
