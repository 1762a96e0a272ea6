"""The WebSocket routes. Only the owner's feed goes through Channels' session and user lookup:
a node link proves who it is by signing the challenge, and the lookup (a hop to the process's
one sync thread per connection) was work every link paid at connect for nothing — in a reconnect
storm thousands of handshakes queued behind it."""

from channels.auth import AuthMiddlewareStack
from django.urls import path

from coordinator.consumers import DeploymentFeedConsumer, NodeLinkConsumer
from coordinator.ws_auth import SessionOrTokenAuth

websocket_urlpatterns = [
    # Nodes are not browsers: they prove who they are by signing the challenge.
    path("ws/node/", NodeLinkConsumer.as_asgi()),
    # Browsers (session cookie, same origin) and the CLI (API token).
    path(
        "ws/deployments/", AuthMiddlewareStack(SessionOrTokenAuth(DeploymentFeedConsumer.as_asgi()))
    ),
]
