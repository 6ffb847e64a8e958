"""castray-nb: the command line. Thin: parse arguments, call core, print.

Exit codes: 0 done, 2 bad input or a cluster that cannot be used (one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from .core.errors import CastrayError

EXIT_BAD = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, not usage + message
        self.exit(EXIT_BAD, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="castray-nb", description="Find, read and watch Ray clusters on this machine and the hosts you list."
    )
    parser.add_argument("--version", action="version", version=_version())
    parser.add_argument("--timeout", type=_seconds, metavar="SECONDS", help="timeout of each probe and request")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    discover = commands.add_parser(
        "discover", help="list every live Ray cluster on this machine (and on the hosts setting's)"
    )
    discover.add_argument("--json", action="store_true", help="print a JSON list")
    discover.add_argument("-v", "--verbose", action="store_true", help="also say what was rejected and why")
    discover.add_argument("--connect", action="store_true", help="also attach and read every cluster found")
    discover.add_argument(
        "--all-users",
        action="store_true",
        help="also list other Unix users' clusters here (never attached by --connect)",
    )
    discover.add_argument(
        "--host",
        action="append",
        default=[],
        metavar="HOST",
        help="also probe this machine: HOST, HOST:GCS_PORT or http://HOST:PORT (repeatable; see the hosts setting)",
    )

    recent = commands.add_parser("recent", help="list the clusters you attached before (from any front end)")
    recent.add_argument("--json", action="store_true", help="print a JSON list")
    forget = commands.add_parser("forget", help="drop a remembered cluster (see castray-nb recent)")
    forget.add_argument("name", metavar="NAME", help="the name it was attached under, or its address")

    nodes = commands.add_parser("nodes", help="list the nodes of clusters (default: every discovered one)")
    nodes.add_argument("--address", action="append", default=[], metavar="ADDR", help="a cluster to read (repeatable)")
    nodes.add_argument("--alive", action="store_true", help="only ALIVE nodes")
    nodes.add_argument("--json", action="store_true", help="print a JSON list of node rows")
    _token_file(nodes)

    actors = commands.add_parser("actors", help="list the actors of clusters (default: every discovered one)")
    actors.add_argument("--address", action="append", default=[], metavar="ADDR", help="a cluster to read (repeatable)")
    actors.add_argument("--state", help="only actors in this state (ALIVE, DEAD, PENDING_CREATION, ...)")
    actors.add_argument("--json", action="store_true", help="print a JSON list of actor rows")
    _token_file(actors)

    jobs = commands.add_parser("jobs", help="list the jobs of clusters (default: every discovered one)")
    jobs.add_argument("--address", action="append", default=[], metavar="ADDR", help="a cluster to read (repeatable)")
    jobs.add_argument("--status", help="only jobs in this status (PENDING, RUNNING, STOPPED, SUCCEEDED, FAILED)")
    jobs.add_argument("--json", action="store_true", help="print a JSON list of job rows")
    _token_file(jobs)

    logs = commands.add_parser("logs", help="print a submission job's logs")
    logs.add_argument("submission_id", metavar="SUBMISSION_ID")
    logs.add_argument("--address", required=True, metavar="ADDR", help="the cluster the job runs on")
    logs.add_argument("--follow", action="store_true", help="keep printing new lines until the job ends")
    _token_file(logs)

    history = commands.add_parser("history", help="the recorded usage of clusters over time (no server needed)")
    _past_arguments(history)
    history.add_argument(
        "--metric", action="append", default=[], metavar="M", help="only this metric (repeatable; e.g. cpu_percent)"
    )
    history.add_argument("--node", metavar="NODE_ID", help="only this node ('' for the clusters' totals)")
    events = commands.add_parser("events", help="what happened to clusters: nodes joined and died, jobs, ends")
    _past_arguments(events)
    ended = commands.add_parser("ended", help="the clusters that ended, each with its last snapshot")
    ended.add_argument("--json", action="store_true", help="print a JSON list")

    demo = commands.add_parser("demo", help="start a throwaway cluster, discover, attach and show it, stop it")
    demo.add_argument("--json", action="store_true", help="print the node rows as JSON")
    return parser


def _past_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print a JSON list of rows")
    parser.add_argument("--cluster", metavar="NAME", help="one cluster: its name or its Ray session name")
    parser.add_argument(
        "--since", default="1h", metavar="WHEN", help="10m, 2h, 1d, seconds or an ISO time (default 1h)"
    )
    parser.add_argument("--until", metavar="WHEN", help="as --since (default now)")


def _token_file(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--token-file",
        metavar="FILE",
        help="a Ray auth token to send the --address clusters on purpose (else Ray's own goes only to your processes)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    # Ray's C++ client logs reconnect warnings to stderr; keep the CLI's output to its own lines.
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "error")
    args = build_parser().parse_args(argv)
    try:
        settings = _settings(args)
        if args.command == "discover":
            return _discover(args, settings)
        if args.command == "nodes":
            return _nodes(args, settings)
        if args.command == "actors":
            return _actors(args, settings)
        if args.command == "jobs":
            return _jobs(args, settings)
        if args.command == "logs":
            return _logs(args, settings)
        if args.command == "recent":
            return _recent(args)
        if args.command == "forget":
            return _forget(args)
        if args.command in ("history", "events", "ended"):
            return _past(args, settings)
        return _demo(args, settings)
    except CastrayError as exc:
        print(f"castray-nb: error: {exc}", file=sys.stderr)
        return EXIT_BAD
    except KeyboardInterrupt:
        print("castray-nb: interrupted", file=sys.stderr)
        return 130


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value <= 600:
        raise argparse.ArgumentTypeError("must be between 0 and 600 seconds")
    return value


def _settings(args: argparse.Namespace) -> Any:
    from .core.settings import load_settings

    settings = load_settings()
    if args.timeout:
        settings = settings.replace(probe_timeout=args.timeout, http_timeout=args.timeout, gcs_timeout=args.timeout)
    return settings


def _discover(args: argparse.Namespace, settings: Any) -> int:
    from .core.discovery import discover_report
    from .core.session import Session

    if args.all_users:
        settings = settings.replace(all_users=True)
    if args.host:
        settings = settings.replace(hosts=(*settings.hosts, *(_host_entry(h) for h in args.host)))
    session = Session(settings) if args.connect else None
    report = _discover_and_attach(session) if session else discover_report(settings)
    attached = {c.info.name for c in session.clusters()} if session else set()
    if args.json:
        print(json.dumps([_found_json(c, attached if session else None) for c in report.clusters], indent=2))
    else:
        rows = [
            (c.name, c.gcs_address or "-", c.dashboard_url or "-", c.ray_version or "?",
             "?" if c.num_nodes is None else str(c.num_nodes), "yes" if c.auth_required else "no", c.location,
             c.owner or "-")
            for c in report.clusters
        ]  # fmt: skip
        print(
            _table(("NAME", "GCS", "DASHBOARD", "RAY", "NODES", "TOKEN", "WHERE", "OWNER"), rows)
            if rows
            else "No live Ray cluster found."
        )
    if args.verbose:
        for name, why in report.source_errors.items():
            print(f"source {name} failed: {why}", file=sys.stderr)
        for what, why in report.rejected:
            print(f"not a live cluster: {what}: {why}", file=sys.stderr)
        print(f"{report.hints} session folder(s) seen; {report.elapsed_s * 1000:.0f} ms", file=sys.stderr)
    return 0


def _found_json(cluster: Any, attached: set[str] | None) -> dict[str, Any]:
    """A discovered cluster's JSON; with ``--connect`` also whether it is now attached."""
    data: dict[str, Any] = cluster.to_json()
    if attached is not None:
        data["attached"] = cluster.name in attached
    return data


def _host_entry(text: str) -> str:
    from .core.errors import InvalidArgument
    from .core.settings import check_host_entry

    try:
        return check_host_entry(text)
    except ValueError as exc:
        raise InvalidArgument(f"--host: {exc}") from None


def _past(args: argparse.Namespace, settings: Any) -> int:
    from .core import past
    from .core.times import full, stamp

    if args.command == "ended":
        seen = past.ended(settings)
        if args.json:
            print(json.dumps([c.to_json() for c in seen], indent=2))
            return 0
        rows = [
            (c.cluster, c.session_name, full(_utc(c.ended_at)), str(c.snapshot.get("alive_nodes", "?")),
             c.ended_reason or "")
            for c in seen
        ]  # fmt: skip
        print(_table(("NAME", "SESSION", "ENDED", "NODES ALIVE", "WHY"), rows) if rows else "No cluster ended.")
        return 0
    if args.command == "history":
        frame = past.history(
            settings, cluster=args.cluster, since=args.since, until=args.until, metrics=args.metric or None,
            node=args.node,
        )  # fmt: skip
        columns: tuple[str, ...] = ("TIME", "CLUSTER", "NODE", "METRIC", "VALUE")
        cells: list[tuple[str, ...]] = [
            (stamp(t), c, n[:12] if isinstance(n, str) else "(totals)", m, f"{v:g}")
            for t, c, n, m, v in zip(frame.time, frame.cluster, frame.node_id, frame.metric, frame.value, strict=True)
        ]
    else:
        frame = past.events(settings, cluster=args.cluster, since=args.since, until=args.until)
        columns = ("TIME", "CLUSTER", "KIND", "NODE", "JOB", "MESSAGE")
        cells = [
            (stamp(t), c, k, n[:12] if isinstance(n, str) else "-", j if isinstance(j, str) else "-", m)
            for t, c, k, n, j, m in zip(
                frame.time, frame.cluster, frame.kind, frame.node_id, frame.job, frame.message, strict=True
            )
        ]
    if args.json:
        print(json.dumps(past.rows_json(frame), indent=2))
    else:
        print(_table(columns, cells) if cells else f"Nothing recorded since {args.since}.")
    return 0


def _utc(t: float | None) -> Any:
    import datetime as dt

    return None if t is None else dt.datetime.fromtimestamp(t, dt.UTC)


def _recent(args: argparse.Namespace) -> int:
    from .core.store import Recent
    from .core.times import full

    entries = Recent().entries()
    if args.json:
        print(json.dumps([e.to_json() for e in entries], indent=2))
    elif entries:
        rows = [(e.name, e.address, full(e.last_seen_at), ",".join(e.sources) or "-") for e in entries]
        print(_table(("NAME", "ADDRESS", "LAST SEEN", "SOURCES"), rows))
    else:
        print("No cluster attached before.")
    return 0


def _forget(args: argparse.Namespace) -> int:
    from .core.store import Recent

    for entry in Recent().forget(args.name):
        print(f"forgot {entry.name} ({entry.address})")
    return 0


def _session(args: argparse.Namespace, settings: Any) -> Any:
    """A session with the clusters of ``--address`` attached and read; with no address,
    every discovered cluster (``discover --connect``), one warning line per failure."""
    from .core.address import parse_address
    from .core.session import Session

    parsed = [parse_address(a) for a in args.address]  # every address checked before any traffic
    token = _given_token(args)
    session = Session(settings)
    if parsed:
        for address in parsed:
            session.connect(address, token=token)
    else:
        _discover_and_attach(session)
    for state in session.clusters():
        if state.error:
            print(f"castray-nb: warning: {state.name}: {state.error}", file=sys.stderr)
    return session


def _discover_and_attach(session: Any) -> Any:
    """``discover --connect``: attach every cluster found; a warning line per failure."""
    report = session.discover(connect=True).report
    for name, why in report.attach_errors:
        print(f"castray-nb: warning: could not attach {name}: {why}", file=sys.stderr)
    return report


def _given_token(args: argparse.Namespace) -> Any:
    from .core.auth import token_from_file
    from .core.errors import InvalidArgument

    if not args.token_file:
        return None
    if not getattr(args, "address", None):
        raise InvalidArgument("--token-file goes with --address: a token is sent on purpose to named clusters only")
    return token_from_file(args.token_file)


def _nodes(args: argparse.Namespace, settings: Any) -> int:
    session = _session(args, settings)
    _print_nodes(session.rows(alive_only=args.alive), args.json)
    return 0


def _actors(args: argparse.Namespace, settings: Any) -> int:
    from .core.actors import actor_to_json, checked_state

    state = checked_state(args.state)
    session = _session(args, settings)
    found, skipped = session.actors(state=state)
    for name, why in skipped.items():
        print(f"castray-nb: warning: no actors from {name}: {why}", file=sys.stderr)
    if args.json:
        print(json.dumps([actor_to_json(a) for a in found], indent=2))
    elif found:
        rows = [
            (a.cluster[-34:], a.actor_id[:12], a.class_name[:24], a.name or "-", a.state,
             (a.node_id or "-")[:12], str(a.pid or "-"))
            for a in sorted(found, key=lambda a: (a.cluster, a.node_id or "", a.class_name, a.actor_id))
        ]  # fmt: skip
        print(_table(("CLUSTER", "ACTOR", "CLASS", "NAME", "STATE", "NODE", "PID"), rows))
    else:
        print("No actors.")
    return 0


def _jobs(args: argparse.Namespace, settings: Any) -> int:
    from .core.jobs import checked_status, job_to_json
    from .core.times import full

    status = checked_status(args.status)  # checked before any traffic
    session = _session(args, settings)
    found, skipped = session.jobs(status=status)
    for name, why in skipped.items():
        print(f"castray-nb: warning: no jobs from {name}: {why}", file=sys.stderr)
    if args.json:
        print(json.dumps([job_to_json(j) for j in found], indent=2))
    elif found:
        rows = [
            (j.cluster[-24:], j.key[:28], j.type, j.status,
             full(j.start_time),
             f"{j.duration_s:.1f}" if j.duration_s is not None else "-", j.entrypoint.replace("\n", " ")[:40])
            for j in found
        ]  # fmt: skip
        print(_table(("CLUSTER", "JOB", "TYPE", "STATUS", "STARTED", "SECONDS", "ENTRYPOINT"), rows))
    else:
        print("No jobs.")
    return 0


def _logs(args: argparse.Namespace, settings: Any) -> int:
    from .core.address import parse_address
    from .core.session import Session

    parsed = parse_address(args.address)
    session = Session(settings)
    state = session.connect(parsed, refresh=False, token=_given_token(args))
    if not args.follow:
        print(session.job_logs(args.submission_id, cluster=state.name), end="")
        return 0
    chunks = session.follow_job_logs(args.submission_id, cluster=state.name)
    try:
        for chunk in chunks:
            sys.stdout.write(chunk)
            sys.stdout.flush()
    finally:
        chunks.close()
    return 0


def _demo(args: argparse.Namespace, settings: Any) -> int:
    from .core.discovery import discover_report
    from .core.session import Session
    from .launch import LocalCluster

    say = (lambda *a: print(*a, file=sys.stderr)) if args.json else print
    say("Starting a throwaway Ray cluster as a separate process (ray start --head --block) ...")
    with LocalCluster() as cluster:
        say(f"  started: GCS {cluster.gcs_address}, dashboard {cluster.dashboard_url}\n")
        report = discover_report(settings)
        say(f"Discovered {len(report.clusters)} live cluster(s) in {report.elapsed_s * 1000:.0f} ms:")
        for info in report.clusters:
            mark = "  <- the demo cluster" if info.gcs_address == cluster.gcs_address else ""
            say(f"  {info.name}  gcs={info.gcs_address}  nodes={info.num_nodes}{mark}")
        ours = [c for c in report.clusters if c.gcs_address == cluster.gcs_address]
        if not ours:
            raise CastrayError("discovery did not find the demo cluster")
        session = Session(settings)
        session.connect(ours[0].gcs_address or ours[0].name, name="demo")
        say("\nAttached it read-only (no ray.init). The merged node table:")
        _print_nodes(session.rows(), args.json)
        say("\nStopping the demo cluster (SIGTERM to its own process group) ...")
    say("Done: the demo cluster is stopped.")
    return 0


def _print_nodes(rows: Sequence[Any], as_json: bool) -> None:
    from .core.nodes import row_to_json

    if as_json:
        print(json.dumps([row_to_json(r) for r in rows], indent=2))
        return
    if not rows:
        print("No nodes.")
        return
    gib = 1024**3
    table = [
        (r.cluster[-34:], r.source, r.node_id[:12], r.node_ip, "head" if r.is_head else "", r.state,
         f"{r.CPU:g}", f"{r.GPU:g}", f"{r.memory_bytes / gib:.1f}", f"{r.object_store_bytes / gib:.1f}")
        for r in rows
    ]  # fmt: skip
    print(_table(("CLUSTER", "SOURCE", "NODE", "IP", "HEAD", "STATE", "CPU", "GPU", "MEM GiB", "STORE GiB"), table))


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows, strict=False)]
    lines = [header, *rows]
    return "\n".join("  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=False)).rstrip() for line in lines)


def _version() -> str:
    from . import __version__

    return f"castray-nb {__version__}"


if __name__ == "__main__":
    sys.exit(main())
