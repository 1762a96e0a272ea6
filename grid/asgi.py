"""ASGI entry point: Django for HTTP (nodes' uptime reports and registrations through the
ledger's ingest in front of it, ledger/ingest.py, and token submits of deployments through
coordinator/submit_ingest.py), Channels consumers for WebSockets."""

import gc
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

# What is loaded by now (Django, the apps, their models and consumers: ~130k objects) lives as
# long as the worker, yet every full collection walked it again, the worker stalled 90-170 ms
# with 500 links: most of submit → dispatch's p99 at 1,000 links (a gc callback timed the
# pauses; docs/performance.md). Frozen, the collector skips it for good.
gc.freeze()
