"""System abstraction layers: what scripts may do on a node, and the drivers that do it."""
