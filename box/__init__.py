"""The grid in a box: the control plane, its workers and one local node on one machine.

`python -m box` (run by scripts/up after its setup steps) starts the components declared in
box/grid.py and supervises them with box/supervisor.py: one that dies is named and restarted, the
others and the node's jobs keep running, and SIGTERM/SIGINT stops them all, leaving nothing behind.
"""
