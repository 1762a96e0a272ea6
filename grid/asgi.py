"""ASGI entry point: Django for HTTP (nodes' uptime reports and registrations through the
ledger's ingest in front of it, ledger/ingest.py, and token submits of deployments through
coordinator/submit_ingest.py), Channels consumers for WebSockets."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "grid.settings")
django_http = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402  (needs Django set up)

from coordinator.routing import websocket_urlpatterns  # noqa: E402
from coordinator.submit_ingest import SubmitIngest  # noqa: E402
from ledger.ingest import NodeIngest  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": NodeIngest(SubmitIngest(django_http)),
        # Nodes connect without an Origin header; browser consumers check origin themselves,
        # and only they look up a session (coordinator/routing.py).
        "websocket": URLRouter(websocket_urlpatterns),
    }
)
