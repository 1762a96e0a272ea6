"""The wire contract the control plane, the node agent and the operator tools share.

What both ends of a message must agree on lives here and nowhere else: the DSSE payload types,
the function catalog and the script check, the version rule, the files of a boot image and its
command line, the agent release bundle. It imports only `signing`, `rhai` and the standard
library, so the control plane can use it without carrying the image builder, the agent or the
CLI, and it ships on the node inside the agent (tests/test_import_rules.py holds it to that).
"""
