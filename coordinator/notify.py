"""Messages to Channels groups, sent only once the transaction that caused them commits.

`node-<id>` groups hold a node's link; `user-<id>` groups hold that user's dashboard sockets.
With the in-memory layer these reach only this process; each process's link loop also polls
(coordinator/linkloop.py), so work queued by another process (the coordinator worker) still goes
out within a poll interval.
"""

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction


def node_group(node_id: int) -> str:
    return f"node-{node_id}"


def user_group(user_id: int) -> str:
    return f"user-{user_id}"


def _send_on_commit(group: str, message: dict) -> None:
    def send() -> None:
        layer = get_channel_layer()
        if layer is not None:
            async_to_sync(layer.group_send)(group, message)

    transaction.on_commit(send)


def wake_node_link(node_id: int) -> None:
    _send_on_commit(node_group(node_id), {"type": "link.wake"})


def cancel_on_node(node_id: int, job_uuid: str) -> None:
    _send_on_commit(node_group(node_id), {"type": "link.cancel", "job": job_uuid})


def push_to_owner(owner_id: int, event: dict) -> None:
    _send_on_commit(user_group(owner_id), {"type": "deployment.event", "event": event})
