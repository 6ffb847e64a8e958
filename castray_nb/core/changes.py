"""What changed between two readings, as :class:`.model.Event` s."""

from __future__ import annotations

from collections.abc import Sequence

from .jobs import JobRecord
from .model import Event
from .nodes import NodeRecord


def node_events(cluster: str, before: Sequence[NodeRecord], after: Sequence[NodeRecord]) -> list[Event]:
    """``node_added``, ``node_removed`` and ``node_state_changed`` (``ALIVE -> DEAD``)."""
    old = {r.node_id: r for r in before}
    new = {r.node_id: r for r in after}
    events = [Event("node_added", cluster, n, new[n].state) for n in new.keys() - old.keys()]
    events += [Event("node_removed", cluster, n) for n in old.keys() - new.keys()]
    for node_id in new.keys() & old.keys():
        if old[node_id].state != new[node_id].state:
            events.append(
                Event("node_state_changed", cluster, node_id, f"{old[node_id].state} -> {new[node_id].state}")
            )
    return events


def job_events(cluster: str, before: Sequence[JobRecord], after: Sequence[JobRecord]) -> list[Event]:
    """``job_added`` for each new job, ``job_status_changed`` (``RUNNING -> SUCCEEDED``)."""
    old = {j.key: j for j in before}
    events = []
    for job in after:
        was = old.get(job.key)
        if was is None:
            events.append(Event("job_added", cluster, detail=job.status, job_id=job.key))
        elif was.status != job.status:
            events.append(Event("job_status_changed", cluster, detail=f"{was.status} -> {job.status}", job_id=job.key))
    return events
