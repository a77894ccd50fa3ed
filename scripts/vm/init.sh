#!/bin/busybox sh
# PID 1 of the lazystore test guest (packed into the initramfs as /init by src/vm/initramfs.ts).
#
# Contract with the host (src/vm/run-guest.ts):
#   /vm/modules   kernel modules to insmod, one file name per line, dependencies first
#   /vm/shares    one "<mount_tag> <mountpoint>" per line: 9p shares to mount read-only
#   /vm/command   the shell script to run; its stdout and stderr are printed between
#                 "<marker>-BEGIN uptime=<s>" and "<marker>-END rc=<exit code>" on the console
#   /vm/marker    the marker (random per run, so guest output cannot fake the end line)
# Then the guest powers off (qemu runs with -no-reboot; if poweroff fails, init exits, the
# kernel panics with panic=-1 and qemu exits anyway).
/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /sys /dev /tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
marker=$(cat /vm/marker)
fail() { echo "$marker-FAIL $*"; poweroff -f; exit 1; }

while read -r m; do
  [ -n "$m" ] && { insmod "/vm/mod/$m" || fail "insmod $m"; }
done < /vm/modules

# msize: 9p's default 8 KiB message size makes every read a round trip per 8 KiB; 512000 is
# the largest the virtio transport accepts on Linux 6.1.
while read -r tag dir; do
  [ -n "$tag" ] || continue
  mkdir -p "$dir"
  mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000 "$tag" "$dir" || fail "mount 9p $tag at $dir"
done < /vm/shares

read -r up _ < /proc/uptime
echo "$marker-BEGIN uptime=$up"
sh /vm/command </dev/null 2>&1
rc=$?
echo "$marker-END rc=$rc"
poweroff -f
