"""ASGI entry point: HTTP through Django, websockets through Channels, tile lanes for workers."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from console.daphne_tuning import skip_twisted_form_parsing  # noqa: E402
from console.limits import UploadLimitASGIMiddleware  # noqa: E402
from console.routing import websocket_routes  # noqa: E402
from flows.sweeper import start_sweeper  # noqa: E402
from flows.trigger_loop import start_embedded_triggers  # noqa: E402

skip_twisted_form_parsing()
# Runs left "running" by a server that died are failed as "interrupted" at start and from then on.
start_sweeper()
# Triggers poll their folders and buckets from this server unless TILEFLOW_EMBEDDED_TRIGGERS is off.
start_embedded_triggers()

application = ProtocolTypeRouter(
    {
        # Static files come from the same server: no separate front-end server to run.
        "http": UploadLimitASGIMiddleware(ASGIStaticFilesHandler(django_asgi_app)),
        "websocket": websocket_routes(),
    }
)
