"""Virtual machines on the node: one interface (`base.Hypervisor`), a qemu and a
cloud-hypervisor driver."""
