"""The OpenLineage run facet that names the Hatchet runs a task triggered.

It subclasses the OpenLineage client's ``RunFacet``, so only ``_lineage.py`` imports this module, and only once it
knows the OpenLineage provider is installed.
"""

from __future__ import annotations

from attrs import define
from openlineage.client.facet_v2 import RunFacet

__all__ = ["HatchetRunsRunFacet"]


@define
class HatchetRunsRunFacet(RunFacet):
    """The Hatchet workflow runs an Airflow task triggered.

    :param runCount: how many runs the task triggered.
    :param runs: one ``{"runId", "url"}`` per run (the dashboard URL), in the task's order, up to a cap; when
        ``runCount`` is larger, the rest are left out.
    """

    # OpenLineage facets name their fields in camelCase.
    runCount: int
    runs: list[dict[str, str]]

    # Run ids and URLs are not secrets: the provider's redaction leaves them alone.
    _additional_skip_redact = ["runCount", "runs"]  # noqa: RUF012 (the OpenLineage client's convention)
