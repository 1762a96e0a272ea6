"""Ed25519 signing shared by the central services, the node agent and the user CLI.

This package must stay free of Django: it ships inside the node image and on users' laptops.
"""

from signing.errors import SignatureError

__all__ = ["SignatureError"]
