"""The Pub/Sub API gRPC service (``eventbus.v1.PubSub``) over TLS, as real grpcio clients use it.

Facts (shared/reference/realtime-and-auth.md §2.3; proto comments of ``pubsub_api.proto``):
- every RPC carries metadata ``accesstoken``, ``instanceurl``, ``tenantid`` (18-character org
  id); anything else is refused UNAUTHENTICATED with trailer ``error-code:
  sfdc.platform.eventbus.grpc.service.auth.error`` (supported-auth.html, handling-errors.html);
- errors close the RPC; trailers carry ``error-code`` and ``rpc-id``, and the message ends with
  ``rpcId: <id>`` (handling-errors.html);
- ``Subscribe``: topic, replay preset and replay id are read from the first FetchRequest only;
  a later FetchRequest naming another topic is INVALID_ARGUMENT; every ``num_requested`` adds
  credit, at most 100 outstanding in total ("the server considers the number of requested events
  to be 100", flow-control.html); a bad replay id is INVALID_ARGUMENT
  ``sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted`` "The Replay ID validation
  failed."; with nothing to deliver the server sends an empty FetchResponse carrying
  ``latest_replay_id`` (real Salesforce: within 270 s); with no credit left the client must send
  a FetchRequest within 60 seconds of the last response or the stream ends (subscribe-rpc.html);
- over the delivery allocation: ``sfdc.platform.eventbus.grpc.subscription.limit.exceeded`` "You
  have exceeded the event delivery limit for your org." (cdc_allocations.htm).

Emulator choices, marked as such: the status of the allocation error (RESOURCE_EXHAUSTED), the
codes for an unknown topic or schema id (NOT_FOUND with the error codes below) and the idle end
of a stream (status OK) are not documented. A session revoked while a stream is open ends the
stream with the auth error; an open stream counts as session activity, so the inactivity
timeout never ends one (the doc: the timeout "doesn't matter for a subscriber client"). Change
events cannot be published: ``Publish``/``PublishStream``/``ManagedSubscribe`` answer
UNIMPLEMENTED.
"""
from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterator

import grpc

from sandbox.salesforce.auth import Authority
from sandbox.salesforce.pubsub import proto
from sandbox.salesforce.pubsub.bus import BusEvent, CorruptReplayId, EventBus
from sandbox.salesforce.pubsub.capture import ChangeCapture
from sandbox.tls import TLSFiles

MAX_REQUESTED = 100
AUTH_ERROR = "sfdc.platform.eventbus.grpc.service.auth.error"
UNAVAILABLE = "sfdc.platform.eventbus.grpc.service.unavailable"
REPLAY_CORRUPTED = "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted"
LIMIT_EXCEEDED = "sfdc.platform.eventbus.grpc.subscription.limit.exceeded"
TOPIC_NOT_FOUND = "sfdc.platform.eventbus.grpc.topic.not.found"      # emulator's name (unverified)
SCHEMA_NOT_FOUND = "sfdc.platform.eventbus.grpc.schema.not.found"    # emulator's name (unverified)
INVALID_REQUEST = "sfdc.platform.eventbus.grpc.fetch.request.invalid"  # emulator's name (unverified)


class _Failure(Exception):
    def __init__(self, status: grpc.StatusCode, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


_AUTH = ("An authentication exception occurred. Provide valid authentication via metadata headers.")


@dataclass(eq=False)
class _Stream:
    """One open Subscribe call."""

    topic: str
    entity: str  # "*" for /data/ChangeEvents
    token: str
    position: int
    credit: int
    zero_since: float | None
    failure: _Failure | None = None
    ended: bool = False

    def wanted(self, event: BusEvent) -> bool:
        return self.entity == "*" or event.entity == self.entity


class PubSubService:
    """The servicer; tunable at run time (``keepalive_seconds``, ``idle_timeout_seconds``)."""

    def __init__(self, capture: ChangeCapture, bus: EventBus, auth: Authority, *, tenant_id: str,
                 instance_url: Callable[[], str], keepalive_seconds: float = 270.0,
                 idle_timeout_seconds: float | None = 60.0) -> None:
        self.capture, self.bus, self.auth = capture, bus, auth
        self.tenant_id, self.instance_url = tenant_id, instance_url
        self.keepalive_seconds = keepalive_seconds
        self.idle_timeout_seconds = idle_timeout_seconds
        self.unavailable = False  # a fault: new RPCs fail UNAVAILABLE until cleared
        self._streams: set[_Stream] = set()

    def handler(self) -> grpc.GenericRpcHandler:
        unary, streaming = grpc.unary_unary_rpc_method_handler, grpc.stream_stream_rpc_method_handler
        return grpc.method_handlers_generic_handler(proto.SERVICE, {
            "GetTopic": unary(self.get_topic, proto.TopicRequest.FromString, proto.TopicInfo.SerializeToString),
            "GetSchema": unary(self.get_schema, proto.SchemaRequest.FromString, proto.SchemaInfo.SerializeToString),
            "Subscribe": streaming(self.subscribe, proto.FetchRequest.FromString,
                                   proto.FetchResponse.SerializeToString),
            "Publish": unary(self._not_offered, proto.PublishRequest.FromString,
                             proto.PublishResponse.SerializeToString),
            "PublishStream": streaming(self._not_offered, proto.PublishRequest.FromString,
                                       proto.PublishResponse.SerializeToString),
            "ManagedSubscribe": streaming(self._not_offered, proto.ManagedFetchRequest.FromString,
                                          proto.ManagedFetchResponse.SerializeToString),
        })

    # -- faults and inspection -----------------------------------------------------------

    def break_streams(self, status: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE,
                      code: str = UNAVAILABLE, message: str = "The Pub/Sub API service is unavailable.") -> int:
        """Fail every open Subscribe stream now (stream loss); returns how many were open."""
        with self.bus.condition:
            for stream in self._streams:
                stream.failure = stream.failure or _Failure(status, code, message)
            self.bus.condition.notify_all()
            return len(self._streams)

    def open_streams(self) -> list[dict[str, object]]:
        with self.bus.condition:
            return [{"topic": s.topic, "credit": s.credit, "position": s.position} for s in self._streams]

    # -- unary RPCs ------------------------------------------------------------------------

    def get_topic(self, request, context: grpc.ServicerContext):
        rpc_id = _rpc_id()
        try:
            self._authenticate(context)
            entity = self._entity(request.topic_name)
            schema_id = "" if entity == "*" else self.capture.schema_for(entity).schema_id
        except _Failure as failure:
            _abort(context, failure, rpc_id)
        return proto.TopicInfo(topic_name=request.topic_name, tenant_guid=self.tenant_id, can_publish=False,
                               can_subscribe=True, schema_id=schema_id, rpc_id=rpc_id)

    def get_schema(self, request, context: grpc.ServicerContext):
        rpc_id = _rpc_id()
        try:
            self._authenticate(context)
            schema = self.capture.schema(request.schema_id)
            if schema is None:
                raise _Failure(grpc.StatusCode.NOT_FOUND, SCHEMA_NOT_FOUND, f"Unknown schema ID: {request.schema_id}")
        except _Failure as failure:
            _abort(context, failure, rpc_id)
        return proto.SchemaInfo(schema_json=schema.schema_json, schema_id=schema.schema_id, rpc_id=rpc_id)

    def _not_offered(self, request, context: grpc.ServicerContext):
        context.abort(grpc.StatusCode.UNIMPLEMENTED,
                      "The sandbox emulates subscribing to change events only; change events cannot be published.")

    # -- Subscribe -------------------------------------------------------------------------

    def subscribe(self, requests: Iterator, context: grpc.ServicerContext):
        rpc_id = _rpc_id()
        try:
            token = self._authenticate(context)
            first = next(requests, None)
            if first is None:
                return
            stream = self._open(first, token)
        except (grpc.RpcError, ValueError):
            return  # the client went away before asking for anything
        except _Failure as failure:
            _abort(context, failure, rpc_id)
        context.add_callback(lambda: self._end(stream))
        with self.bus.condition:
            self._streams.add(stream)
        threading.Thread(target=self._read, args=(requests, stream), name="pubsub-fetch-reader", daemon=True).start()
        try:
            yield from self._deliver(stream, context, rpc_id)
        finally:
            self._end(stream)

    def _open(self, first, token: str) -> _Stream:
        entity = self._entity(first.topic_name)
        if first.num_requested < 0:
            raise _Failure(grpc.StatusCode.INVALID_ARGUMENT, INVALID_REQUEST, "num_requested must not be negative.")
        preset = first.replay_preset
        if preset == proto.CUSTOM:
            try:
                position = self.bus.position(first.replay_id)
            except CorruptReplayId:
                raise _Failure(grpc.StatusCode.INVALID_ARGUMENT, REPLAY_CORRUPTED,
                               "The Replay ID validation failed.") from None
        else:
            with self.bus.condition:
                self.bus.take(self.bus.latest, lambda e: False, 0)  # applies retention first
                position = self.bus.floor if preset == proto.EARLIEST else self.bus.latest
        credit = min(MAX_REQUESTED, first.num_requested)
        return _Stream(first.topic_name, entity, token, position, credit, None if credit else time.monotonic())

    def _read(self, requests: Iterator, stream: _Stream) -> None:
        """Add each later FetchRequest's credit (runs beside the delivering generator)."""
        try:
            for request in requests:
                with self.bus.condition:
                    if request.topic_name and request.topic_name != stream.topic:
                        stream.failure = stream.failure or _Failure(
                            grpc.StatusCode.INVALID_ARGUMENT, INVALID_REQUEST,
                            f"The topic of a subscription cannot change: {stream.topic} != {request.topic_name}")
                    elif request.num_requested < 0:
                        stream.failure = stream.failure or _Failure(
                            grpc.StatusCode.INVALID_ARGUMENT, INVALID_REQUEST, "num_requested must not be negative.")
                    elif request.num_requested:
                        stream.credit = min(MAX_REQUESTED, stream.credit + request.num_requested)
                        stream.zero_since = None
                    self.bus.condition.notify_all()
        except (grpc.RpcError, ValueError):
            pass  # the call ended; _end() has been or will be told

    def _deliver(self, stream: _Stream, context: grpc.ServicerContext, rpc_id: str):
        last_sent = time.monotonic()
        while True:
            with self.bus.condition:
                response = self._next_response(stream, context, rpc_id, last_sent)
                failure = stream.failure
            if failure is not None:
                _abort(context, failure, rpc_id)
            if response is None:
                return
            yield response
            last_sent = time.monotonic()

    def _next_response(self, stream: _Stream, context: grpc.ServicerContext, rpc_id: str, last_sent: float):
        """Wait (holding the bus condition) until there is something to send; None ends the call."""
        bus = self.bus
        while True:
            if stream.failure is not None:
                return None
            if stream.ended or bus.closing or not context.is_active():
                return None
            if self.auth.check("Bearer " + stream.token) is None:
                stream.failure = _Failure(grpc.StatusCode.UNAUTHENTICATED, AUTH_ERROR, _AUTH)
                return None
            limit, left = stream.credit, bus.allocation_left()
            if left is not None and left < limit:
                if left == 0 and bus.take(stream.position, stream.wanted, 1)[0]:
                    stream.failure = _Failure(grpc.StatusCode.RESOURCE_EXHAUSTED, LIMIT_EXCEEDED,
                                              "You have exceeded the event delivery limit for your org.")
                    return None
                limit = left
            events, stream.position, visible_at = bus.take(stream.position, stream.wanted, limit)
            now = time.monotonic()
            if events:
                stream.credit -= len(events)
                if stream.credit == 0:
                    stream.zero_since = now
                bus.delivered(len(events))
                return self._response(stream, rpc_id, events)
            if now - last_sent >= self.keepalive_seconds:
                return self._response(stream, rpc_id, [])
            deadlines = [last_sent + self.keepalive_seconds, now + 1.0]
            if visible_at is not None:
                deadlines.append(visible_at)
            if stream.credit == 0 and stream.zero_since is not None and self.idle_timeout_seconds is not None:
                if now - stream.zero_since >= self.idle_timeout_seconds:
                    return None  # no FetchRequest within the idle timeout: the server ends the stream
                deadlines.append(stream.zero_since + self.idle_timeout_seconds)
            bus.condition.wait(max(0.001, min(deadlines) - now))

    def _response(self, stream: _Stream, rpc_id: str, events: list[BusEvent]):
        consumer = [proto.ConsumerEvent(event=proto.ProducerEvent(id=e.event_uuid, schema_id=e.schema_id,
                                                                  payload=e.payload),
                                        replay_id=self.bus.replay_id(e.seq)) for e in events]
        return proto.FetchResponse(events=consumer, latest_replay_id=self.bus.replay_id(stream.position),
                                   rpc_id=rpc_id, pending_num_requested=stream.credit)

    def _end(self, stream: _Stream) -> None:
        with self.bus.condition:
            stream.ended = True
            self._streams.discard(stream)
            self.bus.condition.notify_all()

    # -- helpers ---------------------------------------------------------------------------

    def _authenticate(self, context: grpc.ServicerContext) -> str:
        if self.unavailable:
            raise _Failure(grpc.StatusCode.UNAVAILABLE, UNAVAILABLE, "The Pub/Sub API service is unavailable.")
        metadata = dict(context.invocation_metadata())
        token = str(metadata.get("accesstoken") or "")
        instance = str(metadata.get("instanceurl") or "").rstrip("/")
        if not token or instance != self.instance_url().rstrip("/") or metadata.get("tenantid") != self.tenant_id \
                or self.auth.check("Bearer " + token) is None:
            raise _Failure(grpc.StatusCode.UNAUTHENTICATED, AUTH_ERROR, _AUTH)
        return token

    def _entity(self, topic: str) -> str:
        entity = self.capture.topic_entity(topic)
        if entity is None:
            raise _Failure(grpc.StatusCode.NOT_FOUND, TOPIC_NOT_FOUND, f"Topic {topic or '(none)'} not found.")
        return entity


def _rpc_id() -> str:
    return str(uuid.uuid4())


def _abort(context: grpc.ServicerContext, failure: _Failure, rpc_id: str):
    context.set_trailing_metadata((("error-code", failure.code), ("rpc-id", rpc_id)))
    context.abort(failure.status, f"{failure.message} rpcId: {rpc_id}")


class PubSubServer:
    """A gRPC server for :class:`PubSubService` on ``host:port`` with the sandbox's certificate."""

    def __init__(self, service: PubSubService, tls: TLSFiles, *, max_streams: int = 64) -> None:
        self.service = service
        self.tls = tls
        self.max_streams = max_streams
        self._server: grpc.Server | None = None
        self.port: int | None = None

    def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        # Each open Subscribe holds one worker for its generator (the reader is its own thread).
        server = grpc.server(ThreadPoolExecutor(max_workers=self.max_streams, thread_name_prefix="pubsub"),
                             handlers=[self.service.handler()])
        credentials = grpc.ssl_server_credentials([(self.tls.key_pem.read_bytes(), self.tls.cert_pem.read_bytes())])
        bound = server.add_secure_port(f"{host}:{port}", credentials)
        if not bound:
            raise OSError(f"cannot listen on {host}:{port} for the Pub/Sub API")
        server.start()
        self._server, self.port = server, bound
        with self.service.bus.condition:
            self.service.bus.closing = False
        return bound

    def stop(self, grace: float = 0.5) -> None:
        if self._server is None:
            return
        with self.service.bus.condition:
            self.service.bus.closing = True
            self.service.bus.condition.notify_all()
        self._server.stop(grace).wait(5)
        self._server = None
