"""OpenTelemetry from settings, in one place for every service and the gateway: the tracer provider
(spans to none | console | otlp), the meter provider (metrics to none | console | otlp | prometheus,
the latter served on /metrics), the official instrumentations of SQLAlchemy, Redis and FastAPI, and
JSON logs that carry trace ids. gRPC needs no instrumentation package: the kit's server interceptor
and PeerClient make the server and client spans and carry the trace context."""

from __future__ import annotations

import json
import logging
import re
import sys

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

log = logging.getLogger("reserva.telemetry")

TRACE_EXPORTERS = ("none", "console", "otlp")
METRICS_EXPORTERS = ("none", "console", "otlp", "prometheus")

_configured = False
_metrics_exporter: str | None = None
_instrumented = False
# (host, port) of this process's Prometheus endpoint, once started.
metrics_endpoint: tuple[str, int] | None = None


def setup_telemetry(service_name: str, exporter: str = "none", extra_processor: SpanProcessor | None = None):
    """Install the global tracer provider once per process (several services may share a test
    process); a later call only adds `extra_processor` (tests collect spans that way). Even with
    `none` the SDK provider is installed, so that log lines carry trace and span ids."""
    global _configured
    if exporter not in TRACE_EXPORTERS:
        raise ValueError(f"otel_exporter must be one of {TRACE_EXPORTERS}, not {exporter!r}")
    if _configured:
        provider = trace.get_tracer_provider()
        if extra_processor is not None and isinstance(provider, TracerProvider):
            provider.add_span_processor(extra_processor)
        return
    _configured = True
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if exporter == "console":
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    elif exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    if extra_processor is not None:
        provider.add_span_processor(extra_processor)
    trace.set_tracer_provider(provider)


def setup_metrics(service_name: str, exporter: str = "none", port: int | None = None, host: str = "127.0.0.1"):
    """Install the global meter provider once per process with the chosen reader. `prometheus`
    serves /metrics on `host:port` (0: a free port, see `metrics_endpoint`; None: not served).
    `none` installs nothing: the instruments stay no-ops and cost nothing."""
    global _metrics_exporter, metrics_endpoint
    if exporter not in METRICS_EXPORTERS:
        raise ValueError(f"metrics_exporter must be one of {METRICS_EXPORTERS}, not {exporter!r}")
    if _metrics_exporter is not None or exporter == "none":
        return
    _metrics_exporter = exporter
    readers = []
    if exporter in ("otlp", "console"):
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader

        if exporter == "otlp":
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

            readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
        else:
            readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter()))
    elif exporter == "prometheus":
        from opentelemetry.exporter.prometheus import PrometheusMetricReader

        readers.append(PrometheusMetricReader())
    resource = Resource.create({"service.name": service_name})
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=readers))
    if exporter == "prometheus" and port is not None:
        from prometheus_client import start_http_server

        server, _thread = start_http_server(port, addr=host)
        metrics_endpoint = (host, server.server_port)
        log.info("metrics served", extra={"url": f"http://{host}:{server.server_port}/metrics"})


def parent_unsampled(context=None) -> bool:
    """Whether spans started now (in `context`, or the current one) would be children of a span
    that is not sampled. Under parent-based sampling they would be recorded by nobody, so the kit
    does not make them at all: a trace that is not sampled costs no span objects in the hot paths,
    and its context (trace id, sampled flag) still travels, because it stays the current one."""
    parent = trace.get_current_span(context).get_span_context()
    return parent.is_valid and not parent.trace_flags.sampled


def instrument_libraries() -> None:
    """SQLAlchemy statements and Redis commands become spans, children of the current span (once
    per process; engines created afterwards are traced)."""
    global _instrumented
    if _instrumented:
        return
    _instrumented = True
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    # The SQLAlchemy instrumentation declares support below 2.1; its engine events are unchanged in
    # 2.1 (tests/integration/ops/test_trace_shape.py shows the statements' spans).
    SQLAlchemyInstrumentor().instrument(skip_dep_check=True)
    RedisInstrumentor().instrument()


def libraries_instrumented() -> bool:
    """Whether instrument_libraries() ran in this process: kit.sql then makes its plain-SQL
    statements spans as well, like the SQLAlchemy ones."""
    return _instrumented


# Query parameters that carry a secret (a calendar feed link's): their values never reach a span.
SECRET_QUERY_PARAMETERS = ("token",)
_SECRET_IN_QUERY = re.compile(r"(?<![^?&])(" + "|".join(SECRET_QUERY_PARAMETERS) + r")=[^&#]*")
_URL_ATTRIBUTES = ("http.url", "url.full", "url.query", "http.target")


def redact_secret_query_parameters(span, scope) -> None:  # noqa: ARG001 (the instrumentation's hook signature)
    """A server request hook: the request's URL attributes with the secrets' values replaced."""
    attributes = getattr(span, "attributes", None)
    if not span.is_recording() or not attributes:
        return
    for key in _URL_ATTRIBUTES:
        value = attributes.get(key)
        if isinstance(value, str) and _SECRET_IN_QUERY.search(value):
            span.set_attribute(key, _SECRET_IN_QUERY.sub(r"\1=REDACTED", value))


def instrument_app(app) -> None:
    """The FastAPI app's requests become server spans (trace context taken from the request), the
    parents of every gRPC call the request makes; secrets in a query string are redacted."""
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app,
        exclude_spans=["receive", "send"],
        excluded_urls="/metrics,/healthz",
        server_request_hook=redact_secret_query_parameters,
    )


def configure_telemetry(settings) -> None:
    """Everything above from a service's (or the gateway's) settings (kit.config.ServiceSettings)."""
    setup_telemetry(settings.service_name, settings.otel_exporter)
    setup_metrics(settings.service_name, settings.metrics_exporter, settings.metrics_port, settings.metrics_host)
    if settings.otel_instrument:
        instrument_libraries()


class JsonFormatter(logging.Formatter):
    _skip = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        span = trace.get_current_span().get_span_context()
        body = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if span.is_valid:
            body["trace_id"] = format(span.trace_id, "032x")
            body["span_id"] = format(span.span_id, "016x")
        body.update({k: v for k, v in record.__dict__.items() if k not in self._skip})
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        return json.dumps(body, default=str)


def setup_logging(level: str = "INFO", as_json: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if as_json else logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
