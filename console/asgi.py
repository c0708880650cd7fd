"""ASGI entry point: HTTP through Django, websockets through Channels, tile lanes for workers."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
django.setup(set_prefix=False)

import logging  # noqa: E402

from console.handler import CutShortResponses, TileflowASGIHandler  # noqa: E402

django_asgi_app = TileflowASGIHandler()

from channels.routing import ProtocolTypeRouter  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from console.daphne_tuning import stream_request_bodies  # noqa: E402
from console.limits import UploadLimitASGIMiddleware  # noqa: E402
from console.routing import websocket_routes  # noqa: E402
from console.upload_gate import UploadGateASGIMiddleware  # noqa: E402
from flows.batch_resume import start_supervisor_with_server  # noqa: E402
from flows.sweeper import start_sweeper  # noqa: E402
from flows.trigger_loop import start_embedded_triggers  # noqa: E402

# Daphne starts the application when the headers are in and streams the body: limits apply before it.
stream_request_bodies()
# A run that fails after its result began streaming ends the response early; that is no server error.
logging.getLogger("daphne.server").addFilter(CutShortResponses())
# Runs left "running" by a server that died are failed as "interrupted" at start and from then on.
start_sweeper()
# Batches whose server stopped mid-way are taken over as soon as this server's event loop runs.
start_supervisor_with_server()
# Triggers poll their folders and buckets from this server unless TILEFLOW_EMBEDDED_TRIGGERS is off.
start_embedded_triggers()

application = ProtocolTypeRouter(
    {
        # Static files come from the same server: no separate front-end server to run.
        "http": UploadLimitASGIMiddleware(UploadGateASGIMiddleware(ASGIStaticFilesHandler(django_asgi_app))),
        "websocket": websocket_routes(),
    }
)
