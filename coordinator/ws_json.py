"""What both WebSocket consumers share: JSON framing where a bad frame gets an error message, not a
crash, and message dispatch without a thread hop per message.

Channels' JSON consumer hands frames to json.loads and lets any exception end the consumer; a
frame nested 100,000 deep raised RecursionError there. Frames go through the same parser as API
bodies (grid.json_input) and a refused one is answered like an API error, with the link kept up.

Channels' dispatch runs `close_old_connections` in the process's one sync thread before every
message, frame or channel-layer push alike (and its disconnect handler after every close): a hop
to that thread and back per message, about half of what an idle link's `beat` cost the workers
(py-spy, 1,000 links). These consumers never touch the database from the event loop: every call
goes through `database_sync_to_async` (coordinator/link_db.py), which closes stale connections
around the call itself.
"""

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from grid import json_input


class JsonConsumer(AsyncJsonWebsocketConsumer):
    async def dispatch(self, message: dict) -> None:
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def websocket_disconnect(self, message: dict) -> None:
        """Channels' own runs `close_old_connections` in the process's one sync thread after every
        close: when a storm closed thousands of links at once they queued there one by one, and
        with them the worker's HTTP requests (py-spy, 5,000 links: 29 % of a worker's samples).
        As for messages, our consumers hold no database connection in the event loop."""
        for group in self.groups:
            await self.channel_layer.group_discard(group, self.channel_name)
        await self.disconnect(message["code"])
        raise StopConsumer()

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs
    ) -> None:
        frame = text_data if text_data is not None else bytes_data or b""
        try:
            content = json_input.loads(frame)
        except json_input.MalformedJSON as exc:
            await self.send_json({"type": "error", "error": "malformed_json", "message": str(exc)})
            return
        await self.receive_json(content, **kwargs)
