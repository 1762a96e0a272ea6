"""The ZOS boot image builder: Debian packages + the agent → UKI, USB image, iPXE files.

Building needs root (unpacking keeps file ownership, the smoke test uses chroot) and the package
archive; stamping a built image for a farm (`image.stamp`) needs neither and never imports Django,
so the ledger can call it to serve per-farm artefacts.
"""
