"""The ZOS node agent: runs inside the boot image. Must never import Django."""

__version__ = "0.1.0"
