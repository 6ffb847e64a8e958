"""The Jupyter Server extension: castray_nb's session over HTTP, and its events over a WebSocket.

Enabled on install (``etc/jupyter/jupyter_server_config.d/castray_nb.json``); check with
``jupyter server extension list``. Every route sits under the server's base URL, behind
Jupyter's own authentication and XSRF checks:

=======  ======================================  ==================================================
method   path                                    what
=======  ======================================  ==================================================
POST     /castray/api/cluster/discover-external  discover (``{"attach": true}`` also attaches them)
GET      /castray/api/cluster/external-info      attached clusters and their state
POST     /castray/api/cluster/connect-external   ``{"cluster_address": "...", "name": "..."}``
DELETE   /castray/api/cluster/disconnect-external ``?name=NAME`` or ``?all=true``
GET      /castray/api/nodes                      merged node rows (``?alive=true&refresh=false``)
GET      /castray/api/nodes/external             external node rows only
GET      /castray/api/events                     WebSocket: change events; a plain GET: recorded ones
GET      /castray/api/history                    the recorded history (``?cluster=&since=1h&until=&metric=&node=``)
GET      /castray/api/ended                      the clusters that ended, each with its last snapshot
GET      /castray/api/sparklines                 each recorded cluster's CPU, GPU and memory % (``?since=1h``)
GET      /castray/api/openapi.json               the OpenAPI document of all of the above
DELETE   /castray/api/dashboard-links            revoke dashboard links (``?cluster=NAME`` for one)
GET      /castray/api/jobs                       every attached cluster's jobs (``?cluster=&status=``)
GET      /castray/api/jobs/{cluster}/{id}/logs   a submission job's logs
GET      /castray/dashboard/{cluster}/{path}     a cluster's Ray dashboard (see :mod:`.proxy`)
=======  ======================================  ==================================================

The modules, in the order a request meets them: :mod:`.handlers` (the routes, thin),
:mod:`.state` (the one state object on the app: session, worker lanes, capabilities,
targets), :mod:`.errors` (the one error type), and for dashboards :mod:`.proxy` (the
handlers, in overridable steps), :mod:`.targets` and :mod:`.rewrite`.

The server process keeps one session (:func:`castray_nb.api.session`); it is not a Ray
driver, so its table has external rows only. Its attachments are kept across restarts
(:mod:`.persist`). It records every attached cluster into the user's history for as long
as it runs (:mod:`castray_nb.core.recorder`).
"""

from __future__ import annotations

from typing import Any


def _load_jupyter_server_extension(serverapp: Any) -> None:
    from .. import api
    from .handlers import setup_handlers
    from .persist import keep
    from .state import ServerState

    session = api.session(server=True)
    state = ServerState.for_session(session)
    setup_handlers(serverapp.web_app, state)
    keep(session)  # what was attached before a restart is attached again
    if session.recorder is not None:
        # Recorded for as long as the server runs, whether or not a page is open; the
        # sidebar's socket only changes what the page is sent.
        state.recording = session.watch(jobs=True)
    serverapp.log.info(
        "castray_nb: REST API and event WebSocket under %scastray/api/, dashboards under %scastray/dashboard/",
        serverapp.base_url,
        serverapp.base_url,
    )


# The names older jupyter_server/notebook versions look for.
load_jupyter_server_extension = _load_jupyter_server_extension
