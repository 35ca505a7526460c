#!/bin/sh
# /init of the feosd test guest (busybox initramfs). On the serial console (ttyS0) it:
#   - prints FEOS-TEST-GUEST-READY once the power button is armed,
#   - answers every input line with "ECHO:<line>" (console input tests), except LSPCI, which
#     lists the guest's PCI functions (hot-plug tests),
#   - powers the guest off when the ACPI power button is pressed (QMP system_powerdown).
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev

# The Debian kernel has the ACPI button driver and evdev as modules: load them, then wait for
# the power button's input device. Pressing the button emits key events on that device.
while read -r m; do insmod "$m" 2>/dev/null; done < /etc/modules.order
power_event=""
i=0
while [ -z "$power_event" ] && [ $i -lt 100 ]; do
  for d in /sys/class/input/event*; do
    [ -e "$d/device/name" ] && [ -c "/dev/input/${d##*/}" ] || continue
    if [ "$(cat "$d/device/name")" = "Power Button" ]; then power_event=/dev/input/${d##*/}; break; fi
  done
  [ -n "$power_event" ] || { sleep 0.1; i=$((i + 1)); }
done
if [ -n "$power_event" ]; then
  # The first event record (24 bytes) read from the device is the press: power off at once.
  ( until [ "$(dd if="$power_event" bs=24 count=1 2>/dev/null | wc -c)" -gt 0 ]; do sleep 1; done
    echo "FEOS-TEST-GUEST-POWERDOWN" > /dev/ttyS0
    poweroff -f ) &
else
  echo "FEOS-TEST-GUEST-NO-POWER-BUTTON" > /dev/ttyS0
fi

exec < /dev/ttyS0 > /dev/ttyS0 2>&1
stty -echo 2>/dev/null
echo "FEOS-TEST-GUEST-READY uptime=$(cut -d' ' -f1 /proc/uptime)"
while true; do
  while IFS= read -r line; do
    case "$line" in
      # The guest's PCI functions, for hot-plug tests: LSPCI<tag> answers one line
      # "PCI<tag>:<address> <vendor>:<device>" per function, then "LSPCI-END<tag>" (a tag tells
      # this listing from earlier ones in the console's replayed output).
      LSPCI*)
        tag=${line#LSPCI}
        for d in /sys/bus/pci/devices/*; do echo "PCI$tag:${d##*/} $(cat "$d/vendor"):$(cat "$d/device")"; done
        echo "LSPCI-END$tag" ;;
      *) echo "ECHO:$line" ;;
    esac
  done
  sleep 1
done
