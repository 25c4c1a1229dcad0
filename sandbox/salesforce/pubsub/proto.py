"""The Pub/Sub API's messages, built from the vendored ``pubsub_api.proto`` (see NOTICE.md).

The descriptor is loaded into a *private* descriptor pool: the emulator and a client under test
(closedloop's subscriber, a test's generated stubs) may then live in one process without
fighting over the ``eventbus.v1`` names in protobuf's default pool. The wire format is the
same either way.
"""
from __future__ import annotations

from pathlib import Path

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

PROTO_PATH = Path(__file__).with_name("pubsub_api.proto")
DESCRIPTOR_PATH = Path(__file__).with_name("pubsub_api.binpb")
SERVICE = "eventbus.v1.PubSub"

_pool = descriptor_pool.DescriptorPool()
for _file in descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTOR_PATH.read_bytes()).file:
    _pool.Add(_file)


def _message(name: str):
    return message_factory.GetMessageClass(_pool.FindMessageTypeByName(f"eventbus.v1.{name}"))


(TopicRequest, TopicInfo, SchemaRequest, SchemaInfo, FetchRequest, FetchResponse, ConsumerEvent, ProducerEvent,
 PublishRequest, PublishResponse, ManagedFetchRequest, ManagedFetchResponse) = map(_message, (
    "TopicRequest", "TopicInfo", "SchemaRequest", "SchemaInfo", "FetchRequest", "FetchResponse", "ConsumerEvent",
    "ProducerEvent", "PublishRequest", "PublishResponse", "ManagedFetchRequest", "ManagedFetchResponse"))

_presets = _pool.FindEnumTypeByName("eventbus.v1.ReplayPreset").values_by_name
LATEST, EARLIEST, CUSTOM = (_presets[name].number for name in ("LATEST", "EARLIEST", "CUSTOM"))
