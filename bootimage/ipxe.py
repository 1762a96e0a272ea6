"""The iPXE script that boots a farm's node over the network.

It loads the kernel and initrd rather than chaining the UKI: iPXE gives a chained EFI binary an
empty command line, which replaces the UKI's built-in one (PLATFORM.md). With the kernel and
initrd the command line is stated right here, and a failed download is retried, not a dead end.
"""

TEMPLATE = """#!ipxe
# ZOS network boot for farm @FARM@ (kernel + initrd from the ledger's bootstrap service)
echo ZOS: booting farm @FARM@ from @BASE@
:retry
isset ${net0/ip} || dhcp || goto wait
kernel @BASE@/boot/@FARM@/vmlinuz initrd=initrd @CMDLINE@ || goto wait
initrd --name initrd @BASE@/boot/@FARM@/initrd || goto wait
boot || goto wait
:wait
echo ZOS: boot failed, retrying in 10 seconds
sleep 10
goto retry
"""


def ipxe_script(base_url: str, farm: int, cmdline: str) -> str:
    """The script for `farm`: files from `<base_url>/boot/<farm>/`, `cmdline` given to the kernel.

    `base_url` is the ledger's URL as the booting machine reaches it; `cmdline` is the full
    command line (`contracts.boot_image.farm_cmdline`).
    """
    return (
        TEMPLATE.replace("@BASE@", base_url.rstrip("/"))
        .replace("@FARM@", str(farm))
        .replace("@CMDLINE@", cmdline)
    )
