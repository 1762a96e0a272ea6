"""A node's agent log, fetched over its link for staff (docs/operations.md, "Node logs").

The log stays on the node (a capped ring in its Redis, redacted there, see nodeagent.logring);
the coordinator keeps none of it. A request travels like the other pushes to a link: a
`link.logs` message to the node's channel group, carrying a fresh reply channel, which the
consumer holding the link turns into a `logs` request to the node and whose answer it sends back
to that reply channel. So it works from any ASGI process when the channel layer is Redis, and
within the one process of the embedded default.

Live follow is the staff page asking again every few seconds with the cursor of the last line it
shows: one short round trip each, nothing held open on the node or in the coordinator.
"""

import asyncio

from channels.layers import get_channel_layer

from coordinator.notify import node_group
from grid.errors import ServiceError

DEFAULT_LINES = 200
MAX_LINES = 1000
TIMEOUT = 5.0
MAX_OPEN_REQUESTS = 32  # per link; older unanswered requests are forgotten

NOT_SUPPORTED = {
    "type": "node.logs",
    "error": "logs_unsupported",
    "message": "this node's agent is too old to send its log; update its release",
}


def reply_from_node(content: dict) -> dict:
    """The node's `logs` answer as a channel message, keeping only the fields we expect."""
    lines = content.get("lines")
    lines = [entry for entry in lines if isinstance(entry, dict)] if isinstance(lines, list) else []
    reply = {
        "type": "node.logs",
        "lines": [
            {
                "id": str(entry.get("id", "")),
                "source": str(entry.get("source", ""))[:40],
                "line": str(entry.get("line", "")),
            }
            for entry in lines[:MAX_LINES]
        ],
        "cursor": str(content.get("cursor", "")),
    }
    if content.get("error"):
        reply.update(error="node_log_unreadable", message=str(content["error"])[:300])
    return reply


async def fetch_node_logs(
    node_id: int, *, lines: int = DEFAULT_LINES, after: str = "", timeout: float = TIMEOUT
) -> dict:
    """The node's last `lines` log lines (or those after the cursor `after`), oldest first.

    Raises ServiceError 503 when no link answers within `timeout` (node offline, or its link
    held by a process this one cannot reach), 502 when the node could not read its ring.
    """
    if not 1 <= lines <= MAX_LINES:
        raise ServiceError("invalid_lines", f"lines must be between 1 and {MAX_LINES}, not {lines}")
    layer = get_channel_layer()
    reply_channel = await layer.new_channel("nodelogs.")
    await layer.group_send(
        node_group(node_id),
        {"type": "link.logs", "reply": reply_channel, "lines": lines, "after": after},
    )
    try:
        reply = await asyncio.wait_for(layer.receive(reply_channel), timeout)
    except TimeoutError:
        raise ServiceError(
            "node_unreachable",
            f"node {node_id} did not answer within {timeout:.0f}s: its link is down "
            "(see the node's link and last uptime report)",
            http_status=503,
        ) from None
    if reply.get("error"):
        status = 501 if reply["error"] == "logs_unsupported" else 502
        raise ServiceError(reply["error"], reply["message"], http_status=status)
    return {"lines": reply["lines"], "cursor": reply["cursor"]}
