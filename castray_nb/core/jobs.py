"""Jobs of attached clusters, from the dashboard's job API (``/api/jobs/``), without Ray.

Two kinds, as Ray reports them: ``SUBMISSION`` jobs (``ray job submit``, a
``JobSubmissionClient``; they have a submission id and logs) and ``DRIVER`` jobs (a
process's ``ray.init``; they have a job id and no logs the job API can give).

Reading never changes a cluster. Submitting and stopping (:func:`submit`, :func:`stop`)
are explicit calls; they use Ray's own ``JobSubmissionClient`` (importing Ray then is
fine: it is an action the user asked for), so a ``runtime_env`` with a local
``working_dir`` is uploaded as ``ray job submit --working-dir .`` does.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import queue
import threading
import urllib.parse
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from .auth import Token, token_for_url
from .errors import AuthRequired, ClusterUnreachable, InvalidArgument, UnknownJob
from .http import HttpStatus, get_json
from .nodes import jsonable, ms_to_time

if TYPE_CHECKING:
    import pandas as pd

JOB_STATUSES = ("PENDING", "RUNNING", "STOPPED", "SUCCEEDED", "FAILED")
FINISHED = frozenset({"STOPPED", "SUCCEEDED", "FAILED"})
JOB_TYPES = ("SUBMISSION", "DRIVER")


@dataclass(frozen=True)
class JobRecord:
    """One job of one cluster. Field order is the jobs table's column order."""

    cluster: str
    job_id: str | None  # Ray's job id (a driver's; a submission's once its driver started)
    submission_id: str | None  # None for a DRIVER job
    type: str  # SUBMISSION or DRIVER
    status: str  # PENDING, RUNNING, STOPPED, SUCCEEDED or FAILED
    entrypoint: str
    start_time: dt.datetime | None
    end_time: dt.datetime | None
    duration_s: float | None  # until now while it runs
    message: str | None
    driver_node_id: str | None
    error_type: str | None = None
    driver_exit_code: int | None = None
    driver_ip: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    runtime_env: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """What names the job within its cluster: the submission id, else the job id."""
        return self.submission_id or self.job_id or "?"

    @property
    def running(self) -> bool:
        return self.status not in FINISHED


JOB_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(JobRecord))


def checked_status(status: str | None) -> str | None:
    """A job status as Ray spells it (any case accepted), or None for all."""
    if status is None:
        return None
    upper = status.strip().upper()
    if upper not in JOB_STATUSES:
        raise InvalidArgument(f"unknown job status {status!r}; one of {', '.join(JOB_STATUSES)}")
    return upper


def job_from_api(raw: Mapping[str, Any], *, cluster: str, now: dt.datetime | None = None) -> JobRecord:
    """A record from one entry of ``/api/jobs/`` (Ray's JobDetails)."""
    start, end = ms_to_time(raw.get("start_time")), ms_to_time(raw.get("end_time"))
    now = now or dt.datetime.now(dt.UTC)
    duration = ((end or now) - start).total_seconds() if start else None
    driver = raw.get("driver_info") or {}
    exit_code = raw.get("driver_exit_code")
    return JobRecord(
        cluster=cluster,
        job_id=raw.get("job_id") or (driver.get("id") if isinstance(driver, Mapping) else None),
        submission_id=raw.get("submission_id"),
        type=str(raw.get("type") or ("SUBMISSION" if raw.get("submission_id") else "DRIVER")),
        status=str(raw.get("status") or "PENDING"),
        entrypoint=str(raw.get("entrypoint") or ""),
        start_time=start,
        end_time=end,
        duration_s=round(duration, 3) if duration is not None else None,
        message=raw.get("message"),
        driver_node_id=raw.get("driver_node_id"),
        error_type=raw.get("error_type"),
        driver_exit_code=int(exit_code) if isinstance(exit_code, int | float) else None,
        driver_ip=driver.get("node_ip_address") if isinstance(driver, Mapping) else None,
        metadata=dict(raw.get("metadata") or {}),
        runtime_env=dict(raw.get("runtime_env") or {}),
    )


def ordered(jobs: Sequence[JobRecord]) -> list[JobRecord]:
    """Running (and pending) jobs first, then the most recent; a stable order for ties."""
    epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
    return sorted(jobs, key=lambda j: (not j.running, -(j.start_time or epoch).timestamp(), j.cluster, j.key))


def read_jobs(dashboard_url: str, timeout: float, *, cluster: str, token: Token | None = None) -> list[JobRecord]:
    """Every job the cluster's job API lists."""
    reply = get_json(f"{dashboard_url}/api/jobs/", timeout, token=token)
    if not isinstance(reply, list):
        raise ClusterUnreachable(f"{dashboard_url} answered /api/jobs/ with something other than a list of jobs")
    now = dt.datetime.now(dt.UTC)
    return [job_from_api(raw, cluster=cluster, now=now) for raw in reply if isinstance(raw, Mapping)]


def _job_url(dashboard_url: str, job: str, tail: str = "") -> str:
    return f"{dashboard_url}/api/jobs/{urllib.parse.quote(job, safe='')}{tail}"


def read_job(dashboard_url: str, job: str, timeout: float, *, cluster: str, token: Token | None = None) -> JobRecord:
    """One job by submission id or job id; :class:`UnknownJob` when the cluster has none."""
    try:
        raw = get_json(_job_url(dashboard_url, job), timeout, token=token)
    except HttpStatus as exc:
        if exc.status == 404:
            raise UnknownJob(f"{cluster} has no job {job!r}") from None
        raise
    return job_from_api(raw, cluster=cluster)


def _with_logs(job: JobRecord) -> str:
    """The submission id whose logs the job API keeps; InvalidArgument for a DRIVER job."""
    if job.type != "SUBMISSION" or not job.submission_id:
        raise InvalidArgument(
            f"job {job.key} of {job.cluster} is a DRIVER job (a process's ray.init): the job API keeps no logs "
            "for it; its output went to that process"
        )
    return job.submission_id


def read_logs(dashboard_url: str, job: JobRecord, timeout: float, *, token: Token | None = None) -> str:
    """The logs of a submission job (the driver's output); a DRIVER job has none to give."""
    reply = get_json(_job_url(dashboard_url, _with_logs(job), "/logs"), timeout, token=token)
    return str(reply.get("logs", "")) if isinstance(reply, Mapping) else ""


LOG_CHUNKS_HELD = 256  # log messages read ahead of the caller, at most


def follow_logs(
    dashboard_url: str, job: JobRecord, timeout: float, *, token: Token | None = None, poll: float = 0.5
) -> Generator[str, None, None]:
    """The job's log text as it is written, from the dashboard's log tail (a WebSocket),
    until the job ends. Closing the iterator (or an interrupt in the caller's thread)
    ends the reading thread at once."""
    url = "ws" + _job_url(dashboard_url, _with_logs(job), "/logs/tail")[4:]
    grant = token_for_url(dashboard_url, token)
    token = grant.token
    # Bounded: a caller that reads slowly holds the tail back (TCP does the rest), rather
    # than a chatty job's log piling up in memory.
    chunks: queue.Queue[str | BaseException | None] = queue.Queue(maxsize=LOG_CHUNKS_HELD)
    stop = threading.Event()

    def offer(item: str | BaseException | None) -> None:
        while not stop.is_set():
            try:
                chunks.put(item, timeout=poll)
                return
            except queue.Full:
                continue

    async def tail() -> None:
        from tornado.httpclient import HTTPClientError, HTTPRequest
        from tornado.websocket import websocket_connect

        headers = token.header() if token else {}
        try:
            conn = await websocket_connect(HTTPRequest(url, headers=headers, connect_timeout=timeout,
                                                       request_timeout=timeout))  # fmt: skip
        except HTTPClientError as exc:
            if exc.code in (401, 403):
                why = (
                    grant.refusal(dashboard_url)
                    or f"{dashboard_url} refused the log tail (HTTP {exc.code}): a token is needed"
                )
                offer(AuthRequired(why))
            else:
                offer(ClusterUnreachable(f"{dashboard_url} refused the log tail: {exc}"))
            return
        except (OSError, asyncio.TimeoutError) as exc:
            offer(ClusterUnreachable(f"{dashboard_url} is unreachable: {exc}"))
            return
        try:
            while not stop.is_set():
                try:
                    message = await asyncio.wait_for(conn.read_message(), poll)
                except asyncio.TimeoutError:
                    continue
                if message is None:  # the dashboard closed it: the job ended
                    break
                offer(message if isinstance(message, str) else message.decode("utf-8", "replace"))
        finally:
            conn.close()

    def run() -> None:
        try:
            asyncio.run(tail())
        except BaseException as exc:  # handed to the caller's thread
            offer(exc)
        finally:
            offer(None)

    reader = threading.Thread(target=run, name="castray-log-tail", daemon=True)
    reader.start()
    try:
        while True:
            try:
                item = chunks.get(timeout=poll)
            except queue.Empty:
                continue
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        reader.join(timeout + poll + 1)


def jobs_to_dataframe(jobs: Sequence[JobRecord]) -> pd.DataFrame:
    """The jobs table: one row per job, columns in :data:`JOB_COLUMNS` order."""
    import pandas as pd

    data = [tuple(getattr(j, c) for c in JOB_COLUMNS) for j in jobs]
    frame = pd.DataFrame.from_records(data, columns=list(JOB_COLUMNS))
    for column in ("start_time", "end_time"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    frame["driver_exit_code"] = frame["driver_exit_code"].astype("Int64")
    return frame


def job_to_json(job: JobRecord) -> dict[str, Any]:
    return {c: jsonable(getattr(job, c)) for c in JOB_COLUMNS}


def submission_client(dashboard_url: str, token: Token | None = None) -> Any:
    """Ray's ``JobSubmissionClient`` for the dashboard, with the token where
    :func:`.auth.token_for` allows it.

    In token mode Ray's client adds this process's token to whatever it asks, so for a
    dashboard that may not have it (another user's) it is not built at all then."""
    from ray.job_submission import JobSubmissionClient

    from .gcs import rays_token_mode_on

    grant = token_for_url(dashboard_url, token)
    if grant.held_back and rays_token_mode_on():
        whose = (
            f"belongs to user {grant.withheld_from}"
            if grant.withheld_from
            else f"gets no token: {grant.withheld_because}"
        )
        raise AuthRequired(
            f"{dashboard_url} {whose}, and Ray's job client in this process would "
            "send it your Ray token (token mode is on): pass token= to connect() to send one on purpose"
        )
    token = grant.token
    return JobSubmissionClient(dashboard_url, headers=token.header() if token else None)


def submit(
    dashboard_url: str,
    entrypoint: str,
    *,
    runtime_env: Mapping[str, Any] | None = None,
    submission_id: str | None = None,
    metadata: Mapping[str, str] | None = None,
    client_factory: Callable[[str], Any] = submission_client,
    **options: Any,
) -> str:
    """Submit ``entrypoint`` (a string Ray runs on the cluster, never a local shell)."""
    if not isinstance(entrypoint, str) or not entrypoint.strip():
        raise InvalidArgument("the entrypoint is empty: give the command Ray should run on the cluster")
    client = client_factory(dashboard_url)
    return str(client.submit_job(entrypoint=entrypoint, runtime_env=dict(runtime_env or {}) or None,
                                 submission_id=submission_id, metadata=dict(metadata or {}) or None,
                                 **options))  # fmt: skip


def stop(dashboard_url: str, submission_id: str, *, client_factory: Callable[[str], Any] = submission_client) -> bool:
    """Ask the cluster to stop a submission job; True when it was running."""
    return bool(client_factory(dashboard_url).stop_job(submission_id))
