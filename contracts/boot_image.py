"""A boot image as the ledger stores and serves it, and the command line that makes it a farm's.

One build is stored once (these files, hashed in its manifest); a farm's copies differ only in
the kernel command line, which carries the settings `nodeagent/config.py` reads back from
/proc/cmdline. The builder, the ledger and the node agree on both through this module.
"""

import shlex

# What a BootImage in the ledger holds (push sends exactly these); each farm's usb.img and
# boot.ipxe are made from them with the farm's command line.
BOOT_IMAGE_FILES = ("zos.efi", "vmlinuz", "initrd")
FARM_KEYS = ("zos.ledger", "zos.farm", "zos.enroll")


def _check_value(name: str, value: str) -> None:
    if not value or any(c.isspace() or c in "\"'\\" for c in value):
        raise ValueError(
            f"{name} {value!r} cannot go on a kernel command line: it must be a "
            "non-empty word without spaces, quotes or backslashes"
        )


def farm_cmdline(base: str, ledger_url: str, farm: int, enroll: str | None) -> str:
    """`base` with the farm's settings, replacing any the base already had."""
    if not ledger_url.startswith(("http://", "https://")):
        raise ValueError(f"ledger URL {ledger_url!r} must start with http:// or https://")
    if isinstance(farm, bool) or not isinstance(farm, int) or farm < 1:
        raise ValueError(f"farm must be a positive integer, got {farm!r}")
    _check_value("ledger URL", ledger_url)
    words = [w for w in shlex.split(base) if w.partition("=")[0] not in FARM_KEYS]
    words += [f"zos.ledger={ledger_url.rstrip('/')}", f"zos.farm={farm}"]
    if enroll:
        _check_value("enrollment token", enroll)
        words.append(f"zos.enroll={enroll}")
    return " ".join(words)
