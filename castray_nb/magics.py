"""%castray: thin IPython magics over the core. Each subcommand returns its result.

    %load_ext castray_nb
    %castray discover [--connect] [--json] [--all-users]
    %castray connect ADDRESS [--name NAME] [--driver] [--token-file FILE]
    %castray disconnect NAME | --all | --driver
    %castray clusters [--ended]
    %castray history [--cluster NAME] [--since 1h] [--until WHEN] [--metric M ...] [--node NODE_ID]
    %castray events [--cluster NAME] [--since 1h] [--until WHEN]
    %castray recent
    %castray forget NAME
    %castray nodes [--local | --external] [--alive]
    %castray actors [--cluster NAME] [--state ALIVE]
    %castray jobs [--cluster NAME] [--status RUNNING]
    %castray logs SUBMISSION_ID [--cluster NAME] [--follow]
    %castray submit --cluster NAME [--submission-id ID] -- ENTRYPOINT
    %castray panel [--interval SECONDS]
    %castray status

Example::

    In [1]: %load_ext castray_nb
    In [2]: %castray discover --connect
    In [3]: df = %castray nodes --external --alive
    In [4]: %castray panel --interval 1

Mistakes (a bad address, an unreachable cluster, a missing token) give one line
(``UsageError: ...``) and leave attached clusters as they were.
"""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import MagicArgumentParser

from .core.errors import CastrayError, InvalidArgument


def _api() -> Any:
    """The public functions, imported on first use so %load_ext stays light."""
    from . import api

    return api


def build_parser() -> MagicArgumentParser:
    parser = MagicArgumentParser(
        prog="castray", description="Find, attach and watch Ray clusters (use as %castray COMMAND ...).", add_help=True
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=MagicArgumentParser)

    discover = commands.add_parser("discover", add_help=True, help="show the live clusters on this machine")
    discover.add_argument("--connect", action="store_true", help="attach every cluster found")
    discover.add_argument("--json", action="store_true", help="return a list of dicts (the CLI's JSON)")
    discover.add_argument("--all-users", action="store_true", help="also list other Unix users' clusters here")

    connect = commands.add_parser(
        "connect", add_help=True, help="attach a cluster read-only (or also become its driver)"
    )
    connect.add_argument("address", help="host:port, http(s)://host:port, ray://host:port, a session name, auto")
    connect.add_argument("--name", help="the name to show it under (letters, digits, . _ -; default like ray-6379)")
    connect.add_argument("--driver", action="store_true", help="also ray.init() to it, to run work")
    connect.add_argument("--token-file", metavar="FILE", help="a Ray auth token to send this cluster on purpose")

    disconnect = commands.add_parser(
        "disconnect", add_help=True, help="detach a cluster, or all, or end the driver connection"
    )
    disconnect.add_argument("name", nargs="?")
    disconnect.add_argument("--all", action="store_true")
    disconnect.add_argument("--driver", action="store_true", help="also ray.shutdown() the driver connection")

    clusters = commands.add_parser("clusters", add_help=True, help="the attached clusters and their state")
    clusters.add_argument("--ended", action="store_true", help="instead, the clusters that ended (last snapshots)")
    history = commands.add_parser("history", add_help=True, help="the recorded usage over time (a long DataFrame)")
    events = commands.add_parser("events", add_help=True, help="what happened: nodes joined and died, jobs, ends")
    for past in (history, events):
        past.add_argument("--cluster", help="one cluster: its name or its Ray session name")
        past.add_argument("--since", default="1h", help="10m, 2h, 1d, seconds or an ISO time (default 1h)")
        past.add_argument("--until", help="as --since (default now)")
    history.add_argument("--metric", action="append", help="only this metric (repeatable; e.g. cpu_percent)")
    history.add_argument("--node", help="only this node's series ('' for the clusters' totals)")
    commands.add_parser("recent", add_help=True, help="the clusters you attached before (a DataFrame)")
    forget = commands.add_parser("forget", add_help=True, help="drop a remembered cluster (see %%castray recent)")
    forget.add_argument("name", help="the name it was attached under, or its address")

    nodes = commands.add_parser("nodes", add_help=True, help="the merged node table (a DataFrame)")
    which = nodes.add_mutually_exclusive_group()
    which.add_argument("--local", action="store_true", help="only the kernel's own Ray runtime")
    which.add_argument("--external", action="store_true", help="only attached clusters")
    nodes.add_argument("--alive", action="store_true", help="only ALIVE nodes")

    actors = commands.add_parser("actors", add_help=True, help="the actors of attached clusters (a DataFrame)")
    actors.add_argument("--cluster", help="only this attached cluster")
    actors.add_argument("--state", help="only actors in this state (ALIVE, DEAD, PENDING_CREATION, ...)")

    jobs = commands.add_parser("jobs", add_help=True, help="the jobs of attached clusters (a DataFrame)")
    jobs.add_argument("--cluster", help="only this attached cluster")
    jobs.add_argument("--status", help="only jobs in this status (PENDING, RUNNING, STOPPED, SUCCEEDED, FAILED)")

    logs = commands.add_parser("logs", add_help=True, help="print a submission job's logs")
    logs.add_argument("submission_id")
    logs.add_argument("--cluster", help="the attached cluster it runs on (default: look in every one)")
    logs.add_argument("--follow", action="store_true", help="keep printing new lines until the job ends")

    submit = commands.add_parser(
        "submit", add_help=True, help="submit a job: %%castray submit --cluster NAME -- ENTRYPOINT (imports Ray)"
    )
    submit.add_argument("--cluster", required=True, help="the attached cluster to run it on")
    submit.add_argument("--submission-id", help="the id to give it (default: Ray picks one)")

    panel = commands.add_parser("panel", add_help=True, help="the live panel")
    panel.add_argument("--interval", type=float, default=None, help="seconds between refreshes")

    commands.add_parser("status", add_help=True, help="driver connection, attached clusters, node counts")
    return parser


_PARSER = build_parser()


@magics_class
class CastrayMagics(Magics):
    @line_magic
    def castray(self, line: str) -> Any:
        # ``submit ... -- ENTRYPOINT``: the entrypoint is the raw text after " -- ", kept as
        # written (not split again) and handed to Ray as one string.
        options, dashes, entrypoint = line.partition(" -- ")
        if not dashes and line.rstrip().endswith(" --"):
            options, dashes = line.rstrip()[:-3], " -- "
        try:
            args = _PARSER.parse_argstring(options if dashes else line)  # raises UsageError; never evaluates
        except SystemExit:  # --help printed the help
            return None
        if args.command is None:
            _PARSER.print_help()
            return None
        if args.command == "submit":
            if not dashes or not entrypoint.strip():
                raise UsageError("give the command after ' -- ': %castray submit --cluster NAME -- python job.py")
            args.entrypoint = entrypoint.strip()
        elif dashes:
            raise UsageError("' -- ' is only for %castray submit")
        try:
            return _COMMANDS[args.command](args)
        except CastrayError as exc:
            raise UsageError(str(exc)) from None

    castray.__doc__ = (__doc__ or "") + "\n" + _PARSER.format_help()


def _discover(args: Any) -> Any:
    import sys

    import pandas as pd

    found = _api().discover(connect=args.connect, all_users=args.all_users or None)
    for name, why in found.report.attach_errors:
        print(f"castray: could not attach {name}: {why}", file=sys.stderr)
    if args.json:
        return [c.to_json() for c in found]
    columns = ["name", "gcs_address", "dashboard_url", "dashboard_link", "ray_version", "num_nodes", "auth_required",
               "owner", "location", "sources"]  # fmt: skip
    rows = [{**c.to_json(), "dashboard_link": c.dashboard_link} for c in found]
    frame = pd.DataFrame([{k: row[k] for k in columns} for row in rows], columns=columns)
    frame["num_nodes"] = frame["num_nodes"].astype("Int64")  # a cluster of unknown size must not make 1 read 1.0
    return frame


def _connect(args: Any) -> Any:
    from .core.auth import token_from_file

    token = token_from_file(args.token_file).value if args.token_file else None
    return _api().connect(args.address, name=args.name, driver=args.driver, token=token)


def _disconnect(args: Any) -> list[str]:
    return _api().disconnect(args.name, all=args.all, driver=args.driver)


def _clusters(args: Any) -> Any:
    import pandas as pd

    if args.ended:
        columns = ["name", "session_name", "ended_at", "ended_reason", "alive_nodes", "nodes", "jobs", "last_seen"]
        rows = [
            {**c.to_json(), "alive_nodes": c.snapshot.get("alive_nodes"), "nodes": len(c.snapshot.get("nodes", [])),
             "jobs": len(c.snapshot.get("jobs", []))}
            for c in _api().clusters(ended=True)
        ]  # fmt: skip
        frame = pd.DataFrame([{k: row[k] for k in columns} for row in rows], columns=columns)
        for column in ("ended_at", "last_seen"):
            frame[column] = pd.to_datetime(frame[column], utc=True)
        return frame

    rows = [
        {
            "name": c.name,
            "reachable": c.reachable,
            "via": c.via,
            "nodes": c.num_nodes,
            "alive": c.alive_nodes,
            "last_refresh": c.last_refresh,
            "read_ms": None if c.read_s is None else round(c.read_s * 1000, 1),
            "dashboard_url": c.dashboard_url,
            "dashboard_link": c.dashboard_link,
            "gcs_address": c.info.gcs_address,
            "error": c.error,
            "note": "; ".join(c.notes) or None,
        }
        for c in _api().clusters()
    ]
    return pd.DataFrame(rows, columns=["name", "reachable", "via", "nodes", "alive", "last_refresh", "read_ms",
                                       "dashboard_url", "dashboard_link", "gcs_address", "error", "note"])  # fmt: skip


def _history(args: Any) -> Any:
    return _api().history(args.cluster, args.since, args.until, metrics=args.metric, node=args.node)


def _events(args: Any) -> Any:
    return _api().events(args.cluster, args.since, args.until)


def _recent(args: Any) -> Any:
    import pandas as pd

    columns = ["name", "address", "session_name", "last_seen", "sources"]
    rows = [{**e.to_json(), "last_seen": e.last_seen_at} for e in _api().recent()]
    return pd.DataFrame([{k: row[k] for k in columns} for row in rows], columns=columns)


def _forget(args: Any) -> list[str]:
    return [e.name for e in _api().forget(args.name)]


def _nodes(args: Any) -> Any:
    source = "local" if args.local else "external" if args.external else None
    return _api().nodes(source=source, alive_only=args.alive)


def _actors(args: Any) -> Any:
    import sys

    frame = _api().actors(cluster=args.cluster, state=args.state)
    for name, why in frame.attrs.get("skipped", {}).items():
        print(f"castray: no actors from {name}: {why}", file=sys.stderr)
    return frame


def _jobs(args: Any) -> Any:
    import sys

    frame = _api().jobs(cluster=args.cluster, status=args.status)
    for name, why in frame.attrs.get("skipped", {}).items():
        print(f"castray: no jobs from {name}: {why}", file=sys.stderr)
    return frame


def _logs(args: Any) -> None:
    import sys

    if not args.follow:
        print(_api().job_logs(args.submission_id, cluster=args.cluster), end="")
        return None
    chunks = _api().follow_job_logs(args.submission_id, cluster=args.cluster)
    try:
        for chunk in chunks:
            print(chunk, end="", flush=True)
    except KeyboardInterrupt:
        print("\ncastray: stopped following (the job goes on)", file=sys.stderr)
    finally:
        chunks.close()  # ends the reading thread
    return None


def _submit(args: Any) -> str:
    options = {"submission_id": args.submission_id} if args.submission_id else {}
    return _api().submit(args.cluster, args.entrypoint, **options)


def _panel(args: Any) -> Any:
    from .widgets import panel

    if args.interval is not None and not 0.2 <= args.interval <= 3600:
        raise InvalidArgument("--interval must be between 0.2 and 3600 seconds")
    return panel(interval=args.interval)


def _status(args: Any) -> dict[str, Any]:
    return _api().status()


_COMMANDS = {
    "discover": _discover,
    "connect": _connect,
    "disconnect": _disconnect,
    "clusters": _clusters,
    "history": _history,
    "events": _events,
    "recent": _recent,
    "forget": _forget,
    "nodes": _nodes,
    "actors": _actors,
    "jobs": _jobs,
    "logs": _logs,
    "submit": _submit,
    "panel": _panel,
    "status": _status,
}


def load_ipython_extension(ipython: Any) -> None:
    """Register ``%castray``; loading twice is harmless (IPython replaces the magic)."""
    from .cells import hook_cells

    ipython.register_magics(CastrayMagics)
    hook_cells(ipython)  # from now on a cell that runs again closes the panels it made
