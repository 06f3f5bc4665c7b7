"""The few messages of Hatchet's gRPC contracts this package uses, built in code (no ``protoc``).

Field numbers are those of Hatchet's ``api-contracts``: ``v1/shared/trigger.proto`` (``TriggerWorkflowRequest``),
``workflows/workflows.proto`` (the single and bulk triggers), ``events/events.proto`` (push and bulk push),
``dispatcher/dispatcher.proto`` (the stream of finished runs) and ``v1/workflows.proto`` (the idempotency collision
details), plus ``google.rpc.Status`` for error details. Only the fields used are declared: the wire format skips the
others. They are declared ``proto2`` optional, which encodes as proto3's explicit presence does, so a field left
unset is not sent.

The descriptors live in a private pool, so they never clash with hatchet-sdk's generated modules in one process.
Both the client (``client/grpc/``) and the simulator's gRPC face use this module; it imports only protobuf.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_STRING = descriptor_pb2.FieldDescriptorProto.TYPE_STRING
_BYTES = descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
_INT32 = descriptor_pb2.FieldDescriptorProto.TYPE_INT32
_INT64 = descriptor_pb2.FieldDescriptorProto.TYPE_INT64
_MESSAGE = descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE
_OPTIONAL = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
_REPEATED = descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED
_PACKAGE = "airflow_provider_hatchet.hatchet"

# name -> [(field, number, type, repeated, message type)]
_MESSAGES: dict[str, list[tuple[str, int, int, bool, str]]] = {
    "Timestamp": [("seconds", 1, _INT64, False, ""), ("nanos", 2, _INT32, False, "")],
    "TriggerWorkflowRequest": [
        ("name", 1, _STRING, False, ""),
        ("input", 2, _STRING, False, ""),
        ("additional_metadata", 7, _STRING, False, ""),
        ("priority", 9, _INT32, False, ""),
    ],
    "TriggerWorkflowResponse": [("workflow_run_id", 1, _STRING, False, "")],
    "BulkTriggerWorkflowRequest": [("workflows", 1, _MESSAGE, True, "TriggerWorkflowRequest")],
    "BulkTriggerWorkflowResponse": [("workflow_run_ids", 1, _STRING, True, "")],
    "PushEventRequest": [
        ("key", 1, _STRING, False, ""),
        ("payload", 2, _STRING, False, ""),
        ("event_timestamp", 3, _MESSAGE, False, "Timestamp"),
        ("additional_metadata", 4, _STRING, False, ""),
        ("priority", 5, _INT32, False, ""),
        ("scope", 6, _STRING, False, ""),
    ],
    "BulkPushEventRequest": [("events", 1, _MESSAGE, True, "PushEventRequest")],
    "Event": [
        ("tenant_id", 1, _STRING, False, ""),
        ("event_id", 2, _STRING, False, ""),
        ("key", 3, _STRING, False, ""),
        ("payload", 4, _STRING, False, ""),
        ("event_timestamp", 5, _MESSAGE, False, "Timestamp"),
        ("additional_metadata", 6, _STRING, False, ""),
        ("scope", 7, _STRING, False, ""),
    ],
    "Events": [("events", 1, _MESSAGE, True, "Event")],
    "IdempotencyCollisionError": [
        ("existing_run_external_id", 1, _STRING, False, ""),
        ("colliding_run_external_id", 2, _STRING, False, ""),
    ],
    "BulkTriggerIdempotencyCollisionError": [
        ("successful_workflow_run_external_ids", 1, _STRING, True, ""),
        ("collisions", 2, _MESSAGE, True, "IdempotencyCollisionError"),
    ],
    "SubscribeToWorkflowRunsRequest": [("workflow_run_id", 1, _STRING, False, "")],
    "StepRunResult": [
        ("task_run_external_id", 1, _STRING, False, ""),
        ("task_name", 2, _STRING, False, ""),
        ("job_run_id", 3, _STRING, False, ""),
        ("error", 4, _STRING, False, ""),
        ("output", 5, _STRING, False, ""),
    ],
    # event_type is the enum WorkflowRunEventType, whose one value is FINISHED = 0; an enum encodes as an int32.
    "WorkflowRunEvent": [
        ("workflow_run_id", 1, _STRING, False, ""),
        ("event_type", 2, _INT32, False, ""),
        ("event_timestamp", 3, _MESSAGE, False, "Timestamp"),
        ("results", 4, _MESSAGE, True, "StepRunResult"),
    ],
    "Any": [("type_url", 1, _STRING, False, ""), ("value", 2, _BYTES, False, "")],
    "Status": [("code", 1, _INT32, False, ""), ("message", 2, _STRING, False, ""),
               ("details", 3, _MESSAGE, True, "Any")],
}

# The full gRPC method paths: Hatchet's workflows.proto and events.proto have no package.
TRIGGER = "/WorkflowService/TriggerWorkflow"
BULK_TRIGGER = "/WorkflowService/BulkTriggerWorkflow"
PUSH_EVENT = "/EventsService/Push"
BULK_PUSH = "/EventsService/BulkPush"
# dispatcher.proto has no package either: the stream of finished runs that hatchet-sdk awaits results on.
SUBSCRIBE_RUNS = "/Dispatcher/SubscribeToWorkflowRuns"
# The type names of the details an ALREADY_EXISTS answer carries on an idempotency key collision.
IDEMPOTENCY_COLLISION = "v1.IdempotencyCollisionError"
BULK_IDEMPOTENCY_COLLISION = "v1.BulkTriggerIdempotencyCollisionError"
TYPE_URL_PREFIX = "type.googleapis.com/"
# The trailing metadata key holding a serialized google.rpc.Status.
STATUS_DETAILS_KEY = "grpc-status-details-bin"


def _build() -> dict[str, Any]:
    file = descriptor_pb2.FileDescriptorProto(name="airflow_provider_hatchet/hatchet.proto", package=_PACKAGE,
                                              syntax="proto2")
    for name, fields in _MESSAGES.items():
        message = file.message_type.add(name=name)
        for field_name, number, kind, repeated, type_name in fields:
            field = message.field.add(name=field_name, number=number, type=kind,
                                      label=_REPEATED if repeated else _OPTIONAL)
            if type_name:
                field.type_name = f".{_PACKAGE}.{type_name}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    classes: dict[str, Any] = {}
    for name in _MESSAGES:
        descriptor = pool.FindMessageTypeByName(f"{_PACKAGE}.{name}")
        get_class = getattr(message_factory, "GetMessageClass", None)
        # protobuf before 4.22 has no GetMessageClass; its factory's GetPrototype does the same.
        classes[name] = get_class(descriptor) if get_class else message_factory.MessageFactory(pool).GetPrototype(
            descriptor)
    return classes


_CLASSES = _build()

TriggerWorkflowRequest: Any = _CLASSES["TriggerWorkflowRequest"]
TriggerWorkflowResponse: Any = _CLASSES["TriggerWorkflowResponse"]
BulkTriggerWorkflowRequest: Any = _CLASSES["BulkTriggerWorkflowRequest"]
BulkTriggerWorkflowResponse: Any = _CLASSES["BulkTriggerWorkflowResponse"]
Timestamp: Any = _CLASSES["Timestamp"]
PushEventRequest: Any = _CLASSES["PushEventRequest"]
BulkPushEventRequest: Any = _CLASSES["BulkPushEventRequest"]
Event: Any = _CLASSES["Event"]
Events: Any = _CLASSES["Events"]
IdempotencyCollisionError: Any = _CLASSES["IdempotencyCollisionError"]
BulkTriggerIdempotencyCollisionError: Any = _CLASSES["BulkTriggerIdempotencyCollisionError"]
SubscribeToWorkflowRunsRequest: Any = _CLASSES["SubscribeToWorkflowRunsRequest"]
StepRunResult: Any = _CLASSES["StepRunResult"]
WorkflowRunEvent: Any = _CLASSES["WorkflowRunEvent"]
Status: Any = _CLASSES["Status"]
Any_: Any = _CLASSES["Any"]
