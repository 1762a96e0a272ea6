"""The parts of the Rhai compiler; `rhai/compiler.py` is its entry point (`generate`)."""
