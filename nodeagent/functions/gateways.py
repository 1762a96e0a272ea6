"""The catalog's gateway functions: names on the web forwarded to the owner's VMs on the overlay.

On a gateway node (nodeagent.gateway says which), `gateway_name_create` exposes
`<name>.<gateway domain>` and `gateway_fqdn_create` a domain the user points at the gateway.
Each is a `gateway` record in the workload registry (it reserves no capacity) and a route in the
node's Caddy, which is rebuilt from the registry on every change (nodeagent.gateway.sync).

The order of a create keeps the grid-wide reservation and the node in step when anything fails:
the record is made (`creating`, not served), the control plane is asked (it reserves the host
for this owner and checks that every backend is one of the owner's VMs,
coordinator/gateways.py), the record becomes `claimed` and only then is Caddy synced with it; a
failure after the reservation releases it again. A delete takes the route down first,
then releases the reservation, then forgets the record, so a delete that died half-way is
finished by running it again. Everything is idempotent by name, as for the other workloads.
"""

import contextlib
from typing import Any

from contracts.catalog import CATALOG
from nodeagent import gateway
from nodeagent.functions.context import JobContext
from nodeagent.functions.registry import Workload, WorkloadError, WorkloadRegistry, check_name
from nodeagent.functions.resources import NodeResources
from nodeagent.functions.table import FunctionTable, check_spec_fields, create_recorded
from nodeagent.ledger_client import LedgerClient, LedgerRefused, LedgerUnavailable
from sal.caddy import Caddy, CaddyError, check_hostname, dial_address

NAME_CREATE = CATALOG["gateway_name_create"]
FQDN_CREATE = CATALOG["gateway_fqdn_create"]
MAX_BACKENDS = NAME_CREATE.field("backends").max_items
MAX_FQDN = 63  # an fqdn is also the workload's name in the coordinator's inventory
KIND = gateway.KIND
DELETING = gateway.DELETING


class GatewayFunctions(FunctionTable):
    """Gateway names and fqdns, on gateway nodes only."""

    FUNCTIONS = (
        "gateway_name_create",
        "gateway_fqdn_create",
        "gateway_delete",
        "gateway_info",
        "gateway_list",
    )

    def __init__(
        self,
        resources: NodeResources,
        registry: WorkloadRegistry,
        caddy: Caddy,
        control_plane: LedgerClient | None,
    ) -> None:
        super().__init__(resources, registry)
        self.caddy = caddy
        self.control_plane = control_plane

    def _settings(self) -> gateway.GatewaySettings:
        found = gateway.current(self.registry.redis)
        if found is None:
            raise WorkloadError(
                "this node is not a gateway; deploy to one of the gateways listed by "
                "GET /api/v1/nodes?gateway=true"
            )
        return found

    # --- create -------------------------------------------------------------------------------

    def gateway_name_create(self, ctx: JobContext, spec: Any) -> dict:
        settings = self._settings()
        check_spec_fields(NAME_CREATE, spec)
        name = check_name("gateway", spec.get("name"))
        return self._create(ctx, name, "name", f"{name}.{settings.domain}", spec)

    def gateway_fqdn_create(self, ctx: JobContext, spec: Any) -> dict:
        settings = self._settings()
        check_spec_fields(FQDN_CREATE, spec)
        fqdn = _fqdn(spec.get("fqdn"))
        if fqdn == settings.domain or fqdn.endswith("." + settings.domain):
            raise WorkloadError(
                f"{fqdn} is under this gateway's domain: use gateway_name_create"
                f"(#{{name: ...}}) for <name>.{settings.domain}"
            )
        return self._create(ctx, fqdn, "fqdn", fqdn, spec)

    def _create(self, ctx: JobContext, name: str, kind: str, host: str, spec: dict) -> dict:
        wanted = {
            "type": kind,
            "host": host,
            "backends": _backends(spec.get("backends")),
            "tls": _tls(spec.get("tls", NAME_CREATE.field("tls").default)),
        }
        workload = Workload(owner=ctx.owner, kind=KIND, name=name, spec=wanted, reserved={})

        def make(record: Workload) -> tuple[dict, dict]:
            self._claim(ctx.owner, host, kind, wanted["backends"])
            record.state = gateway.CLAIMED  # now Caddy may serve it
            self.registry.save(record)
            try:
                gateway.sync(self.caddy, self.registry)
            except Exception:
                self.registry.release(record)
                self._undo_claim(ctx.owner, host)
                raise
            return {"url": self._url(host, wanted["tls"])}, {}

        # The same spec again returns the record as it is; another spec under the name is an
        # error; a failed make forgets the record.
        create_recorded(self.registry, workload, make)
        record = self.registry.get(ctx.owner, KIND, name)
        assert record is not None  # just made, and only this owner's jobs delete it
        return self._view(record)

    def _url(self, host: str, tls: bool) -> str:
        scheme, port, default = ("https", self.caddy.https_port, 443)
        if not tls:
            scheme, port, default = ("http", self.caddy.http_port, 80)
        return f"{scheme}://{host}" + ("" if port == default else f":{port}") + "/"

    # --- delete, info, list -------------------------------------------------------------------

    def gateway_delete(self, ctx: JobContext, name: Any) -> bool:
        record = self.registry.get(ctx.owner, KIND, _workload_name(name))
        if record is None:
            ctx.events.log(
                ctx.job_id, f"gateway_delete: you have no gateway {name!r}; nothing to do"
            )
            return True
        record.state = DELETING
        self.registry.save(record)
        gateway.sync(self.caddy, self.registry)  # the route goes first: no more forwarding
        self._release(ctx.owner, record.spec["host"])
        self.registry.release(record)
        return True

    def gateway_info(self, ctx: JobContext, name: Any) -> dict:
        self._settings()
        record = self.registry.get(ctx.owner, KIND, _workload_name(name))
        if record is None:
            raise WorkloadError(f"you have no gateway named {name!r} on this node")
        return self._view(record)

    def gateway_list(self, ctx: JobContext) -> list:
        self._settings()
        return [
            self._view(record, health=False)
            for record in self.registry.all(owner=ctx.owner, kind=KIND)
        ]

    def _view(self, record: Workload, *, health: bool = True) -> dict:
        view = {
            **record.public(),
            "host": record.spec["host"],
            "backends": list(record.spec["backends"]),
            "tls": record.spec["tls"],
        }
        if health:
            view["health"] = self.caddy.health(record.spec["backends"])
        return view

    # --- the control plane --------------------------------------------------------------------

    def _central(self) -> LedgerClient:
        if self.control_plane is None:
            raise WorkloadError("this node has no control plane to reserve gateway names with")
        return self.control_plane

    def _claim(self, owner: int, host: str, kind: str, backends: list[str]) -> None:
        body = {"owner": owner, "host": host, "kind": kind, "backends": backends}
        self._ask("/api/v1/gateway-hosts/claim", body, f"cannot reserve {host}")

    def _release(self, owner: int, host: str) -> None:
        body = {"owner": owner, "host": host}
        self._ask("/api/v1/gateway-hosts/release", body, f"cannot release {host}")

    def _ask(self, path: str, body: dict, doing: str) -> dict:
        try:
            return self._central().request("POST", path, body)
        except LedgerRefused as exc:
            raise WorkloadError(f"{doing}: {exc.message or exc.code}") from None
        except LedgerUnavailable as exc:
            raise WorkloadError(f"{doing}: the control plane is unreachable ({exc})") from None

    def _undo_claim(self, owner: int, host: str) -> None:
        """After a failed sync: Caddy without the route, the host free again; best effort,
        since the sync's own error is the one to report (the next sync or a re-run mends)."""
        with contextlib.suppress(CaddyError, WorkloadError):
            gateway.sync(self.caddy, self.registry)
        with contextlib.suppress(WorkloadError):
            self._release(owner, host)


def _workload_name(name: Any) -> str:
    """A gateway's workload name: the name given to gateway_name_create, or the fqdn."""
    if isinstance(name, str) and "." in name:
        return _fqdn(name)
    return check_name("gateway", name)


def _fqdn(value: Any) -> str:
    try:
        fqdn = check_hostname(value)
    except CaddyError as exc:
        raise WorkloadError(f"fqdn: {exc}") from None
    if len(fqdn) > MAX_FQDN:
        raise WorkloadError(f"fqdn {fqdn!r} is longer than {MAX_FQDN} characters")
    return fqdn


def _backends(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_BACKENDS:
        raise WorkloadError(
            f"backends must be 1 to {MAX_BACKENDS} strings [overlay address]:port, e.g. "
            '["[400:1234::5]:8080"]'
        )
    out: list[str] = []
    for item in value:
        try:
            backend = dial_address(item)
        except CaddyError as exc:
            raise WorkloadError(str(exc)) from None
        if backend not in out:
            out.append(backend)
    return out


def _tls(value: Any) -> bool:
    if type(value) is not bool:
        raise WorkloadError(f"tls must be true or false, not {value!r}")
    return value
