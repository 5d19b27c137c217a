"""A trace nobody samples costs no spans: the kit's server span (and client and statement spans,
which ask the same question) is not made under an unsampled parent, whose context stays the
current one; under a sampled parent a child span is made as usual."""

from opentelemetry import context, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from kit.interceptors import _server_span
from kit.telemetry import parent_unsampled, setup_telemetry

TRACE_ID, SPAN_ID = 0x0AF7651916CD43DD8448EB211C80319C, 0x00F067AA0BA902B7


def _parent(sampled: bool):
    flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
    span = NonRecordingSpan(SpanContext(TRACE_ID, SPAN_ID, is_remote=True, trace_flags=flags))
    return trace.set_span_in_context(span)


def setup_module():
    setup_telemetry("unit-test")  # the kit's provider, once per process (later calls add processors)
    assert isinstance(trace.get_tracer_provider(), TracerProvider)


def test_only_a_valid_unsampled_parent_counts_as_unsampled():
    assert parent_unsampled(_parent(sampled=False))
    assert not parent_unsampled(_parent(sampled=True))
    assert not parent_unsampled(context.Context())  # no parent: the sampler decides


def test_no_server_span_under_an_unsampled_parent_whose_context_becomes_current():
    with _server_span("svc/Method", _parent(sampled=False)) as span:
        current = trace.get_current_span().get_span_context()
        assert span.get_span_context().span_id == SPAN_ID  # the caller's, not a new one
        assert (current.trace_id, current.span_id, current.trace_flags.sampled) == (TRACE_ID, SPAN_ID, False)
    assert not trace.get_current_span().get_span_context().is_valid  # detached afterwards


def test_a_sampled_parent_gets_its_server_span():
    with _server_span("svc/Method", _parent(sampled=True)) as span:
        made = span.get_span_context()
        assert made.trace_id == TRACE_ID and made.span_id != SPAN_ID and span.is_recording()
