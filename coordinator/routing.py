"""WebSocket routes; the node link and the dashboard feed arrive with deployments."""

websocket_urlpatterns: list = []
