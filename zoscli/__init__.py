"""`zos`: the user's command line for ZOS — keys, signed deployments, live progress, nodes.

It talks to the control plane over HTTP only and never imports Django, so it runs on a laptop
with the standard library, requests, websockets and PyNaCl.
"""

__version__ = "0.1.0"
