"""Who may do what: every route of the URL conf and every kind of caller, against one table.

The routes are read from Django's resolver (and Channels' WebSocket routes), not listed by
hand, so a new endpoint without a row in EXPECTED fails `test_every_route_has_a_row` until
someone decides who may call it. Each row says, per caller, one of:

- ok: authorised (any answer below 500 that is not a refusal, a 404 or a sign-in redirect;
  a 400 for the empty body these requests send counts, since it got past the checks),
- denied: 401 or 403,
- hidden: 404, as if the thing did not exist (other people's things),
- login: a redirect to a sign-in page (the dashboard and the admin).

No caller, whatever it sends, ever gets a 5xx.

Callers: anonymous; the owner (alice, whose deployment, workload, key, draft, image and API
token are in the paths); another user (mallory); the farmer (frank, whose farm, tokens and nodes
are in the paths); staff; an approved node of frank's farm, running alice's job; a pending node
of the same farm. Users sign in with a session, nodes sign each request (ZOS-Ed25519).
"""

import io
import shutil
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone
from nacl.signing import SigningKey

from signing.keys import b64encode, public_key_hex
from tests.conftest import CAPACITY, NodeClient, make_farm, make_user
from tests.hub.conftest import INITRD, KERNEL, manifest, sha
from tests.ledger.conftest import STUB, TOOLS, make_build

pytestmark = pytest.mark.django_db

ANON, OWNER, OTHER, FARMER, STAFF, NODE, PENDING = (
    "anonymous",
    "owner",
    "other",
    "farmer",
    "staff",
    "node",
    "pending",
)
PRINCIPALS = (ANON, OWNER, OTHER, FARMER, STAFF, NODE, PENDING)
USERS = (OWNER, OTHER, FARMER, STAFF)
OK, DENIED, HIDDEN, LOGIN = "ok", "denied", "hidden", "login"


def row(default: str, **by_principal: str) -> dict[str, str]:
    """One outcome for every caller, then the exceptions by name."""
    return {p: by_principal.get(p, default) for p in PRINCIPALS}


# Shapes most rows take.
PUBLIC = row(OK)
SIGNED_IN = row(OK, anonymous=DENIED, node=DENIED, pending=DENIED)  # any user, API
OWNERS_ONLY = row(HIDDEN, owner=OK, anonymous=DENIED, node=DENIED, pending=DENIED)
FARMERS_ONLY = row(HIDDEN, farmer=OK, staff=OK, anonymous=DENIED, node=DENIED, pending=DENIED)
STAFF_WRITES = row(DENIED, staff=OK)
PAGE = row(OK, anonymous=LOGIN, node=LOGIN, pending=LOGIN)  # any signed-in user, dashboard
OWNERS_PAGE = row(HIDDEN, owner=OK, anonymous=LOGIN, node=LOGIN, pending=LOGIN)
FARMERS_PAGE = row(HIDDEN, farmer=OK, staff=OK, anonymous=LOGIN, node=LOGIN, pending=LOGIN)

# (route name, method) → outcome per caller. Route names carry their namespace.
EXPECTED: dict[tuple[str, str], dict[str, str]] = {
    # Ledger: farms are public to read, managed by their farmer (or staff).
    ("farm-list", "get"): PUBLIC,
    ("farm-list", "post"): SIGNED_IN,
    ("farm-detail", "get"): PUBLIC,
    ("farm-boot-link", "get"): FARMERS_ONLY,
    ("farm-boot-link", "post"): FARMERS_ONLY,
    ("farm-nodes", "get"): FARMERS_ONLY,
    ("farm-release", "post"): FARMERS_ONLY,
    ("farm-revoke-token", "post"): FARMERS_ONLY,
    ("farm-tokens", "get"): FARMERS_ONLY,
    ("farm-tokens", "post"): FARMERS_ONLY,
    # Nodes: public to read; registration by any signing key; uptime by the node itself.
    ("node-list", "get"): PUBLIC,
    ("node-list", "post"): row(DENIED, node=OK, pending=OK),
    ("node-detail", "get"): PUBLIC,
    ("node-approve", "post"): FARMERS_ONLY,
    ("node-decommission", "post"): FARMERS_ONLY,
    ("node-drain", "post"): FARMERS_ONLY,
    ("node-undrain", "post"): FARMERS_ONLY,
    ("node-uptime", "post"): row(DENIED, node=OK),
    # Gateway hosts are claimed and released by an approved node for its job's owner; that the
    # node is a gateway running that owner's job is the service's check (a 400 here).
    ("gateway-host-claim", "post"): row(DENIED, node=OK),
    ("gateway-host-release", "post"): row(DENIED, node=OK),
    # A user's own signing keys; their public keys for approved nodes (and staff).
    ("userkey-list", "get"): SIGNED_IN,
    ("userkey-list", "post"): SIGNED_IN,
    ("userkey-challenge", "post"): SIGNED_IN,
    ("userkey-detail", "get"): OWNERS_ONLY,
    ("userkey-revoke", "post"): OWNERS_ONLY,
    ("user-public-keys", "get"): row(DENIED, staff=OK, node=OK),
    # Boot images and agent releases: public to read, staff to publish.
    ("release-key", "get"): PUBLIC,
    ("bootimage-list", "get"): PUBLIC,
    ("bootimage-list", "post"): STAFF_WRITES,
    ("bootimage-detail", "get"): PUBLIC,
    ("bootimage-current", "post"): STAFF_WRITES,
    ("agentrelease-list", "get"): PUBLIC,
    ("agentrelease-list", "post"): STAFF_WRITES,
    ("agentrelease-detail", "get"): PUBLIC,
    ("agentrelease-bundle", "get"): PUBLIC,
    ("agentrelease-rollout", "post"): STAFF_WRITES,
    # Coordinator: everyone sees only their own deployments, workloads and drafts.
    ("deployment-list", "get"): SIGNED_IN,
    ("deployment-list", "post"): SIGNED_IN,
    ("deployment-detail", "get"): OWNERS_ONLY,
    ("deployment-cancel", "post"): OWNERS_ONLY,
    ("deployment-events", "get"): OWNERS_ONLY,
    ("workload-list", "get"): SIGNED_IN,
    ("workload-detail", "get"): OWNERS_ONLY,
    ("draft-list", "get"): SIGNED_IN,
    ("draft-list", "post"): SIGNED_IN,
    ("draft-detail", "get"): OWNERS_ONLY,
    ("draft-detail", "put"): OWNERS_ONLY,
    ("draft-detail", "patch"): OWNERS_ONLY,
    ("draft-detail", "delete"): OWNERS_ONLY,
    ("coordinator-key", "get"): PUBLIC,
    ("catalog", "get"): PUBLIC,
    ("script-validate", "post"): SIGNED_IN,
    # Image hub: one's own images and uploads; nodes fetch for owners whose job they run.
    ("image-list", "get"): SIGNED_IN,
    ("image-list", "post"): SIGNED_IN,
    ("image-detail", "get"): OWNERS_ONLY,
    ("image-detail", "delete"): OWNERS_ONLY,
    ("blob", "head"): OWNERS_ONLY,
    ("blob", "put"): SIGNED_IN,
    ("node-image", "get"): row(DENIED, node=OK),
    ("node-blob", "get"): row(DENIED, node=OK),
    ("api-token", "post"): PUBLIC,
    ("api-schema", "get"): PUBLIC,
    ("api-docs", "get"): PUBLIC,
    # Boot media: anyone gets the non-approving files; the secret link is a capability.
    ("farm-boot", "get"): PUBLIC,
    ("boot-file", "get"): PUBLIC,
    ("boot-file", "head"): PUBLIC,
    ("boot-link-file", "get"): PUBLIC,
    # Operators' tools; /metrics answers only its bearer token (nobody here holds it).
    ("ops:overview", "get"): row(LOGIN, staff=OK),
    ("ops:node-logs", "get"): row(HIDDEN, staff=OK),
    ("ops:metrics", "get"): row(DENIED),
    # The users' dashboard.
    ("dashboard:home", "get"): PUBLIC,
    ("dashboard:sign-up", "get"): PUBLIC,
    ("dashboard:sign-up", "post"): PUBLIC,
    ("dashboard:sign-in", "get"): PUBLIC,
    ("dashboard:sign-in", "post"): PUBLIC,
    ("dashboard:sign-in", "put"): PUBLIC,  # Django's form views treat PUT as POST
    ("dashboard:sign-out", "post"): PUBLIC,
    ("dashboard:password", "get"): PAGE,
    ("dashboard:password", "post"): PAGE,
    ("dashboard:password", "put"): PAGE,
    ("dashboard:keys", "get"): PAGE,
    ("dashboard:revoke-key", "post"): OWNERS_PAGE,
    ("dashboard:deploy", "get"): PAGE,
    ("dashboard:deployments", "get"): PAGE,
    ("dashboard:deployment", "get"): OWNERS_PAGE,
    ("dashboard:workloads", "get"): PAGE,
    ("dashboard:workload", "get"): OWNERS_PAGE,
    ("dashboard:tokens", "get"): PAGE,
    ("dashboard:tokens", "post"): PAGE,
    ("dashboard:revoke-token", "post"): OWNERS_PAGE,
    ("dashboard:nodes", "get"): PAGE,
    ("dashboard:node", "get"): PAGE,
    ("dashboard:farms", "get"): PAGE,
    ("dashboard:farms", "post"): PAGE,
    ("dashboard:farm", "get"): FARMERS_PAGE,
    ("dashboard:farm-token", "post"): FARMERS_PAGE,
    ("dashboard:farm-token-revoke", "post"): FARMERS_PAGE,
    ("dashboard:farm-node", "post"): FARMERS_PAGE,
    ("dashboard:farm-release", "post"): FARMERS_PAGE,
    ("dashboard:farm-boot", "get"): FARMERS_PAGE,
    ("dashboard:farm-boot-rotate", "post"): FARMERS_PAGE,
}

# Plain function views do not say which methods they take; these are the ones they serve.
FUNCTION_VIEW_METHODS = {
    "farm-boot": ["get"],
    "boot-link-file": ["get"],
    "ops:overview": ["get"],
    "ops:node-logs": ["get"],
    "ops:metrics": ["get"],
    "dashboard:home": ["get"],
    "dashboard:sign-up": ["get", "post"],
    "dashboard:password": ["get", "post"],
    "dashboard:keys": ["get"],
    "dashboard:revoke-key": ["post"],
    "dashboard:deploy": ["get"],
    "dashboard:deployments": ["get"],
    "dashboard:deployment": ["get"],
    "dashboard:workloads": ["get"],
    "dashboard:workload": ["get"],
    "dashboard:tokens": ["get", "post"],
    "dashboard:revoke-token": ["post"],
    "dashboard:nodes": ["get"],
    "dashboard:node": ["get"],
    "dashboard:farms": ["get", "post"],
    "dashboard:farm": ["get"],
    "dashboard:farm-token": ["post"],
    "dashboard:farm-token-revoke": ["post"],
    "dashboard:farm-node": ["post"],
    "dashboard:farm-release": ["post"],
    "dashboard:farm-boot": ["get"],
    "dashboard:farm-boot-rotate": ["post"],
}


def _routes(patterns, namespace: str = "") -> list[tuple[str, URLPattern]]:
    found = []
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            found += _routes(pattern.url_patterns, inner)
        elif pattern.name:
            found.append((namespace + pattern.name, pattern))
        else:
            found.append((f"{namespace}<unnamed {pattern.pattern}>", pattern))
    return found


def _methods(name: str, pattern: URLPattern) -> list[str]:
    """The methods a route serves, from the view itself where the view says so."""
    view = pattern.callback
    if getattr(view, "actions", None):  # a DRF viewset route
        # DRF adds HEAD (as GET) to a route's actions at its first request: not a method of its own.
        return sorted(m for m in view.actions if m != "head")
    cls = getattr(view, "cls", None) or getattr(view, "view_class", None)
    if cls is not None:
        return sorted(
            m for m in cls.http_method_names if m != "options" and callable(getattr(cls, m, None))
        )
    return FUNCTION_VIEW_METHODS.get(name, [])


def http_routes() -> dict[tuple[str, str], URLPattern]:
    """Every (route, method) of the URL conf outside the admin (tested on its own below)."""
    return {
        (name, method): pattern
        for name, pattern in _routes(get_resolver().url_patterns)
        if not name.startswith("admin:")
        for method in _methods(name, pattern) or ["<no methods known>"]
    }


def admin_routes() -> list[str]:
    return [
        name
        for name, pattern in _routes(get_resolver().url_patterns)
        if name.startswith("admin:") and not pattern.pattern.regex.groups
    ]


def test_every_route_has_a_row():
    routes = set(http_routes())
    undecided = sorted(routes - set(EXPECTED))
    assert not undecided, f"routes nobody decided about (add rows to EXPECTED): {undecided}"
    stale = sorted(set(EXPECTED) - routes)
    assert not stale, f"rows for routes that no longer exist: {stale}"


# --- the world the requests run against ---------------------------------------------------


@dataclass
class World:
    alice: Any
    mallory: Any
    frank: Any
    staff: Any
    node: Any
    node_key: SigningKey
    pending_key: SigningKey
    args: dict[str, dict]


def _world(tmp_path, settings) -> World:
    from accounts.services import create_api_token
    from contracts.image_manifest import sign_manifest
    from coordinator.models import Deployment, Draft, Job, Workload
    from hub import services as hub
    from ledger import boot_links
    from ledger.boot import register_build
    from ledger.choices import NodeStatus
    from ledger.models import AgentRelease, BootImage, Node
    from ledger.services import add_user_key, create_enrollment_token

    # Users' passwords are not what is tested; the default hasher costs ~1 s a user here.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.ZOS_BLOB_DIR = tmp_path / "blobs"
    settings.ZOS_BOOT_DIR = tmp_path / "boot"
    settings.ZOS_RELEASE_KEY_FILE = tmp_path / "release.key"
    settings.ZOS_RELEASE_DIR = tmp_path / "releases"
    settings.ZOS_PUBLIC_URL = "http://testserver"
    settings.ZOS_METRICS_TOKEN = "metrics-secret-nobody-here-holds"

    alice, mallory, frank = make_user("alice"), make_user("mallory"), make_user("frank")
    staff = make_user("staff", staff=True)
    alice_signing = SigningKey.generate()
    alice_key = add_user_key(user=alice, name="laptop", public_key=public_key_hex(alice_signing))
    farm = make_farm("frank-farm", owner=frank)
    token, _ = create_enrollment_token(farm=farm, uses=1, ttl=timedelta(days=1))
    node_key, pending_key = SigningKey.generate(), SigningKey.generate()
    node = Node.objects.create(
        farm=farm, public_key=public_key_hex(node_key), status=NodeStatus.ONLINE, **CAPACITY
    )
    Node.objects.create(
        farm=farm, public_key=public_key_hex(pending_key), status=NodeStatus.PENDING, **CAPACITY
    )
    deployment = Deployment.objects.create(
        owner=alice,
        name="app",
        envelope={},
        payload="{}",
        signer=alice_key,
        script_sha256="0" * 64,
        nonce="n1",
        target_node=node,
        expires_at=timezone.now() + timedelta(hours=1),
    )
    Job.objects.create(deployment=deployment, node=node)
    workload = Workload.objects.create(node=node, owner=alice, kind="vm", name="web", state="ok")
    draft = Draft.objects.create(owner=alice, name="draft", script="1")
    api_token, _ = create_api_token(user=alice, name="laptop")
    for data in (KERNEL, INITRD):
        hub.store_blob(
            owner=alice, sha256=sha(data), stream=io.BytesIO(data), size=len(data), max_size=2**30
        )
    image = hub.publish_image(owner=alice, envelope=sign_manifest(alice_signing, manifest()))
    boot_image: BootImage | None = None
    if STUB.exists() and all(shutil.which(t) for t in TOOLS):
        boot_image = register_build(make_build(tmp_path / "build"))
    version = boot_image.version if boot_image else "0.0.0"
    release = AgentRelease.objects.create(version="1.0.0", sha256="0" * 64, size=1, envelope={})
    release.bundle_path.parent.mkdir(parents=True)
    release.bundle_path.write_bytes(b"a release bundle")
    secret = boot_links.boot_link_secret(farm)

    args = {
        "farm-detail": {"pk": farm.pk},
        "farm-boot-link": {"pk": farm.pk},
        "farm-nodes": {"pk": farm.pk},
        "farm-release": {"pk": farm.pk},
        "farm-revoke-token": {"pk": farm.pk, "token_id": token.pk},
        "farm-tokens": {"pk": farm.pk},
        "node-detail": {"pk": node.pk},
        "node-approve": {"pk": node.pk},
        "node-decommission": {"pk": node.pk},
        "node-drain": {"pk": node.pk},
        "node-undrain": {"pk": node.pk},
        "node-uptime": {"pk": node.pk},
        "userkey-detail": {"pk": alice_key.pk},
        "userkey-revoke": {"pk": alice_key.pk},
        "user-public-keys": {"user_id": alice.pk},
        "bootimage-detail": {"version": version},
        "bootimage-current": {"version": version},
        "agentrelease-detail": {"version": "1.0.0"},
        "agentrelease-bundle": {"version": "1.0.0"},
        "agentrelease-rollout": {"version": "1.0.0"},
        "deployment-detail": {"pk": deployment.pk},
        "deployment-cancel": {"pk": deployment.pk},
        "deployment-events": {"pk": deployment.pk},
        "workload-detail": {"pk": workload.pk},
        "draft-detail": {"pk": draft.pk},
        "image-detail": {"pk": image.pk},
        "blob": {"sha256": sha(KERNEL)},
        "node-image": {"name": image.name, "?": f"owner={alice.pk}"},
        "node-blob": {"sha256": sha(KERNEL), "?": f"owner={alice.pk}"},
        "farm-boot": {"farm_id": farm.pk},
        "boot-file": {"farm_id": farm.pk, "name": "boot.ipxe"},
        "boot-link-file": {"farm_id": farm.pk, "secret": secret, "name": "boot.ipxe"},
        # lines=0 is refused after the caller is checked, before the node is asked.
        "ops:node-logs": {"node_id": node.pk, "?": "lines=0"},
        "dashboard:revoke-key": {"key_id": alice_key.pk},
        "dashboard:deployment": {"deployment_id": deployment.pk},
        "dashboard:workload": {"workload_id": workload.pk},
        "dashboard:revoke-token": {"token_id": api_token.pk},
        "dashboard:node": {"node_id": node.pk},
        "dashboard:farm": {"farm_id": farm.pk},
        "dashboard:farm-token": {"farm_id": farm.pk},
        "dashboard:farm-token-revoke": {"farm_id": farm.pk, "token_id": token.pk},
        "dashboard:farm-node": {"farm_id": farm.pk, "node_id": node.pk, "action": "drain"},
        "dashboard:farm-release": {"farm_id": farm.pk},
        "dashboard:farm-boot": {"farm_id": farm.pk},
        "dashboard:farm-boot-rotate": {"farm_id": farm.pk},
    }
    return World(alice, mallory, frank, staff, node, node_key, pending_key, args)


def _url(world: World, name: str) -> str:
    kwargs = dict(world.args.get(name, {}))
    query = kwargs.pop("?", "")
    return reverse(name, kwargs=kwargs) + (f"?{query}" if query else "")


def _send(world: World, principal: str, method: str, url: str):
    users = {OWNER: world.alice, OTHER: world.mallory, FARMER: world.frank, STAFF: world.staff}
    body = b"" if method in ("get", "head", "delete") else b"{}"
    if principal in (NODE, PENDING):
        key = world.node_key if principal == NODE else world.pending_key
        return NodeClient(Client(), key).signed(method.upper(), url, body=body)
    client = Client()
    if principal in users:
        client.force_login(users[principal])
    return client.generic(method.upper(), url, body, content_type="application/json")


def outcome(response) -> str:
    code = response.status_code
    if code >= 500:
        return f"server error {code}"
    if code in (301, 302, 303) and (
        "/sign-in" in response["Location"] or "/admin/login" in response["Location"]
    ):
        return LOGIN
    if code in (401, 403):
        return DENIED
    if code == 404:
        return HIDDEN
    return OK


@pytest.fixture
def world(tmp_path, settings) -> World:
    return _world(tmp_path, settings)


@pytest.mark.parametrize("route", sorted(EXPECTED), ids=lambda r: f"{r[1].upper()} {r[0]}")
def test_each_caller_gets_what_the_table_says(world, route):
    name, method = route
    url = _url(world, name)
    got = {}
    for principal in PRINCIPALS:
        # Each caller sees the world as it was: what another caller changed is rolled back.
        with transaction.atomic():
            response = _send(world, principal, method, url)
            got[principal] = outcome(response)
            transaction.set_rollback(True)
    assert got == EXPECTED[route], f"{method.upper()} {url}"


def test_the_admin_is_for_staff_only(world):
    """Every admin page without an object in its path: anyone but staff gets the admin's
    sign-in; staff are let in (some pages answer them 403: the read-only models' add pages);
    nobody gets a 5xx. Owner stands for every non-staff user here, a node for every signer."""
    names = [n for n in admin_routes() if n not in ("admin:login", "admin:logout")]
    assert len(names) > 20  # the admin is there and was walked
    wrong = {}
    for name in names:
        url = reverse(name)
        for principal in (ANON, OWNER, NODE, STAFF):
            got = outcome(_send(world, principal, "get", url))
            allowed = {OK, DENIED} if principal == STAFF else {LOGIN}
            if got not in allowed:
                wrong[(name, principal)] = got
    assert not wrong, sorted(wrong.items())


# --- WebSockets ---------------------------------------------------------------------------


def websocket_routes() -> set[str]:
    from coordinator.routing import websocket_urlpatterns

    return {str(pattern.pattern) for pattern in websocket_urlpatterns}


WS_EXPECTED = {
    # The node link: only an approved node's signed hello is welcomed.
    "ws/node/": row(DENIED, node=OK),
    # The live feed: any signed-in user (each sees only their own events, see
    # tests/coordinator/test_node_link.py::test_events_reach_the_owner_and_nobody_else).
    "ws/deployments/": row(OK, anonymous=DENIED, node=DENIED, pending=DENIED),
}


def test_every_websocket_route_has_a_row():
    assert websocket_routes() == set(WS_EXPECTED)


async def _ws_outcome(world: World, principal: str, path: str) -> str:
    from grid.asgi import application

    users = {OWNER: world.alice, OTHER: world.mallory, FARMER: world.frank, STAFF: world.staff}
    headers = [(b"origin", b"http://testserver"), (b"host", b"testserver")]
    if principal in users:
        from channels.db import database_sync_to_async

        from accounts.services import create_api_token

        _, secret = await database_sync_to_async(create_api_token)(
            user=users[principal], name=f"ws-{path}"
        )
        headers.append((b"authorization", f"Token {secret}".encode()))
    socket = WebsocketCommunicator(application, "/" + path, headers=headers)
    connected, _ = await socket.connect(timeout=5)
    if not connected:
        return DENIED
    try:
        if path == "ws/node/":
            challenge = await socket.receive_json_from(timeout=5)
            key = {NODE: world.node_key, PENDING: world.pending_key}.get(
                principal, SigningKey.generate()
            )
            signature = key.sign(b"zos-ws-v1\n" + challenge["nonce"].encode()).signature
            await socket.send_json_to(
                {"type": "hello", "key": public_key_hex(key), "sig": b64encode(signature)}
            )
            reply = await socket.receive_output(timeout=5)
            return OK if reply.get("type") == "websocket.send" else DENIED
        return OK
    finally:
        await socket.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", sorted(WS_EXPECTED))
def test_each_caller_gets_what_the_websocket_table_says(tmp_path, settings, path):
    world = _world(tmp_path, settings)
    got = {p: async_to_sync(_ws_outcome)(world, p, path) for p in PRINCIPALS}
    assert got == WS_EXPECTED[path]
