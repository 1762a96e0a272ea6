"""The JSON framing both WebSocket consumers share: a bad frame gets an error message, not a crash.

Channels' JSON consumer hands frames to json.loads and lets any exception end the consumer; a
frame nested 100,000 deep raised RecursionError there. Frames go through the same parser as API
bodies (grid.json_input) and a refused one is answered like an API error, with the link kept up.
"""

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from grid import json_input


class JsonConsumer(AsyncJsonWebsocketConsumer):
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
