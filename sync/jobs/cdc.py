"""Salesforce Change Data Capture in the daemon: one Pub/Sub stream per topic, each on its thread.

Each delivery becomes queued ids (:mod:`sync.jobs.triggers`) and the stream's new replay
position in one transaction, so a restarted daemon resumes exactly after the last delivery it
recorded: nothing lost, nothing queued twice. Events closedloop's own writes caused (their
``changeOrigin`` names ``client=closedloop``) are dropped here, so enrichment never loops.
A lost replay id (older than the 72-hour retention) forgets the position and makes the next
enrich run poll, which covers the gap from its own cursor. While a stream is down the enrich
job simply polls at its regular rate.
"""
from __future__ import annotations

import base64
import logging
import threading
from datetime import datetime, timezone
from typing import Callable

from adapters.salesforce import CALL_OPTIONS_CLIENT
from adapters.salesforce_pubsub import ChangeStream, Delivery, PubSubClient, from_client
from state import Store
from state.models import TriggerStream
from sync.config import Config
from sync.jobs.base import INSTANCE
from sync.jobs.triggers import SOURCE_CDC, Routing, queue_changes, request_catch_up, save_stream
from sync.ops import metrics
from sync.ops.remotes import Remotes

log = logging.getLogger(__name__)
CRM = "salesforce"


class CdcListener:
    """The Salesforce change event streams of one daemon. ``kick(jobs)`` hears which jobs got work."""

    def __init__(self, config: Config, store: Store, connections, kick: Callable[[set[str]], None], *,
                 clock: Callable[[], datetime] | None = None, idle_timeout: float | None = None,
                 backoff_cap: float = 60.0, held_recheck: float = 30.0) -> None:
        settings = config.settings.salesforce
        self.store, self.kick = store, kick
        self.remotes = Remotes(store)
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.routing = Routing(config, CRM, connections.mapping(CRM))
        self.topics = self.routing.topics()
        adapter = self.adapter = connections.adapter(CRM)
        self.client = PubSubClient(settings.pubsub_endpoint, adapter.pubsub_auth,
                                   ca_bundle=connections.ca_bundle(settings.ca_bundle),
                                   timeout=settings.timeout_seconds, counter=connections.counter)
        self.stop_event = threading.Event()
        options = {"idle_timeout": idle_timeout} if idle_timeout else {}
        self.streams = [ChangeStream(self.client, topic, batch=settings.change_event_batch,
                                     load_position=lambda topic=topic: self.position(topic),
                                     deliver=lambda delivery, topic=topic: self.deliver(topic, delivery),
                                     report=lambda state, message, topic=topic: self.report(topic, state, message),
                                     replay_lost=lambda topic=topic: self.replay_lost(topic),
                                     stop=self.stop_event, backoff_cap=backoff_cap, held=self.held,
                                     held_recheck=held_recheck, **options)
                        for topic in self.topics]
        self.threads: list[threading.Thread] = []

    def start(self) -> "CdcListener":
        for stream in self.streams:
            thread = threading.Thread(target=stream.run, name=f"cdc{stream.topic.replace('/', '-')}", daemon=True)
            thread.start()
            self.threads.append(thread)
        log.info("Salesforce change events: subscribing to %s", ", ".join(self.topics))
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout)
        self.client.close()
        for topic in self.topics:
            metrics.trigger_connected.labels(CRM, topic).set(0)

    # -- what the streams call -------------------------------------------------------------

    def held(self) -> str | None:
        """Why the streams must stay idle: Salesforce is paused (per-remote isolation), so its
        queued ids wait too; the streams resume after their stored positions when it is not."""
        state = self.remotes.state(CRM)
        return f"Salesforce is paused: {state.describe()}" if state.paused else None

    def position(self, topic: str) -> bytes | None:
        with self.store.session(readonly=True) as session:
            row = session.get(TriggerStream, (CRM, topic))
        return base64.b64decode(row.position) if row is not None and row.position else None

    def deliver(self, topic: str, delivery: Delivery) -> None:
        """Queue what the delivery's events mean and move the position, in one transaction."""
        now = self.clock()
        own = [event for event in delivery.events if from_client(event.change_origin, CALL_OPTIONS_CLIENT)]
        others = [event for event in delivery.events if event not in own]
        changes = [change for event in others for change in self.routing.salesforce(
            event.entity, event.record_ids, event.change_type, event.changed_fields, event.commit_at,
            self.adapter.event_snapshot(event.values) if event.values else None)]
        commits = [event.commit_at for event in delivery.events if event.commit_at is not None]
        with self.store.session() as session:
            queue_changes(session, CRM, SOURCE_CDC, changes, now)
            row = session.get(TriggerStream, (CRM, topic))
            values = {"state": "connected", "message": None, "position": base64.b64encode(delivery.position).decode(),
                      "position_at": now, "instance": INSTANCE}
            if delivery.events or delivery.undecodable:
                values.update(last_event_at=now, events=(row.events if row else 0) + len(delivery.events))
                if commits:
                    values["lag_seconds"] = max(0.0, (now - max(commits)).total_seconds())
            save_stream(session, CRM, topic, now, **values)
        label = metrics.trigger_events.labels
        if delivery.keepalive:
            label(CRM, topic, "keepalive").inc()
        label(CRM, topic, "own_write").inc(len(own))
        label(CRM, topic, "undecodable").inc(delivery.undecodable)
        relevant = {(change.record_id) for change in changes}
        label(CRM, topic, "queued").inc(sum(1 for event in others if set(event.record_ids) & relevant))
        label(CRM, topic, "ignored").inc(sum(1 for event in others if not set(event.record_ids) & relevant))
        if delivery.events:
            metrics.trigger_last_event.labels(CRM, topic).set(now.timestamp())
            if commits:
                metrics.trigger_lag.labels(CRM, topic).set(max(0.0, (now - max(commits)).total_seconds()))
        if changes:
            self.kick({change.job for change in changes})

    def report(self, topic: str, state: str, message: str | None) -> None:
        now = self.clock()
        metrics.trigger_connected.labels(CRM, topic).set(1 if state == "connected" else 0)
        with self.store.session() as session:
            values = {"state": state, "message": message[:1000] if message else None, "instance": INSTANCE}
            if state == "connected":
                values["connected_at"] = now
            save_stream(session, CRM, topic, now, **values)

    def replay_lost(self, topic: str) -> None:
        """Forget the expired position and have the next enrich run poll the gap (from its own
        cursor; the revenue job polls on its own schedule whatever the triggers do)."""
        with self.store.session() as session:
            save_stream(session, CRM, topic, self.clock(), position=None, position_at=None,
                        message="the stored replay id had expired; resubscribed at the tip and polled the gap")
            request_catch_up(session, CRM, "enrich")
        self.kick({"enrich"})


def check_change_events(config: Config, connections) -> tuple[list[str], list[str]]:
    """For ``closedloop check``: (lines to print, problems) about Change Data Capture — the
    entities selected in the org, and the Pub/Sub API reachable with the integration user's
    session and willing to let it subscribe."""
    from adapters.errors import ClosedloopError

    settings = config.settings.salesforce
    routing = Routing(config, CRM, connections.mapping(CRM))
    adapter = connections.adapter(CRM)
    lines, problems = [], []
    wanted = {topic: topic.removeprefix("/data/") for topic in routing.topics()}
    try:
        selected = adapter.change_event_selection()
    except ClosedloopError as exc:
        selected = None
        lines.append(f"salesforce: could not read the Change Data Capture selection ({exc.user_message}); "
                     "checking the Pub/Sub API only")
    for topic, event in wanted.items():
        entity = event.removesuffix("ChangeEvent")
        if selected is not None and event not in selected:
            problems.append(f"[salesforce] change_events: Change Data Capture is not enabled for {entity}: in Setup → "
                            f"Change Data Capture, move {entity} to Selected Entities (at most 5 without the add-on), "
                            f"and give the integration user View All on {entity} (its events are silently withheld "
                            "otherwise)")
    client = PubSubClient(settings.pubsub_endpoint, adapter.pubsub_auth,
                          ca_bundle=connections.ca_bundle(settings.ca_bundle), timeout=settings.timeout_seconds,
                          counter=connections.counter)
    try:
        for topic in wanted:
            info = client.topic(topic)
            if not info.can_subscribe:
                problems.append(f"[salesforce] change_events: the integration user may not subscribe to {topic}")
        lines.append(f"salesforce: change events: {', '.join(wanted)} reachable at {settings.pubsub_endpoint}"
                     + ("" if selected is None else f"; selected in the org: {', '.join(sorted(selected)) or 'none'}"))
    except ClosedloopError as exc:
        problems.append(f"[salesforce] pubsub_endpoint: {exc.user_message}")
    finally:
        client.close()
    return lines, problems
