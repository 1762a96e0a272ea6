"""The ZOS boot image builder: Debian packages + the agent → UKI, USB image, iPXE files.

Building needs root (unpacking keeps file ownership, the smoke test uses chroot) and the package
archive. Stamping a built image for a farm needs neither and lives in `bootimage/`, which the
ledger uses too.
"""
