#!/bin/busybox sh
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts 2>/dev/null
echo "visor guest: $(uname -sr) up"
run=$(sed -n 's/.*visor\.run=\([^ ]*\).*/\1/p' /proc/cmdline)
if [ -n "$run" ]; then
  sh -c "$(echo "$run" | sed 's/+/ /g')"
  # No ACPI, so no power-off device: the machine ends by a reset instead (the keyboard
  # controller's reset line with reboot=k), which the VMM, or QEMU with -no-reboot,
  # takes as the end of the run.
  reboot -f
fi
exec setsid cttyhack sh
