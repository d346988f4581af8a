/*
 * PCI constants. Register offsets and bits are from the PCI Local Bus Specification 3.0
 * (§6.1 "Configuration Space Organization", §6.2 "Configuration Space Functions"); the
 * ECAM layout from the PCI Express Base Specification (§7.2.2 "PCI Express Enhanced
 * Configuration Access Mechanism"). Names follow Linux's include/uapi/linux/pci_regs.h.
 */

/** Type 0 configuration header (§6.1). */
export const PCI_VENDOR_ID = 0x00;
export const PCI_DEVICE_ID = 0x02;
export const PCI_COMMAND = 0x04;
export const PCI_STATUS = 0x06;
export const PCI_REVISION_ID = 0x08;
/** Programming interface, then subclass (0x0a) and base class (0x0b): a 24-bit class code. */
export const PCI_CLASS_PROG = 0x09;
export const PCI_CLASS_DEVICE = 0x0a;
export const PCI_CACHE_LINE_SIZE = 0x0c;
export const PCI_LATENCY_TIMER = 0x0d;
export const PCI_HEADER_TYPE = 0x0e;
export const PCI_BIST = 0x0f;
export const PCI_BASE_ADDRESS_0 = 0x10;
/** Six BARs, 4 bytes each, at 0x10..0x27. */
export const PCI_NUM_BARS = 6;
export const PCI_CARDBUS_CIS = 0x28;
export const PCI_SUBSYSTEM_VENDOR_ID = 0x2c;
export const PCI_SUBSYSTEM_ID = 0x2e;
export const PCI_ROM_ADDRESS = 0x30;
export const PCI_CAPABILITY_LIST = 0x34;
export const PCI_INTERRUPT_LINE = 0x3c;
export const PCI_INTERRUPT_PIN = 0x3d;
export const PCI_MIN_GNT = 0x3e;
export const PCI_MAX_LAT = 0x3f;

/** Conventional configuration space is 256 bytes; ECAM gives each function 4 KiB. */
export const PCI_CFG_SPACE_SIZE = 0x100;
export const PCI_CFG_SPACE_EXP_SIZE = 0x1000;

/** Command register bits (§6.2.2). */
export const PCI_COMMAND_IO = 0x1;
export const PCI_COMMAND_MEMORY = 0x2;
export const PCI_COMMAND_MASTER = 0x4;
export const PCI_COMMAND_PARITY = 0x40;
export const PCI_COMMAND_SERR = 0x100;
export const PCI_COMMAND_INTX_DISABLE = 0x400;

/** Status register bits (§6.2.3). */
export const PCI_STATUS_INTERRUPT = 0x8;
export const PCI_STATUS_CAP_LIST = 0x10;

/** Header type 0: a general device (endpoint); bit 7 set would mean multi-function. */
export const PCI_HEADER_TYPE_NORMAL = 0;

/** BAR low bits (§6.2.5.1). */
export const PCI_BASE_ADDRESS_SPACE_IO = 0x1;
export const PCI_BASE_ADDRESS_MEM_TYPE_32 = 0x0;
export const PCI_BASE_ADDRESS_IO_MASK = 0xffff_fffc;
export const PCI_BASE_ADDRESS_MEM_MASK = 0xffff_fff0;

/** Interrupt pins (§6.2.4): 0 none, 1..4 INTA#..INTD#. */
export const PCI_INTERRUPT_NONE = 0;
export const PCI_INTERRUPT_INTA = 1;
export const PCI_INTERRUPT_INTD = 4;

/** ECAM address = bus << 20 | device << 15 | function << 12 | register (PCIe §7.2.2). */
export const PCI_ECAM_BUS_SHIFT = 20;
export const PCI_ECAM_DEVICE_SHIFT = 15;
export const PCI_ECAM_FUNCTION_SHIFT = 12;
/** 32 devices per bus, 8 functions per device. */
export const PCI_SLOTS = 32;
export const PCI_FUNCTIONS = 8;

/** QEMU's generic PCIe host bridge ("gpex"): Red Hat vendor ID, device 0x0008 (QEMU docs/specs/pci-ids.rst). */
export const PCI_VENDOR_ID_REDHAT = 0x1b36;
export const PCI_DEVICE_ID_REDHAT_PCIE_HOST = 0x0008;
/** Class code of a host bridge: base class 0x06 (bridge), subclass 0x00 (host). */
export const PCI_CLASS_BRIDGE_HOST = 0x06_00_00;
