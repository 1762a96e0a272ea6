"""`zos`: the user's command line for ZOS — keys, signed deployments, live progress, nodes.

It talks to the control plane over HTTP only (through `client/`) and never imports Django, so
it runs on a laptop with the standard library, requests, websockets and PyNaCl.
"""
