"""The ledger's one refusal type, apart from the services so every ledger module (releases, boot
media, farms, gateways) can raise it without importing the services that call them."""

from grid.errors import ServiceError


class LedgerError(ServiceError):
    """A request the ledger refuses; the API answers it as any ServiceError (grid/errors.py)."""
