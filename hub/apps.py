from django.apps import AppConfig


class HubConfig(AppConfig):
    """The image hub: workload images users publish and nodes fetch (docs/images.md).

    Its own app rather than part of the ledger (farms, nodes, keys) or the coordinator
    (deployments): images have their own storage, lifecycle and API. Named `hub`, not `images`,
    so it is never mistaken for `image/`, the node image builder.
    """

    name = "hub"
    verbose_name = "Image hub"
