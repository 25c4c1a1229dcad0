"""Salesforce Change Data Capture through the Pub/Sub API: a small gRPC subscriber.

Facts from shared/reference/realtime-and-auth.md §2.3–2.4 (sources there):

- every RPC carries ``accesstoken``, ``instanceurl`` and ``tenantid`` metadata; any OAuth
  flow gives the token (closedloop's own JWT / client-credentials login, never SOAP);
- ``Subscribe`` is a bidirectional stream: the first ``FetchRequest`` names the topic and the
  replay start (``LATEST``, or ``CUSTOM`` with the replay id to resume *after*); each
  ``num_requested`` adds credit, at most 100. Credit is given back only after a batch was
  handled, so closedloop never holds more than it asked for;
- with nothing to deliver the server sends an empty ``FetchResponse`` within 270 s carrying
  ``latest_replay_id`` (a keepalive, whose position is kept too);
- payloads are Avro binary without a header: decoded with the writer schema from
  ``GetSchema(schema_id)``, cached per id; ``ChangeEventHeader.changedFields`` is a bitmap
  (``"0x..."``, nested ``"parentPos-0x..."``) over the schema's field positions;
- any error closes the stream; the Pub/Sub error code is in the ``error-code`` trailer
  (``...fetch.replayid.corrupted`` / ``...validation.failed``: the replay id is older than the
  72-hour retention or unknown → resubscribe at ``LATEST`` and catch up by polling;
  ``...subscription.limit.exceeded``: the daily delivery allocation is used up).

The proto is Salesforce's published ``pubsub_api.proto`` (CC0), vendored beside this module and
compiled at first use into a private descriptor pool, so no generated code is checked in and
no other copy of the same package in the process can clash with it.

Nothing here knows where positions are stored or what a change means to closedloop: the
caller passes ``load_position`` and ``deliver`` (which stores the position in the same
transaction as the work it records) to :class:`ChangeStream`.
"""
from __future__ import annotations

import functools
import json
import logging
import queue
import random
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from io import BytesIO
from pathlib import Path
from typing import Any, Callable, Iterator

import grpc
from fastavro import parse_schema, schemaless_reader

from adapters.errors import AuthError, BudgetExhausted, ClosedloopError, ConfigError, RemoteError, TransientError
from adapters.http import CallCounter

log = logging.getLogger(__name__)

PROTO = Path(__file__).with_name("pubsub_api.proto")
DEFAULT_ENDPOINT = "api.pubsub.salesforce.com:7443"
MAX_BATCH = 100
KEEPALIVE_SECONDS = 270  # the server's promise; a quiet stream longer than this (plus slack) is dead
SYSTEM = "salesforce-pubsub"
LATEST, EARLIEST, CUSTOM = 0, 1, 2  # ReplayPreset
REPLAY_LOST_CODES = ("replayid.corrupted", "replayid.validation.failed")
LIMIT_CODE = "limit.exceeded"


class ReplayIdLost(RemoteError):
    """The stored replay id is no longer in the event bus (72-hour retention) or is unknown."""


@dataclass(frozen=True)
class PubSubAuth:
    """What every Pub/Sub RPC carries. The token is excluded from ``repr``."""

    access_token: str = field(repr=False)
    instance_url: str
    tenant_id: str


@dataclass(frozen=True)
class ChangeEvent:
    """One change event's header: which records changed, how, and who caused it."""

    entity: str
    record_ids: tuple[str, ...]
    change_type: str  # CREATE | UPDATE | DELETE | UNDELETE | GAP_* | GAP_OVERFLOW
    change_origin: str
    commit_at: datetime | None
    changed_fields: tuple[str, ...]
    replay_id: bytes
    values: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)  # body fields, non-null,
    # compound fields' components at the top level as REST has them (create events carry them all)


@dataclass(frozen=True)
class Delivery:
    """One ``FetchResponse``: its decoded events (those that could be decoded) and the replay id
    to resume after once they are handled (the last event's, or the keepalive's latest)."""

    topic: str
    events: tuple[ChangeEvent, ...]
    position: bytes
    undecodable: int = 0

    @property
    def keepalive(self) -> bool:
        return not self.events and not self.undecodable


@functools.cache
def _messages() -> dict[str, Any]:
    """The proto's message classes, from a private descriptor pool (compiled once per process)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    from grpc_tools import protoc

    with tempfile.TemporaryDirectory(prefix="closedloop-pubsub-") as folder:
        out = Path(folder) / "pubsub_api.desc"
        status = protoc.main(["protoc", f"-I{PROTO.parent}", f"--descriptor_set_out={out}", PROTO.name])
        if status != 0:
            raise RuntimeError(f"protoc could not compile {PROTO} (status {status})")
        files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for file in files.file:
        pool.Add(file)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"eventbus.v1.{name}"))
            for name in ("FetchRequest", "FetchResponse", "SchemaRequest", "SchemaInfo", "TopicRequest",
                         "TopicInfo")}


def from_client(change_origin: str, client: str) -> bool:
    """Whether a change was made by a writer that sent ``Sforce-Call-Options: client=<client>``
    (``changeOrigin`` is ``com/salesforce/api/<api>/<version>;client=<client>``)."""
    return any(part.strip() == f"client={client}" for part in change_origin.split(";")[1:])


def decode_bitmap(bitmaps: list[str] | None, schema: dict[str, Any]) -> tuple[str, ...]:
    """Field names a ``changedFields``/``nulledFields``/``diffFields`` bitmap list names.

    ``"0x..."`` is a number whose bit *i* marks the record's *i*-th field; ``"p-0x..."`` does the
    same over the fields of the compound field at position *p* (e.g. ``Name.FirstName``)."""
    fields = schema.get("fields") or []
    names: list[str] = []
    for bitmap in bitmaps or []:
        parent, _, bits = str(bitmap).rpartition("-")
        targets, prefix = fields, ""
        if parent:
            if not parent.isdigit() or int(parent) >= len(fields):
                continue
            nested = _record_schema(fields[int(parent)].get("type"))
            if nested is None:
                continue
            targets, prefix = nested.get("fields") or [], fields[int(parent)]["name"] + "."
        try:
            value = int(bits, 16)
        except ValueError:
            continue
        names += [prefix + targets[index]["name"] for index in range(min(len(targets), value.bit_length()))
                  if value >> index & 1]
    return tuple(names)


def _record_schema(schema: Any) -> dict[str, Any] | None:
    """The record inside an optional (union) field type, if it is one."""
    if isinstance(schema, dict) and schema.get("type") == "record":
        return schema
    if isinstance(schema, list):
        return next((member for member in schema if isinstance(member, dict) and member.get("type") == "record"),
                    None)
    return None


def decode_event(payload: bytes, schema: dict[str, Any], replay_id: bytes) -> ChangeEvent:
    """A change event from its Avro payload and its (parsed) writer schema."""
    record = schemaless_reader(BytesIO(payload), schema)
    header = record.get("ChangeEventHeader") or {}
    commit = header.get("commitTimestamp")
    values: dict[str, Any] = {}
    for name, value in record.items():
        if name == "ChangeEventHeader" or value is None:
            continue
        if isinstance(value, dict):  # a compound field (Name): its components, as REST returns them
            values.update({part: inner for part, inner in value.items() if inner is not None})
        else:
            values[name] = value
    return ChangeEvent(entity=str(header.get("entityName") or ""),
                       record_ids=tuple(str(i) for i in header.get("recordIds") or ()),
                       change_type=str(header.get("changeType") or ""),
                       change_origin=str(header.get("changeOrigin") or ""),
                       commit_at=datetime.fromtimestamp(commit / 1000, timezone.utc) if commit else None,
                       changed_fields=decode_bitmap(header.get("changedFields"), schema),
                       replay_id=replay_id, values=values)


class PubSubClient:
    """One channel to the Pub/Sub API with the RPCs closedloop uses and a schema cache.

    ``auth(renew)`` returns the current :class:`PubSubAuth`; ``renew=True`` asks for a new
    session (after ``UNAUTHENTICATED``)."""

    def __init__(self, endpoint: str, auth: Callable[[bool], PubSubAuth], *, ca_bundle: str | None = None,
                 timeout: float = 30.0, counter: CallCounter | None = None) -> None:
        self.endpoint, self.timeout = endpoint, timeout
        self._auth_source = auth
        self._auth: PubSubAuth | None = None
        self.counter = counter or CallCounter()
        roots = Path(ca_bundle).read_bytes() if ca_bundle else None
        self.channel = grpc.secure_channel(endpoint, grpc.ssl_channel_credentials(root_certificates=roots), options=[
            ("grpc.keepalive_time_ms", 60_000), ("grpc.keepalive_timeout_ms", 20_000),
            ("grpc.max_receive_message_length", 16 * 1024 * 1024)])
        m = _messages()
        self.messages = m
        self._rpc_subscribe = self.channel.stream_stream(
            "/eventbus.v1.PubSub/Subscribe", request_serializer=m["FetchRequest"].SerializeToString,
            response_deserializer=m["FetchResponse"].FromString)
        self._rpc_schema = self.channel.unary_unary(
            "/eventbus.v1.PubSub/GetSchema", request_serializer=m["SchemaRequest"].SerializeToString,
            response_deserializer=m["SchemaInfo"].FromString)
        self._rpc_topic = self.channel.unary_unary(
            "/eventbus.v1.PubSub/GetTopic", request_serializer=m["TopicRequest"].SerializeToString,
            response_deserializer=m["TopicInfo"].FromString)
        self._schemas: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self.channel.close()

    # -- auth ---------------------------------------------------------------------------

    def metadata(self) -> tuple[tuple[str, str], ...]:
        with self._lock:
            if self._auth is None:
                self._auth = self._auth_source(False)
            auth = self._auth
        return (("accesstoken", auth.access_token), ("instanceurl", auth.instance_url), ("tenantid", auth.tenant_id))

    def renew_auth(self) -> None:
        with self._lock:
            self._auth = self._auth_source(True)

    # -- unary calls --------------------------------------------------------------------

    def topic(self, name: str) -> Any:
        """``GetTopic``: whether the topic exists and may be subscribed to."""
        return self._unary("GetTopic", lambda metadata: self._rpc_topic(
            self.messages["TopicRequest"](topic_name=name), metadata=metadata, timeout=self.timeout), topic=name)

    def schema(self, schema_id: str) -> dict[str, Any]:
        """The parsed Avro writer schema for ``schema_id`` (asked for once per id)."""
        with self._lock:
            cached = self._schemas.get(schema_id)
        if cached is not None:
            return cached
        info = self._unary("GetSchema", lambda metadata: self._rpc_schema(
            self.messages["SchemaRequest"](schema_id=schema_id), metadata=metadata, timeout=self.timeout))
        try:
            parsed = parse_schema(json.loads(info.schema_json))
        except (ValueError, TypeError, KeyError) as exc:
            raise RemoteError(f"Salesforce Pub/Sub sent an unusable Avro schema {schema_id}: {exc}") from None
        with self._lock:
            self._schemas[schema_id] = parsed
        return parsed

    def _unary(self, what: str, call: Callable[[tuple], Any], *, topic: str = "") -> Any:
        renewed = False
        while True:
            self.counter.add(SYSTEM)
            try:
                return call(self.metadata())
            except grpc.RpcError as exc:
                error = classify(exc, what, topic)
                if isinstance(error, AuthError) and not renewed:
                    self.renew_auth()
                    renewed = True
                    continue
                raise error from None

    # -- the stream ---------------------------------------------------------------------

    def subscribe(self, topic: str, after: bytes | None, batch: int = MAX_BATCH, *,
                  idle_timeout: float = KEEPALIVE_SECONDS + 30, stop: threading.Event | None = None,
                  on_open: Callable[[], None] | None = None) -> Iterator[Delivery]:
        """Deliveries from one ``Subscribe`` stream, starting after ``after`` (else at the tip).

        Credit: ``batch`` (≤ 100) at first, then as many as each delivery held, asked for only
        when the caller comes back for the next one, i.e. after it handled this one. The
        stream is cancelled when ``stop`` is set or nothing (not even a keepalive) arrived for
        ``idle_timeout`` seconds; errors come out as closedloop's error tree. ``on_open`` hears
        that the stream was opened (a quiet topic sends its first response only with the
        keepalive, up to 270 s later)."""
        batch = max(1, min(MAX_BATCH, batch))
        m = self.messages
        outgoing: queue.Queue = queue.Queue()
        outgoing.put(m["FetchRequest"](topic_name=topic, replay_preset=CUSTOM if after else LATEST,
                                       replay_id=after or b"", num_requested=batch))

        def requests():
            while True:
                item = outgoing.get()
                if item is None:
                    return
                yield item

        self.counter.add(SYSTEM)
        call = self._rpc_subscribe(requests(), metadata=self.metadata())
        heard = [time.monotonic()]
        done = threading.Event()
        timed_out = threading.Event()

        def watch() -> None:
            while not done.wait(1.0):
                if stop is not None and stop.is_set():
                    call.cancel()
                    return
                if time.monotonic() - heard[0] > idle_timeout:
                    timed_out.set()
                    call.cancel()
                    return

        watcher = threading.Thread(target=watch, name=f"pubsub-watch{topic.replace('/', '-')}", daemon=True)
        watcher.start()
        try:
            if on_open is not None:
                on_open()
            for response in call:
                heard[0] = time.monotonic()
                events, undecodable = [], 0
                for consumer in response.events:
                    try:
                        schema = self.schema(consumer.event.schema_id)
                        events.append(decode_event(consumer.event.payload, schema, consumer.replay_id))
                    except (ValueError, TypeError, KeyError, EOFError, IndexError) as exc:
                        # One undecodable event must not stop the others: the poll will see its record.
                        undecodable += 1
                        log.error("Salesforce %s: an event could not be decoded (%s); the safety-net poll "
                                  "will pick its record up", topic, type(exc).__name__)
                position = response.events[-1].replay_id if response.events else response.latest_replay_id
                yield Delivery(topic, tuple(events), bytes(position), undecodable)
                heard[0] = time.monotonic()
                if response.events:
                    outgoing.put(m["FetchRequest"](num_requested=len(response.events)))
        except grpc.RpcError as exc:
            if stop is not None and stop.is_set():
                return
            if timed_out.is_set():
                raise TransientError(f"Salesforce Pub/Sub {topic}: no event and no keepalive for "
                                     f"{idle_timeout:.0f} s; reconnecting") from None
            raise classify(exc, "Subscribe", topic) from None
        finally:
            done.set()
            outgoing.put(None)
            call.cancel()
        if stop is None or not stop.is_set():
            raise TransientError(f"Salesforce Pub/Sub closed the {topic} stream")


def classify(exc: grpc.RpcError, what: str, topic: str = "") -> ClosedloopError:
    """A gRPC failure as closedloop's error tree, using the Pub/Sub ``error-code`` trailer."""
    code = exc.code() if hasattr(exc, "code") else None
    details = (exc.details() if hasattr(exc, "details") else "") or ""
    trailers = dict(exc.trailing_metadata() or ()) if hasattr(exc, "trailing_metadata") else {}
    custom = str(trailers.get("error-code", ""))
    where = f"Salesforce Pub/Sub {what}" + (f" {topic}" if topic else "")
    reason = f"{custom or (code.name if code else 'error')}: {details}".strip()
    if any(marker in custom for marker in REPLAY_LOST_CODES):
        return ReplayIdLost(f"{where}: the stored replay id is no longer available ({reason})")
    if LIMIT_CODE in custom:
        return BudgetExhausted(f"{where}: the org's daily event delivery allocation is used up ({reason}); "
                               "closedloop polls until it frees up")
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return AuthError(f"{where}: the session was refused ({reason})")
    if code in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
        return ConfigError(f"{where}: {reason} — is Change Data Capture enabled for this object (Setup → Change "
                           "Data Capture) and may the integration user View All records of it?")
    return TransientError(f"{where}: {reason}")


class ChangeStream:
    """Keeps one topic subscribed until ``stop``: resumes after the stored position, hands each
    delivery to ``deliver`` (which must store the delivery's position with the work it
    records), and recovers on its own.

    - an expired or unknown replay id: ``replay_lost()`` (the caller forgets the position and
      arranges a catch-up poll), then resubscribe at the tip;
    - ``UNAUTHENTICATED``: a new session once, at once; again → backoff;
    - the delivery allocation used up: ``paused`` for ``paused_seconds``;
    - anything else (including ``deliver`` failing): ``down``, reconnect after a capped,
      jittered exponential backoff, which resets once a delivery got through.

    ``report(state, message)`` hears connecting / connected / down / paused. ``held()``, when
    given, names why the stream must stay idle for now (the caller paused the org, e.g. out of
    API allowance): it is asked before each subscription and after each delivery, and the stream
    closes until it answers None; the stored position makes the pause lose nothing."""

    def __init__(self, client: PubSubClient, topic: str, *, load_position: Callable[[], bytes | None],
                 deliver: Callable[[Delivery], None], report: Callable[[str, str | None], None],
                 replay_lost: Callable[[], None], stop: threading.Event, batch: int = MAX_BATCH,
                 backoff_start: float = 1.0, backoff_cap: float = 60.0, paused_seconds: float = 900.0,
                 idle_timeout: float = KEEPALIVE_SECONDS + 30, held: Callable[[], str | None] | None = None,
                 held_recheck: float = 30.0) -> None:
        self.client, self.topic, self.stop = client, topic, stop
        self.load_position, self.deliver, self.report, self.replay_lost = load_position, deliver, report, replay_lost
        self.held, self.held_recheck = held or (lambda: None), held_recheck
        self.batch, self.idle_timeout = batch, idle_timeout
        self.backoff_start, self.backoff_cap, self.paused_seconds = backoff_start, backoff_cap, paused_seconds
        self.failures = 0

    def run(self) -> None:
        renewed = False
        while not self.stop.is_set():
            reason = self.held()
            if reason:
                self.report("paused", reason)
                self.stop.wait(self.held_recheck)
                continue
            self.report("connecting", None)
            try:
                info = self.client.topic(self.topic)
                if not info.can_subscribe:
                    raise ConfigError(f"Salesforce Pub/Sub: the integration user may not subscribe to {self.topic}")
                for delivery in self.client.subscribe(self.topic, self.load_position(), self.batch,
                                                      idle_timeout=self.idle_timeout, stop=self.stop,
                                                      on_open=lambda: self.report("connected", None)):
                    renewed, self.failures = False, 0
                    self.deliver(delivery)
                    if self.held():
                        break  # closes the stream; resumed after the stored position once allowed
                continue
            except ReplayIdLost as exc:
                log.warning("%s; resubscribing at the tip and catching up by polling", exc.user_message)
                self.replay_lost()
                continue
            except AuthError as exc:
                if not renewed:
                    renewed = True
                    log.info("Salesforce Pub/Sub %s: session refused; authenticating again", self.topic)
                    try:
                        self.client.renew_auth()
                        continue
                    except ClosedloopError as renew_error:
                        exc = renew_error
                self._wait("down", exc.user_message if isinstance(exc, ClosedloopError) else str(exc))
            except BudgetExhausted as exc:
                self._wait("paused", exc.user_message, self.paused_seconds)
            except ClosedloopError as exc:
                self._wait("down", exc.user_message)
            except Exception as exc:  # the caller's deliver() failed (e.g. the store is unreachable)
                log.exception("Salesforce Pub/Sub %s: handling a delivery failed", self.topic)
                self._wait("down", f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}")

    def _wait(self, state: str, message: str, seconds: float | None = None) -> None:
        if seconds is None:
            self.failures += 1
            ceiling = min(self.backoff_cap, self.backoff_start * 2 ** (self.failures - 1))
            seconds = random.uniform(ceiling / 2, ceiling)
        log.warning("Salesforce Pub/Sub %s %s: %s (retrying in %.0f s)", self.topic, state, message, seconds)
        self.report(state, message)
        self.stop.wait(seconds)
