"""A built boot image made into a farm's files: the UKI's command line, the USB disk, iPXE.

The ledger serves `/boot/<farm>/...` with this package and `python -m image stamp` writes the
same files for an operator; the builder (`image/`) uses its host-tool runner and makes the
build's own USB disk and iPXE script with it. It needs neither root, nor the package archive,
nor Django, so the control plane carries it without carrying the builder.
"""
