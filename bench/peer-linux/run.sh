#!/usr/bin/env bash
# Linux peer baseline: boots a stock Debian Linux kernel in QEMU (KVM and TCG,
# -smp 2, 512 MiB, serial console, busybox initramfs), runs the static C
# micro-benchmarks in bench/ inside the guest and directly on the host, and
# writes results.md and results.json next to this script. Raw serial logs of
# every run go to logs/.
#
# Everything it downloads comes from Debian's archive through apt.
# Needs root (apt-get, mknod for /dev/console in the initramfs).
#
# Knobs (environment variables):
#   FLAVOR=cloud-amd64          Debian kernel flavour measured (metapackage linux-image-$FLAVOR)
#   ALT_FLAVOR=amd64            second flavour, boot time only ("" to skip)
#   ACCELS="kvm tcg"            accelerators to measure
#   FULL_RUNS=5 BOOT_RUNS=5     whole-VM runs per accel (all benchmarks / boot-only)
#   HOST_RUNS=5                 benchmark runs directly on the host (0 to skip)
#   BENCH_SAMPLES=7 BENCH_TARGET_MS=40   timed samples per benchmark, ms per sample
#   VM_TIMEOUT=1200             seconds a whole VM run may take
#   INIT_TIMEOUT_TCG=120 INIT_TIMEOUT_KVM=600
#                               seconds until init's first line; when the first
#                               boot of an accel misses it, that accel is skipped
#   KVM_FULL_RUNS, KVM_BOOT_RUNS  override FULL_RUNS/BOOT_RUNS for kvm only
#   QUIET_MAX_WAIT=120 QUIET_BUSY_PCT=25
#                               before each run, wait up to QUIET_MAX_WAIT s for
#                               host CPU use (2 s window) to drop below QUIET_BUSY_PCT
#   KVM_DIAG=0                  1: also boot the kernel under kvm without 'quiet'
#                               (earlyprintk, -smp 1, three -cpu variants) to
#                               show where it stops; logs in logs/kvm-diag/ (~12 min)
#   SKIP_APT=1                  reuse build/debs; no apt calls
#   DISK=1                      the disk mode instead: Damselfly's disk machine (q35, qboot,
#                               a raw image as virtio-blk-pci), bench/b_disk.c on /dev/vda,
#                               TCG only, no host/boot-only/alt-flavour runs; writes
#                               results-disk.md and results-disk.json (runs in build/runs-disk)
#   DISK_MB=64                  size of the disk image (build/disk.img, rewritten with
#                               zeros before every run)
#   DISK_IMG=PATH               where the image lives (default build/disk.img); put it on a
#                               host tmpfs (/dev/shm/...) so the host cannot drop its pages
#                               from the page cache in the middle of a run
#   DISK_ACCELS=tcg             accelerators of the disk mode (ACCELS is ignored there)
#   REPORT_ONLY=1               only rebuild results.md/json from build/runs and logs/
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$HERE"

FLAVOR=${FLAVOR:-cloud-amd64}
ALT_FLAVOR=${ALT_FLAVOR-amd64}
ACCELS=${ACCELS:-"kvm tcg"}
FULL_RUNS=${FULL_RUNS:-5}
BOOT_RUNS=${BOOT_RUNS:-5}
HOST_RUNS=${HOST_RUNS:-5}
BENCH_SAMPLES=${BENCH_SAMPLES:-7}
BENCH_TARGET_MS=${BENCH_TARGET_MS:-40}
VM_TIMEOUT=${VM_TIMEOUT:-1200}
INIT_TIMEOUT_TCG=${INIT_TIMEOUT_TCG:-120}
INIT_TIMEOUT_KVM=${INIT_TIMEOUT_KVM:-600}
QUIET_MAX_WAIT=${QUIET_MAX_WAIT:-120}
QUIET_BUSY_PCT=${QUIET_BUSY_PCT:-25}
KVM_DIAG=${KVM_DIAG:-0}
DISK=${DISK:-0}
DISK_MB=${DISK_MB:-64}
if [ "$DISK" = 1 ]; then
	# The disk rows only: the same machine and drive options as Damselfly's xtask.
	ACCELS=${DISK_ACCELS:-tcg}
	ALT_FLAVOR=""
	HOST_RUNS=0
	BOOT_RUNS=0
	KVM_DIAG=0
fi
export BENCH_SAMPLES BENCH_TARGET_MS

B=build
LOGS=logs
RUNS=$B/runs
RESULTS=results
if [ "$DISK" = 1 ]; then
	LOGS=logs/disk
	RUNS=$B/runs-disk
	RESULTS=results-disk
fi
# The modules the disk mode loads, with what they depend on (Debian builds them as modules).
DISK_MODULES="virtio_blk virtio_pci"
log() { printf '[run.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [ "${REPORT_ONLY:-0}" != 1 ]; then
# ------------------------------------------------------------ 1. packages
need_pkgs=()
command -v qemu-system-x86_64 >/dev/null || need_pkgs+=(qemu-system-x86)
command -v gcc >/dev/null || need_pkgs+=(gcc libc6-dev)
command -v cpio >/dev/null || need_pkgs+=(cpio)
command -v python3 >/dev/null || need_pkgs+=(python3)
{ [ -f /usr/include/liburing.h ] && [ -f /usr/lib/x86_64-linux-gnu/liburing.a ]; } || need_pkgs+=(liburing-dev)
if [ "${SKIP_APT:-0}" != 1 ]; then
	log "apt-get update"
	apt-get update -qq >/dev/null 2>&1 || log "apt-get update reported errors (continuing; only Debian's own sources are used)"
	if [ ${#need_pkgs[@]} -gt 0 ]; then
		log "apt-get install ${need_pkgs[*]}"
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need_pkgs[@]}" >/dev/null
	fi
fi

mkdir -p $B/debs $B/x $B/bin $LOGS $RUNS
kernel_pkg() { apt-cache depends "linux-image-$1" 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}'; }
# pick_modules PKG_DIR DEST NAME...: copy the named modules and their dependencies
# (from each .ko's modinfo 'depends=') into DEST, and write DEST/order, dependencies first.
pick_modules() {
	python3 - "$@" <<'PY'
import os, re, shutil, sys
root, dest, want = sys.argv[1], sys.argv[2], sys.argv[3:]
path = {}
for d, _, files in os.walk(root):
    for f in files:
        if f.endswith(".ko"):
            path[f[:-3].replace("-", "_")] = os.path.join(d, f)
order = []
def visit(m):
    if m in order:
        return
    if m not in path:
        sys.exit("module %s not in %s (built in?)" % (m, root))
    info = re.search(rb"\x00depends=([^\x00]*)\x00", open(path[m], "rb").read())
    for dep in (info.group(1).decode().split(",") if info else []):
        if dep:
            visit(dep.replace("-", "_"))
    order.append(m)
for m in want:
    visit(m)
os.makedirs(dest, exist_ok=True)
for m in order:
    shutil.copy(path[m], os.path.join(dest, m + ".ko"))
open(os.path.join(dest, "order"), "w").write("\n".join(order) + "\n")
print(" ".join(order))
PY
}
# fetch_kernel FLAVOR DEST_VMLINUZ -> prints "PKG VERSION"
fetch_kernel() {
	local pkg deb
	pkg=$(kernel_pkg "$1")
	[ -n "$pkg" ] || { echo "cannot resolve linux-image-$1 via apt-cache" >&2; return 1; }
	if [ "${SKIP_APT:-0}" != 1 ] || ! ls $B/debs/"${pkg}"_*.deb >/dev/null 2>&1; then
		(cd $B/debs && apt-get download "$pkg" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2 || true)
	fi
	deb=$(ls -t $B/debs/"${pkg}"_*.deb | head -1)
	rm -rf "$B/x/$pkg"
	dpkg-deb -x "$deb" "$B/x/$pkg"
	cp "$B/x/$pkg"/boot/vmlinuz-* "$2"
	if [ "$DISK" = 1 ] && [ "$2" = $B/vmlinuz ]; then
		rm -rf $B/modules
		log "modules for the disk mode: $(pick_modules "$B/x/$pkg/lib/modules" $B/modules $DISK_MODULES)"
	fi
	# keep only boot/ (vmlinuz, config); other modules are not used
	find "$B/x/$pkg" -mindepth 1 -maxdepth 1 ! -name boot -exec rm -rf {} +
	echo "$pkg $(dpkg-deb -f "$deb" Version)"
}
log "fetching linux-image-$FLAVOR"
read -r KPKG KVER < <(fetch_kernel "$FLAVOR" $B/vmlinuz)
if [ "${SKIP_APT:-0}" != 1 ] || ! ls $B/debs/busybox-static_*.deb >/dev/null 2>&1; then
	(cd $B/debs && apt-get download busybox-static 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2 || true)
fi
BBDEB=$(ls -t $B/debs/busybox-static_*.deb | head -1)
rm -rf $B/x/busybox
dpkg-deb -x "$BBDEB" $B/x/busybox
BBVER=$(dpkg-deb -f "$BBDEB" Version)
log "kernel $KPKG $KVER ($(stat -c %s $B/vmlinuz) bytes), busybox $BBVER"
AKPKG="" AKVER=""
if [ -n "$ALT_FLAVOR" ]; then
	log "fetching linux-image-$ALT_FLAVOR (boot time only)"
	read -r AKPKG AKVER < <(fetch_kernel "$ALT_FLAVOR" $B/vmlinuz-alt) || ALT_FLAVOR=""
fi
printf 'KPKG=%q\nKVER=%q\nBBVER=%q\nFLAVOR=%q\nACCELS=%q\nBENCH_SAMPLES=%q\nBENCH_TARGET_MS=%q\nAKPKG=%q\n' \
	"$KPKG" "$KVER" "$BBVER" "$FLAVOR" "$ACCELS" "$BENCH_SAMPLES" "$BENCH_TARGET_MS" "$AKPKG" > $B/versions.env

# ------------------------------------------------------------ 2. benchmarks
CFLAGS="-O2 -Wall -Wextra -static"
for b in b_syscall b_timer b_uring b_ipc b_spawn b_file b_tcp b_disk; do
	gcc $CFLAGS -o $B/bin/$b bench/$b.c -luring -lpthread
done
gcc -O2 -static -nostdlib -o $B/bin/tiny bench/tiny.c
log "built $(ls $B/bin | tr '\n' ' ')"

# ------------------------------------------------------------ 3. initramfs
R=$B/rootfs
rm -rf $R
mkdir -p $R/bin $R/bench $R/proc $R/sys $R/dev $R/tmp $R/etc
cp $B/x/busybox/bin/busybox $R/bin/busybox
ln -s busybox $R/bin/sh
cp guest/init $R/init
chmod 755 $R/init
cp $B/bin/* $R/bench/
if [ "$DISK" = 1 ]; then
	mkdir -p $R/lib/modules
	cp $B/modules/* $R/lib/modules/
fi
mknod -m 600 $R/dev/console c 5 1
mknod -m 666 $R/dev/null c 1 3
INITRD=$B/initramfs.cpio
[ "$DISK" = 1 ] && INITRD=$B/initramfs-disk.cpio
(cd $R && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet) > $INITRD
log "initramfs $(stat -c %s $INITRD) bytes (uncompressed newc)"

mkdir -p $LOGS $RUNS
rm -f $RUNS/*.json $LOGS/*.log

# ------------------------------------------------------------ 4. host runs
for i in $(seq 1 "$HOST_RUNS"); do
	d=$(mktemp -d /dev/shm/linuxvm-bench.XXXXXX)
	log "host run $i/$HOST_RUNS"
	{
		python3 tools/harness.py quiet --max-wait "$QUIET_MAX_WAIT" --threshold "$QUIET_BUSY_PCT"
		for b in "b_syscall" "b_timer 300" "b_uring" "b_ipc" "b_spawn $B/bin/tiny" "b_file $d" "b_tcp"; do
			set -- $b
			echo "@@RUN $*"
			rc=0
			$B/bin/"$@" 2>&1 || rc=$?
			echo "@@EXIT $1 $rc"
		done
	} > $LOGS/host-$i.log
	rm -rf "$d"
	python3 tools/harness.py host --log $LOGS/host-$i.log --out $RUNS/host-$i.json >&2
done

# ------------------------------------------------------------ 5. VM runs
DISK_IMG=${DISK_IMG:-$B/disk.img}
# Damselfly's disk machine (xtask): q35 with qboot, the image as a virtio-blk PCI device.
DISK_PRE="-M q35 -bios /usr/share/qemu/qboot.rom"
DISK_POST="-drive if=none,id=disk0,format=raw,file=$DISK_IMG -device virtio-blk-pci,drive=disk0"
vm() { # accel mode idx init_timeout [kernel flavour pkg tag]
	local k=${5:-$B/vmlinuz} fl=${6:-$FLAVOR} pk=${7:-$KPKG $KVER} tag=${8:-}
	local extra=()
	if [ "$2" = disk ]; then
		# a fresh, fully allocated (not sparse) image for every run
		dd if=/dev/zero of=$DISK_IMG bs=1M count="$DISK_MB" status=none
		extra=(--qemu-pre "$DISK_PRE" --qemu-post "$DISK_POST")
	fi
	python3 tools/harness.py vm --accel "$1" --mode "$2" --kernel "$k" "${extra[@]}" \
		--initrd $INITRD --timeout "$VM_TIMEOUT" --init-timeout "$4" \
		--quiet-max-wait "$QUIET_MAX_WAIT" --quiet-threshold "$QUIET_BUSY_PCT" \
		--flavor "$fl" --kernel-pkg "$pk" \
		--append "bench_samples=$BENCH_SAMPLES bench_target_ms=$BENCH_TARGET_MS" \
		--log $LOGS/vm-$1-$2$tag-$3.log --out $RUNS/vm-$1-$2$tag-$3.json >&2
}
alive_accels=""
for acc in $ACCELS; do
	if [ "$acc" = kvm ]; then
		it=$INIT_TIMEOUT_KVM; nb=${KVM_BOOT_RUNS:-$BOOT_RUNS}; nf=${KVM_FULL_RUNS:-$FULL_RUNS}
		if [ ! -w /dev/kvm ]; then log "kvm: /dev/kvm not usable, skipping"; continue; fi
	else
		it=$INIT_TIMEOUT_TCG; nb=$BOOT_RUNS; nf=$FULL_RUNS
	fi
	alive=1
	for i in $(seq 1 "$nb"); do
		log "$acc boot-only run $i/$nb"
		if ! vm "$acc" boot "$i" "$it"; then
			[ "$i" = 1 ] && { alive=0; log "$acc: first boot failed, skipping the rest of $acc"; break; }
		fi
	done
	[ $alive = 1 ] || continue
	alive_accels="$alive_accels $acc"
	mode=full
	[ "$DISK" = 1 ] && mode=disk
	for i in $(seq 1 "$nf"); do
		log "$acc $mode run $i/$nf"
		vm "$acc" $mode "$i" "$it" || true
	done
done
if [ -n "$ALT_FLAVOR" ]; then
	for acc in $alive_accels; do
		[ "$acc" = kvm ] && it=$INIT_TIMEOUT_KVM || it=$INIT_TIMEOUT_TCG
		for i in $(seq 1 "$BOOT_RUNS"); do
			log "$acc boot-only run $i/$BOOT_RUNS with linux-image-$ALT_FLAVOR"
			vm "$acc" boot "$i" "$it" $B/vmlinuz-alt "$ALT_FLAVOR" "$AKPKG $AKVER" "-$ALT_FLAVOR" || true
		done
	done
fi

# Optional: where does a stock kernel stop under this machine's kvm? (verbose boots)
if [ "$KVM_DIAG" = 1 ] && [ -w /dev/kvm ]; then
	rm -rf $LOGS/kvm-diag $B/kvm-diag
	mkdir -p $LOGS/kvm-diag $B/kvm-diag
	for cpu in qemu64 qemu64,-cx16 qemu64,-cx16,-xsave; do
		extra=""; [ "$cpu" = qemu64,-cx16,-xsave ] && extra=" noxsave"
		log "kvm diagnostic boot -cpu $cpu (verbose, -smp 1, up to 420 s)"
		python3 tools/harness.py vm --accel kvm --cpu "$cpu" --smp 1 --mode boot \
			--base-append "console=ttyS0 earlyprintk=serial,ttyS0 panic=-1$extra" \
			--kernel $B/vmlinuz --initrd $B/initramfs.cpio --timeout 420 --init-timeout 420 \
			--quiet-max-wait 0 \
			--log "$LOGS/kvm-diag/cpu-${cpu//,/_}.log" --out "$B/kvm-diag/cpu-${cpu//,/_}.json" >&2 || true
	done
fi

else
	# shellcheck disable=SC1091
	. $B/versions.env
	INITRD=$B/initramfs.cpio
	[ "$DISK" = 1 ] && INITRD=$B/initramfs-disk.cpio
fi # REPORT_ONLY

# ------------------------------------------------------------ 6. report
kcomp() { grep -hoE '^CONFIG_KERNEL_(XZ|GZIP|LZ4|ZSTD|LZMA|LZO|BZIP2)=y' $B/x/"$1"/boot/config-* 2>/dev/null | sed -E 's/CONFIG_KERNEL_(.*)=y/\1/' | head -1; }
KCOMP_NOTE="vmlinuz of $KPKG is $(kcomp "$KPKG")-compressed ($(stat -c %s $B/vmlinuz) bytes)"
if [ -n "${AKPKG:-}" ] && [ -f $B/vmlinuz-alt ]; then
	KCOMP_NOTE="$KCOMP_NOTE; the boot-time-only $AKPKG is $(kcomp "$AKPKG")-compressed ($(stat -c %s $B/vmlinuz-alt) bytes): compare 'guest uptime at init' (time inside Linux) with 'QEMU start -> init line' (adds firmware, setup code and decompression, which is slow under TCG)"
fi
DIAG_NOTE=""
if ls $LOGS/kvm-diag/*.log >/dev/null 2>&1; then
	DIAG_NOTE=$(for f in $LOGS/kvm-diag/*.log; do
		last=$(grep -E '^ *[0-9.]+ \[' "$f" | tail -1 | sed -E 's/^ *([0-9.]+) /\1 s: /' | cut -c1-120)
		err=$(grep -m1 -o 'KVM internal error.*' "$f" || echo 'no KVM error seen')
		code=$(grep -o 'Code=.*' "$f" | head -1 | grep -o '<[0-9a-f]*>.\{0,15\}')
		case "$code" in
		"<f0> 48 0f c7"*) code="$code (lock cmpxchg16b)" ;;
		"<48> 0f ae 2f"*) code="$code (xrstor64 [rdi])" ;;
		"<cc>"*) code="$code (int3, the kernel's int3 self-test)" ;;
		esac
		printf '`%s`: %s; last kernel line (host time since QEMU start) %s; instruction bytes at RIP %s. ' "$f" "$err" "${last:-none}" "${code:-none}"
	done)
fi
HOST_KERNEL=$(uname -r) HOST_CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //') \
HOST_NCPU=$(nproc) HOST_MEM=$(free -g | awk '/Mem:/{print $2" GiB"}') \
HOST_KVM=$(ls /sys/module 2>/dev/null | grep -E '^kvm' | tr '\n' ' ') \
QEMU_VER=$(qemu-system-x86_64 --version | head -1) GCC_VER=$(gcc --version | head -1) \
URING_VER=$(dpkg-query -W -f='${Version}' liburing-dev 2>/dev/null || echo '?') \
KPKG=$KPKG KVER=$KVER BBVER=$BBVER ACCELS=$ACCELS FLAVOR=$FLAVOR DIAG_NOTE=$DIAG_NOTE KCOMP_NOTE=$KCOMP_NOTE \
KSIZE=$(stat -c %s $B/vmlinuz) ISIZE=$(stat -c %s $INITRD) \
DISK=$DISK DISK_MB=$DISK_MB DISK_MODS="$(tr '\n' ' ' < $B/modules/order 2>/dev/null || true)" \
HOST_VULN=$(for f in /sys/devices/system/cpu/vulnerabilities/*; do v=$(cat "$f"); [ "$v" != "Not affected" ] && printf '%s: %s; ' "$(basename "$f")" "$v"; done; true) \
python3 - "$B/meta.json" <<'PY'
import json, os, sys, datetime
e = os.environ
meta = {
 "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
 "accels": e["ACCELS"].split(), "flavor": e["FLAVOR"],
 "samples": int(e["BENCH_SAMPLES"]), "target_ms": float(e["BENCH_TARGET_MS"]),
 "setup": [
  ("guest kernel package", "%s %s (Debian; vmlinuz %s bytes)" % (e["KPKG"], e["KVER"], e["KSIZE"])),
  ("initramfs", "cpio newc, uncompressed, %s bytes: busybox-static %s, /init is a busybox sh script; static glibc benchmarks in /bench" % (e["ISIZE"], e["BBVER"])),
  ("QEMU", e["QEMU_VER"]),
  ("host kernel", e["HOST_KERNEL"]),
  ("host CPU", "%s, %s CPUs, %s RAM" % (e["HOST_CPU"], e["HOST_NCPU"], e["HOST_MEM"])),
  ("host kvm modules", e["HOST_KVM"]),
  ("host mitigations in force", e["HOST_VULN"] or "none reported"),
  ("benchmark build", "%s, -O2 -static (glibc), liburing-dev %s" % (e["GCC_VER"], e["URING_VER"])),
 ],
 "caveats": [
  "The host is itself a virtual machine (kernel %s, CPU model 'AMD EPYC' with the hypervisor flag, no svm/vmx), and its /dev/kvm is provided by the kvm_pvm module (page-table-based nested virtualization). Under it a stock (non-PVM) Linux kernel is evidently not run natively: it runs roughly 100x slower than under TCG (about 5 s to reach the kernel's real-mode setup code and about 130 s to decompress the kernel, versus ~3.4 s for a whole TCG boot to init), which is consistent with KVM's instruction emulator executing guest kernel code, and it stops with 'KVM internal error. Suberror: 1 / emulation failure' at an instruction that emulator lacks (lock cmpxchg16b, ~3 min in). The kvm failure listed above is this, not a harness problem; logs/kvm-diag/ (KVM_DIAG=1) shows three verbose boots, each stopping at a different unsupported instruction." % e["HOST_KERNEL"],
  "'host' numbers are therefore those of a guest too, and every QEMU guest here is nested.",
  "The machine has 2 CPUs and may be shared with other work; QEMU's 2 vCPU threads plus its I/O thread share them with whatever else runs. Before each run the harness waits (bounded) for the host to be idle and records the host's state (table above).",
  "Cross-CPU wake-ups are expensive on this host even without QEMU: waking a thread on the other (idle) CPU costs ~50 us here (a pipe round trip between CPUs is ~100 us on the host; a sample where both CPUs stayed busy showed 7 us). Under TCG, cross-vCPU round trips were ~0.2-0.3 ms with the host idle, but reached 2-7 ms in trial runs while other work (another QEMU) was running on the machine; compare medians, read min..max, and check the host state per run.",
  "TCG runs use QEMU's default multi-threaded TCG for an x86_64 guest on an x86_64 host, with the default qemu64 CPU model; the guest then uses the HPET as clocksource, so even vDSO clock_gettime reads an emulated device (microseconds per call). Guest time comes from the host clock, so TCG figures are wall-clock costs of emulated code.",
  "Boot time is measured on the host from just before QEMU is spawned to the arrival of init's first serial line (@@INIT-START) and to QEMU's exit after 'poweroff -f' in a guest that only boots; it includes QEMU start-up, SeaBIOS, the Linux real-mode setup and the decompression of vmlinuz.",
  "Kernel image: " + e["KCOMP_NOTE"] + ".",
  "'host' runs execute the same static binaries directly on the host, in a tmpfs under /dev/shm; rows 7 and 8 are included for the host too, for reference.",
 ] + ([ "kvm diagnostic boots (KVM_DIAG=1, verbose, -smp 1): " + e["DIAG_NOTE"] ] if e.get("DIAG_NOTE") else []),
}
if e["DISK"] == "1":
    meta["set"] = "disk"
    meta["setup"].append(("disk", "%s MiB raw image (build/disk.img), written with zeros before every run (not sparse); QEMU's default cache mode (writeback: the image sits in the host's page cache). Guest modules loaded by init with insmod: %s" % (e["DISK_MB"], e["DISK_MODS"])))
    meta["caveats"] = [c for c in meta["caveats"] if not c.startswith(("Boot time", "'host' runs", "Kernel image"))] + [
        "Disk rows: bench/b_disk.c on /dev/vda opened O_RDWR|O_DIRECT (no guest page cache). Random reads pick 4 KiB blocks over the whole disk from a splitmix64 stream with a fixed seed (the same blocks in the same order on every system); QD1 is one pread() at a time, QD32 keeps 32 IORING_OP_READs in flight through io_uring (raw syscalls, one io_uring_enter per batch of completions, each completion resubmitted at once). Sequential rows move 1 MiB per pread()/pwrite() over [1 MiB, end) and never write the first MiB. Per sample: 1024 reads (QD1), 8192 reads (QD32), 256 MiB (sequential, 256 ops wrapping over the region); 1 warm-up sample, then BENCH_SAMPLES timed ones. Writes are not followed by a flush: they end in QEMU's writeback cache, as they would for any guest with this drive setup.",
        "The machine is q35 with qboot as firmware (QEMU's -kernel/-initrd loading through fw_cfg), as Damselfly's disk boot; the other tables of this harness use the default pc machine with SeaBIOS.",
    ]
json.dump(meta, open(sys.argv[1], "w"), indent=1)
PY
python3 tools/harness.py report --runs $RUNS --meta $B/meta.json --json $RESULTS.json --md $RESULTS.md >&2
log "done: $HERE/$RESULTS.md"
