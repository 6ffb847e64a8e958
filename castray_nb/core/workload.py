"""What runs on the attached clusters: their actors and their jobs, read on demand or
kept from the last round of a watch that asks for them."""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable, Generator, Sequence
from typing import Any, TypeVar

from .actors import ActorRecord
from .attachment import Attachment
from .changes import job_events
from .errors import CastrayError, ClusterUnreachable, InvalidArgument, UnknownJob
from .jobs import JobRecord, checked_status, follow_logs, ordered, read_job, read_jobs, read_logs, submission_client
from .jobs import stop as stop_submitted
from .jobs import submit as submit_job
from .model import Event
from .nodes import ALIVE
from .settings import Settings

T = TypeVar("T")
Chooser = Callable[[str | None], list[Attachment]]


class Workload:
    """Actors and jobs of a session's attachments. ``chosen(cluster)`` gives the attachments
    to ask (all of them for None; raises :class:`UnknownCluster` for a name not attached)."""

    def __init__(self, settings: Settings, chosen: Chooser) -> None:
        self.settings = settings
        self._chosen = chosen
        self._lock = threading.Lock()
        self._actors: dict[str, list[ActorRecord] | None] = {}  # ALIVE actors per cluster, last round
        self._jobs: dict[str, list[JobRecord]] = {}  # jobs per cluster, last round
        self._jobs_errors: dict[str, str] = {}  # why a cluster's jobs could not be read

    def forget(self, name: str | None = None) -> None:
        """Drop what was kept of one cluster (detached), or of all."""
        with self._lock:
            for kept in (self._actors, self._jobs, self._jobs_errors):
                if name is None:
                    kept.clear()
                else:
                    kept.pop(name, None)

    # --- actors ------------------------------------------------------------------

    def actors(
        self, *, cluster: str | None = None, state: str | None = None
    ) -> tuple[list[ActorRecord], dict[str, str]]:
        """Read the actors of every attached cluster (or of ``cluster``) now, concurrently.

        Returns the actors and, per cluster that could not be read, why (a cluster without
        a dashboard has no State API to ask).
        """
        attachments = self._chosen(cluster)
        if not attachments:
            return [], {}

        def read(a: Attachment) -> list[ActorRecord]:
            node_ids = [r.node_id for r in a.rows if r.state == ALIVE]
            return list(a.client.actors(cluster=a.name, node_ids=node_ids, state=state).actors)

        return from_each(attachments, read, "castray-actors")

    def refresh_actors(self) -> None:
        """Read the ALIVE actors of every attached cluster and keep them (for the panel)."""
        attachments = self._chosen(None)
        actors, skipped = self.actors(state=ALIVE)
        by_cluster: dict[str, list[ActorRecord]] = {}
        for actor in actors:
            by_cluster.setdefault(actor.cluster, []).append(actor)
        with self._lock:
            for a in attachments:
                self._actors[a.name] = None if a.name in skipped else by_cluster.get(a.name, [])

    def actor_counts(self) -> dict[tuple[str, str], int]:
        """ALIVE actors per (cluster, node_id), as of the last :meth:`refresh_actors`."""
        counts: dict[tuple[str, str], int] = {}
        for actor in self.cached_actors():
            if actor.node_id:
                key = (actor.cluster, actor.node_id)
                counts[key] = counts.get(key, 0) + 1
        return counts

    def cached_actors(self, cluster: str | None = None, node_id: str | None = None) -> list[ActorRecord]:
        """ALIVE actors as of the last :meth:`refresh_actors`, of one cluster and node if given."""
        names = {a.name for a in self._chosen(None)}
        with self._lock:
            return [
                actor
                for name, actors in self._actors.items()
                if name in names and (cluster is None or name == cluster)
                for actor in actors or ()
                if node_id is None or actor.node_id == node_id
            ]

    # --- jobs --------------------------------------------------------------------

    def jobs(self, *, cluster: str | None = None, status: str | None = None) -> tuple[list[JobRecord], dict[str, str]]:
        """Read the jobs of every attached cluster (or of ``cluster``) now, concurrently:
        running first, then the most recent. Also returns, per cluster that could not be
        read, why (the job API is the dashboard's: a cluster without one is skipped)."""
        status = checked_status(status)
        attachments = self._chosen(cluster)
        if not attachments:
            return [], {}

        def read(a: Attachment) -> list[JobRecord]:
            if not a.info.dashboard_url:
                raise ClusterUnreachable("it has no dashboard, and jobs are read from the dashboard's job API")
            return read_jobs(a.info.dashboard_url, self.settings.http_timeout, cluster=a.name, token=a.token)

        found, skipped = from_each(attachments, read, "castray-jobs")
        return ordered([j for j in found if status is None or j.status == status]), skipped

    def refresh_jobs(self) -> list[Event]:
        """Read every attached cluster's jobs and keep them; return ``job_added`` and
        ``job_status_changed`` for what changed since the last read (not for the first)."""
        attachments = self._chosen(None)
        found, skipped = self.jobs()
        events: list[Event] = []
        with self._lock:
            for a in attachments:
                if a.name in skipped:
                    self._jobs_errors[a.name] = skipped[a.name]
                    continue
                new = [j for j in found if j.cluster == a.name]
                if a.name in self._jobs:
                    events += job_events(a.name, self._jobs[a.name], new)
                self._jobs[a.name] = new
                self._jobs_errors.pop(a.name, None)
        return events

    def cached_jobs(self, cluster: str | None = None) -> tuple[list[JobRecord], dict[str, str]]:
        """Jobs as of the last :meth:`refresh_jobs`, and why a cluster's could not be read."""
        names = [a.name for a in self._chosen(cluster)]
        with self._lock:
            jobs = [j for n in names for j in self._jobs.get(n, ())]
            skipped = {n: self._jobs_errors[n] for n in names if n in self._jobs_errors}
        return ordered(jobs), skipped

    def job(self, job: str, *, cluster: str | None = None) -> tuple[JobRecord, str]:
        """A job by submission id (or job id) and its cluster's dashboard URL; looked for
        in ``cluster``, else in every attached cluster with a dashboard."""
        record, attachment = self._job(job, cluster)
        assert attachment.info.dashboard_url
        return record, attachment.info.dashboard_url

    def _job(self, job: str, cluster: str | None) -> tuple[JobRecord, Attachment]:
        if not isinstance(job, str) or not job.strip():
            raise InvalidArgument("give a job's submission id (or job id)")
        attachments = [a for a in self._chosen(cluster) if a.info.dashboard_url]
        if cluster is not None and not attachments:
            raise InvalidArgument(f"{cluster} has no dashboard, and jobs are read from the dashboard's job API")
        errors = []
        for a in attachments:
            assert a.info.dashboard_url
            try:
                return read_job(a.info.dashboard_url, job, self.settings.http_timeout, cluster=a.name, token=a.token), a
            except UnknownJob:
                continue
            except CastrayError as exc:
                errors.append(f"{a.name}: {exc}")
        where = cluster or ", ".join(a.name for a in attachments) or "no attached cluster with a dashboard"
        unread = f" (could not ask {'; '.join(errors)})" if errors else ""
        raise UnknownJob(f"no job {job!r} in {where}{unread}")

    def job_logs(self, job: str, *, cluster: str | None = None) -> str:
        """The logs of a submission job (see :meth:`job`)."""
        record, a = self._job(job, cluster)
        return read_logs(str(a.info.dashboard_url), record, self.settings.http_timeout, token=a.token)

    def follow_job_logs(self, job: str, *, cluster: str | None = None) -> Generator[str, None, None]:
        """The logs of a submission job as they are written, until it ends."""
        record, a = self._job(job, cluster)
        return follow_logs(str(a.info.dashboard_url), record, self.settings.http_timeout, token=a.token)

    def submit(
        self, cluster: str, entrypoint: str, *, runtime_env: dict[str, Any] | None = None, **options: Any
    ) -> str:
        """Submit a job to an attached cluster; returns its submission id. Explicit only:
        nothing else in castray_nb changes a cluster."""
        if cluster is None:
            raise InvalidArgument("say which attached cluster to submit to (cluster=NAME)")
        (attachment,) = self._chosen(cluster)
        if not attachment.info.dashboard_url:
            raise InvalidArgument(f"{cluster} has no dashboard, and jobs are submitted through it")
        return submit_job(
            attachment.info.dashboard_url,
            entrypoint,
            runtime_env=runtime_env,
            client_factory=lambda url: submission_client(url, attachment.token),
            **options,
        )

    def stop_job(self, job: str, *, cluster: str | None = None) -> bool:
        """Ask the job's cluster to stop a submission job; True when it was running."""
        record, a = self._job(job, cluster)
        if not record.submission_id:
            raise InvalidArgument(f"job {record.key} is a DRIVER job: stop the process that runs it")
        return stop_submitted(
            str(a.info.dashboard_url), record.submission_id, client_factory=lambda url: submission_client(url, a.token)
        )


def from_each(
    attachments: Sequence[Attachment], read: Callable[[Attachment], list[T]], thread_name: str
) -> tuple[list[T], dict[str, str]]:
    """``read`` each cluster concurrently: everything read, and why each failure failed."""
    found: list[T] = []
    skipped: dict[str, str] = {}
    with concurrent.futures.ThreadPoolExecutor(min(16, len(attachments)), thread_name) as pool:
        futures = {a.name: pool.submit(read, a) for a in attachments}
        for name, future in futures.items():
            try:
                found.extend(future.result())
            except CastrayError as exc:
                skipped[name] = str(exc)
    return found, skipped
