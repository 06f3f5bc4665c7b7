"""Register a workflow on a real Hatchet server with hatchet-sdk, with no worker serving it.

Test infrastructure, run in ``.venv-hatchet-worker``: ``register_workflow.py NAME``. It reads
``HATCHET_CLIENT_TOKEN`` (the gRPC address is the token's ``grpc_broadcast_address`` unless
``HATCHET_CLIENT_HOST_PORT`` says otherwise), registers workflow NAME with one task ``run`` (``PutWorkflow``, as a
worker does when it starts) and prints the name. Its runs stay QUEUED: no worker has its action.
"""

from __future__ import annotations

import os
import sys

from hatchet_sdk import Context, EmptyModel, Hatchet


def main() -> None:
    name = sys.argv[1]
    os.environ.setdefault("HATCHET_CLIENT_TLS_STRATEGY", "none")
    hatchet = Hatchet()
    workflow = hatchet.workflow(name=name)

    @workflow.task()
    def run(input: EmptyModel, ctx: Context) -> dict[str, str]:
        return {}

    hatchet._client.admin.put_workflow(workflow.to_proto())
    print(name)


if __name__ == "__main__":
    main()
