"""Push one event to a real Hatchet server with hatchet-sdk: Hatchet takes events over gRPC only.

Test infrastructure, run in ``.venv-hatchet-worker``: ``push_event.py KEY [PAYLOAD_JSON [METADATA_JSON]]``. It
reads ``HATCHET_CLIENT_TOKEN`` (the gRPC address is the token's ``grpc_broadcast_address`` unless
``HATCHET_CLIENT_HOST_PORT`` says otherwise) and prints the event's id.
"""

from __future__ import annotations

import json
import os
import sys

from hatchet_sdk import Hatchet
from hatchet_sdk.clients.events import PushEventOptions


def main() -> None:
    key = sys.argv[1]
    payload = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    metadata = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    os.environ.setdefault("HATCHET_CLIENT_TLS_STRATEGY", "none")
    event = Hatchet().event.push(key, payload, options=PushEventOptions(additional_metadata=metadata))
    print(event.event_id)


if __name__ == "__main__":
    main()
