"""The DSSE payload types (ARCHITECTURE §4): what each signed envelope says it carries.

A verifier names the type it expects and the signature covers it (the PAE), so one signed
statement can never be replayed as another kind; the signer and the verifier take the string
from here so they cannot drift apart.
"""

DEPLOYMENT_TYPE = "application/vnd.zos.deployment.v1+json"  # user → coordinator → node
DISPATCH_TYPE = "application/vnd.zos.dispatch.v1+json"  # coordinator → node
CANCEL_TYPE = "application/vnd.zos.cancel.v1+json"  # coordinator → node
KEY_PROOF_TYPE = "application/vnd.zos.key-proof.v1+json"  # a key being registered → ledger
RELEASE_TYPE = "application/vnd.zos.release.v1+json"  # ledger's release key → node updater
IMAGE_TYPE = "application/vnd.zos.image.v1+json"  # publisher → hub → node (a workload image)
