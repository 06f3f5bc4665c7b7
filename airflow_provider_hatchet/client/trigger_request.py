"""What one run is triggered with, from an operator's arguments to the request body.

Adding a trigger field touches :class:`TriggerRequest`, its check in ``validation.py`` (called by
:meth:`TriggerRequest.checked`, and per item by the bulk operator's parser), its place in :meth:`TriggerRequest.body`,
and the operator argument that fills it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from airflow_provider_hatchet.client import validation


@dataclass(frozen=True, slots=True)
class TriggerRequest:
    """One run to trigger.

    :param workflow_name: the workflow name; the full (namespaced) one once the hook has resolved it.
    :param input: the run input, a JSON object.
    :param additional_metadata: string metadata, shown and filterable in Hatchet.
    :param priority: 1 (lowest) to 3, or None.
    """

    workflow_name: str
    input: Mapping[str, Any] = field(default_factory=dict)
    additional_metadata: Mapping[str, str] = field(default_factory=dict)
    priority: int | None = None

    @classmethod
    def checked(
        cls,
        workflow_name: object,
        input: object = None,
        additional_metadata: object = None,
        priority: object = None,
    ) -> TriggerRequest:
        """Check every field before anything is sent; the error names the field and what is wrong.

        :param workflow_name: the workflow name.
        :param input: the run input (None means ``{}``).
        :param additional_metadata: the metadata; JSON scalars become strings.
        :param priority: the priority.
        :raises HatchetValidationError: for the first bad field.
        """
        return cls(
            validation.check_workflow_name(workflow_name),
            validation.check_input(input),
            validation.check_metadata(additional_metadata),
            validation.check_priority(priority),
        )

    def with_metadata(self, extra: Mapping[str, str]) -> TriggerRequest:
        """The same request with more metadata (``extra`` wins on a clash).

        :param extra: the metadata to add.
        """
        return replace(self, additional_metadata={**self.additional_metadata, **extra})

    def named(self, full_name: str) -> TriggerRequest:
        """The same request for the full (namespaced) workflow name.

        :param full_name: the full name.
        """
        return replace(self, workflow_name=full_name)

    def body(self, *, return_only_id: bool = True) -> dict[str, Any]:
        """The ``V1TriggerWorkflowRunRequest``.

        :param return_only_id: skip the server's wait for the run to be readable.
        """
        body: dict[str, Any] = {"workflowName": self.workflow_name, "input": dict(self.input)}
        if self.additional_metadata:
            body["additionalMetadata"] = dict(self.additional_metadata)
        if self.priority is not None:
            body["priority"] = self.priority
        if return_only_id:
            body["return_only_id"] = True
        return body
