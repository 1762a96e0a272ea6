from django.urls import path

from coordinator.consumers import DeploymentFeedConsumer, NodeLinkConsumer
from coordinator.ws_auth import SessionOrTokenAuth

websocket_urlpatterns = [
    # Nodes are not browsers: they prove who they are by signing the challenge.
    path("ws/node/", NodeLinkConsumer.as_asgi()),
    # Browsers (session cookie, same origin) and the CLI (API token).
    path("ws/deployments/", SessionOrTokenAuth(DeploymentFeedConsumer.as_asgi())),
]
