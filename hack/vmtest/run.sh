#!/usr/bin/env bash
# vmtest: run the real-kernel test matrix (test/vm) on this machine's kernel
# and inside a QEMU VM booted on Debian's 6.12 cloud kernel, which has the
# netkit, ipvlan and dummy devices this machine's kernel may lack.
#
#   hack/vmtest/run.sh [all|host|vm|tools|kernel]
#     all     host then vm (default; what `make test-vm` runs)
#     host    the suite on the running kernel; missing devices skip by name
#     vm      build kernel + initramfs, boot, run the suite; nothing may skip
#     tools   only build the binaries the suite needs into $VMTEST_CACHE/bin
#     kernel  only resolve, download and unpack the kernel
#
# Environment (all optional):
#   VMTEST_KERNEL_DEB   path to a linux-image .deb to boot instead of the newest
#   VMTEST_KERNEL_PKG   Debian package name to boot, e.g.
#                       linux-image-6.12.115+deb12-cloud-amd64-unsigned
#   VMTEST_RUN          -test.run regexp for both runs (default: everything)
#   VMTEST_TIMEOUT      seconds the VM may run before it is killed (default 300)
#   VMTEST_CACHE        cache directory (default <repo>/.cache/vmtest)
#   VMTEST_SMP          guest CPUs (default 1)
#   VMTEST_ACCEL        QEMU accelerator (default tcg; kvm only where it works)
#   MACGUARD_BIN        plugin binary to test (default: `make build`, bin/macguard)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE=${VMTEST_CACHE:-$ROOT/.cache/vmtest}
BIN=$CACHE/bin
TIMEOUT=${VMTEST_TIMEOUT:-300}
# One vCPU runs the suite as fast as two under TCG and leaves a host core
# free on a two-core machine.
SMP=${VMTEST_SMP:-1}
GO=${GO:-go}
# Loaded into the guest in this order after their dependencies; bridge
# pulls in stp and llc. Modules the kernel has built in are skipped.
MODULES=(veth macvlan ipvlan dummy bridge)
# The kernel family the issue asks for; the newest available N is used.
KERNEL_PATTERN='^linux-image-6\.12\.[0-9]+\+deb12-cloud-amd64-unsigned$'
MARKER=MACGUARD-VMTEST-RESULT

log() { printf 'vmtest: %s\n' "$*" >&2; }
# phase runs a step and reports how long it took, for docs/vmtest.md.
phase() {
	local name=$1 t0=$SECONDS
	shift
	"$@"
	log "$name: $((SECONDS - t0))s"
}
die() { log "FAIL: $*"; exit 1; }

mkdir -p "$CACHE" "$BIN"
# One run at a time per cache: the binaries, the initramfs and the console
# log are shared files.
exec 9>"$CACHE/.lock"
if ! flock -n 9; then
	log "waiting for another vmtest run using $CACHE"
	flock -w 900 9 || die "another vmtest run held $CACHE for 15 minutes"
fi

# ---------------------------------------------------------------- packages

pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'; }

# apt_update refreshes the package lists unless they were refreshed in the
# last hour: the newest kernel can only be found with fresh lists, but
# paying for an update on every run is not needed.
apt_update() {
	local stamp=$CACHE/apt-updated
	if [ -n "$(find "$stamp" -mmin -60 2>/dev/null)" ]; then
		return 0
	fi
	[ "$(id -u)" = 0 ] || { log "cannot refresh the package lists without root"; return 1; }
	log "apt-get update"
	apt-get update -qq && touch "$stamp"
}

ensure_packages() {
	# zstd: kernels that ship .ko.zst modules (add_module) need it; Debian's
	# 6.12 uses .ko.xz, but VMTEST_KERNEL_DEB may name any kernel.
	local want=(qemu-system-x86 busybox-static xz-utils zstd kmod) missing=() p
	for p in "${want[@]}"; do pkg_installed "$p" || missing+=("$p"); done
	[ ${#missing[@]} -eq 0 ] && return 0
	[ "$(id -u)" = 0 ] || die "missing Debian packages: ${missing[*]} (run as root to install them)"
	log "installing ${missing[*]}"
	# Force the update: the lists may be fresh but predate these packages.
	apt-get update -qq && touch "$CACHE/apt-updated"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# ---------------------------------------------------------------- kernel

# resolve_kernel_deb prints the path of the kernel .deb to boot, downloading
# it into the cache when needed.
resolve_kernel_deb() {
	if [ -n "${VMTEST_KERNEL_DEB:-}" ]; then
		[ -f "$VMTEST_KERNEL_DEB" ] || die "VMTEST_KERNEL_DEB=$VMTEST_KERNEL_DEB does not exist"
		readlink -f "$VMTEST_KERNEL_DEB"
		return
	fi
	local debs=$CACHE/debs pkg=${VMTEST_KERNEL_PKG:-} cached
	mkdir -p "$debs"
	if ! apt_update; then
		log "could not refresh the package lists; trying the cache"
	fi
	if [ -z "$pkg" ]; then
		pkg=$(apt-cache search --names-only "$KERNEL_PATTERN" | awk '{print $1}' | sort -V | tail -1)
	fi
	if [ -z "$pkg" ]; then
		# Offline, or the archive moved on: a cached kernel still tests.
		cached=$(ls "$debs"/linux-image-6.12.*+deb12-cloud-amd64-unsigned_*.deb 2>/dev/null | sort -V | tail -1 || true)
		[ -n "$cached" ] || die "no package matches $KERNEL_PATTERN (apt-get update?) and none is cached in $debs"
		log "no kernel package found by apt; using cached $(basename "$cached")"
		echo "$cached"
		return
	fi
	cached=$(ls "$debs/${pkg}"_*.deb 2>/dev/null | sort -V | tail -1 || true)
	if [ -z "$cached" ]; then
		log "downloading $pkg"
		# apt-get download drops privileges to _apt, which cannot write
		# the cache; the warning about downloading as root is expected.
		(cd "$debs" && apt-get download -q "$pkg" 2>&1 | grep -v 'unsandboxed as root' >&2 || true)
		cached=$(ls "$debs/${pkg}"_*.deb 2>/dev/null | sort -V | tail -1 || true)
		[ -n "$cached" ] || die "apt-get download $pkg produced no .deb in $debs"
		# Keep one kernel: older ones leave the archive anyway.
		find "$debs" -maxdepth 1 -name 'linux-image-*.deb' ! -name "$(basename "$cached")" -delete
	fi
	echo "$cached"
}

# module_file finds a module's file by name; module names and file names
# may differ in '-' versus '_'.
module_file() {
	local mods=$1 name=$2
	find "$mods" -name "${name}.ko*" -o -name "${name//_/-}.ko*" -o -name "${name//-/_}.ko*" | head -1
}

# add_module appends name and, first, its dependencies (modinfo depends) to
# the global LOAD list, decompressing each into $out.
add_module() {
	local mods=$1 out=$2 name=$3 f dep
	for dep in "${LOAD[@]:-}"; do [ "$dep" = "$name" ] && return 0; done
	if grep -qE "/${name//[-_]/[-_]}\.ko$" "$mods/modules.builtin" 2>/dev/null; then
		return 0 # built in: nothing to load
	fi
	f=$(module_file "$mods" "$name")
	[ -n "$f" ] || die "module $name is neither built into nor shipped with this kernel"
	for dep in $(modinfo -F depends "$f" | tr ',' ' '); do
		add_module "$mods" "$out" "$dep"
	done
	case "$f" in
	*.ko.xz) xz -dc "$f" >"$out/$name.ko" ;;
	*.ko.gz) gzip -dc "$f" >"$out/$name.ko" ;;
	*.ko.zst) zstd -qdc "$f" >"$out/$name.ko" ;;
	*.ko) cp "$f" "$out/$name.ko" ;;
	esac
	LOAD+=("$name")
}

# prepare_kernel unpacks the .deb (once per package file) into
# $CACHE/kernel/<deb>/ with vmlinuz, modules/*.ko and modules/load.order,
# and sets KDIR.
prepare_kernel() {
	local deb=$1 tmp mods rel
	KDIR=$CACHE/kernel/$(basename "$deb" .deb)
	# Keep one unpacked kernel, like one .deb.
	find "$CACHE/kernel" -mindepth 1 -maxdepth 1 ! -path "$KDIR" -exec rm -rf {} + 2>/dev/null || true
	if [ -f "$KDIR/.done" ]; then
		return 0
	fi
	log "unpacking $(basename "$deb")"
	rm -rf "$KDIR" && mkdir -p "$KDIR/modules"
	tmp=$(mktemp -d "$CACHE/unpack.XXXXXX")
	dpkg-deb -x "$deb" "$tmp"
	cp "$(ls "$tmp"/boot/vmlinuz-* | head -1)" "$KDIR/vmlinuz" || die "no boot/vmlinuz-* in $deb"
	mods=$(ls -d "$tmp"/lib/modules/* | head -1)
	rel=$(basename "$mods")
	echo "$rel" >"$KDIR/release"
	grep -q '^CONFIG_NETKIT=y' "$tmp/boot/config-$rel" ||
		log "warning: $rel is not built with CONFIG_NETKIT=y; the netkit cases will fail in the VM"
	LOAD=()
	for m in "${MODULES[@]}"; do add_module "$mods" "$KDIR/modules" "$m"; done
	printf '%s\n' "${LOAD[@]}" >"$KDIR/modules/load.order"
	rm -rf "$tmp"
	touch "$KDIR/.done"
}

# ---------------------------------------------------------------- binaries

modversion() { (cd "$ROOT" && $GO list -m -f '{{.Version}}' "$1"); }

build_tools() {
	local cni plugins
	cd "$ROOT"
	if [ -z "${MACGUARD_BIN:-}" ]; then
		make --no-print-directory build >&2
		MACGUARD_BIN=$ROOT/bin/macguard
	fi
	[ -x "$MACGUARD_BIN" ] || die "MACGUARD_BIN=$MACGUARD_BIN is not an executable"
	export MACGUARD_BIN
	# The reference tools are pinned to the versions go.mod already uses,
	# so the chain test speaks the same libcni as the plugin.
	cni=$(modversion github.com/containernetworking/cni)
	plugins=$(modversion github.com/containernetworking/plugins)
	log "building test binaries (cnitool $cni, host-local $plugins)"
	export CGO_ENABLED=0
	GOBIN=$BIN $GO install -trimpath "github.com/containernetworking/cni/cnitool@$cni"
	GOBIN=$BIN $GO install -trimpath "github.com/containernetworking/plugins/plugins/ipam/host-local@$plugins"
	$GO build -trimpath -o "$BIN/netkit-cni" ./test/fixtures/netkit-cni
	$GO test -c -trimpath -o "$BIN/vm.test" ./test/vm
}

# ---------------------------------------------------------------- runs

run_host() {
	[ "$(id -u)" = 0 ] || die "the suite creates network namespaces and must run as root"
	log "suite on the host kernel $(uname -r) (devices it lacks skip by name)"
	cd "$ROOT"
	# The compiled binary is the one the VM runs, so both runs test the same code.
	(cd "$ROOT/test/vm" && VMTEST_BIN_DIR=$BIN "$BIN/vm.test" -test.v -test.count=1 \
		-test.timeout=5m ${VMTEST_RUN:+-test.run "$VMTEST_RUN"})
}

build_initramfs() {
	local stage=$CACHE/initramfs
	rm -rf "$stage"
	mkdir -p "$stage"/{bin,lib/modules,opt/cni/bin,vmtest,etc,var/lib}
	cp /bin/busybox "$stage/bin/busybox"
	cp "$ROOT/hack/vmtest/init" "$stage/init"
	chmod 0755 "$stage/init"
	cp "$KDIR"/modules/*.ko "$KDIR/modules/load.order" "$stage/lib/modules/"
	cp "$MACGUARD_BIN" "$stage/opt/cni/bin/macguard"
	cp "$BIN/netkit-cni" "$BIN/host-local" "$BIN/cnitool" "$stage/opt/cni/bin/"
	cp "$BIN/vm.test" "$stage/vmtest/"
	# The guest's /init sources this; the guest timeout is shorter than
	# the host's so a hung test still prints Go's goroutine dump and the
	# marker instead of being killed silently.
	cat >"$stage/vmtest/env" <<-EOF
		export MACGUARD_VM=1
		export MACGUARD_BIN=/opt/cni/bin/macguard
		export VMTEST_BIN_DIR=/opt/cni/bin
		export VMTEST_GUEST_TIMEOUT=$(( TIMEOUT > 90 ? TIMEOUT - 30 : TIMEOUT * 2 / 3 ))s
		export VMTEST_RUN='$(sed "s/'/'\\\\''/g" <<<"${VMTEST_RUN:-}")'
	EOF
	# Uncompressed: gzip would save a few MB of host memory but cost seconds
	# of decompression in the emulated guest.
	(cd "$stage" && find . | /bin/busybox cpio -o -H newc 2>/dev/null) >"$CACHE/initramfs.cpio"
}

boot() {
	local log=$CACHE/console.log rc line exitcode kernel
	# TCG by default: it is what CI has, and on this machine kind /dev/kvm
	# exists but a KVM guest hangs at boot. VMTEST_ACCEL=kvm where it works.
	local accel=${VMTEST_ACCEL:-tcg}
	log "booting $(cat "$KDIR/release") under QEMU (accel $accel, ${SMP} CPU, timeout ${TIMEOUT}s)"
	set +e
	# No NIC: every test stays inside the guest's own namespaces. Console
	# on the serial port, streamed to the terminal and kept for parsing.
	timeout -k 10 "$TIMEOUT" qemu-system-x86_64 -machine "accel=$accel" -m 512 -smp "$SMP" -nographic -no-reboot -nic none \
		-kernel "$KDIR/vmlinuz" -initrd "$CACHE/initramfs.cpio" \
		-append "console=ttyS0 quiet panic=-1" </dev/null | tee "$log" |
		sed -u -e 's/\r$//' -e 's/\x1b\[[0-9;?]*[a-zA-Z]//g' -e 's/\x1bc//g' # SeaBIOS would clear the terminal
	rc=${PIPESTATUS[0]}
	set -e
	# pipe through tr: the serial console ends lines with \r\n.
	line=$(tr -d '\r' <"$log" | grep -E "^$MARKER exit=[0-9]+ kernel=" | tail -1 || true)
	if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
		die "the VM did not finish within ${TIMEOUT}s (VMTEST_TIMEOUT); console log: $log"
	fi
	if [ -z "$line" ]; then
		die "the VM stopped (qemu exit $rc) without printing the $MARKER marker: the guest crashed or never ran the suite; console log: $log"
	fi
	exitcode=$(sed -E 's/.* exit=([0-9]+) .*/\1/' <<<"$line")
	kernel=$(sed -E 's/.* kernel=(.*)$/\1/' <<<"$line")
	log "kernel that ran the suite: $kernel"
	if tr -d '\r' <"$log" | grep -qE '^\s*--- SKIP'; then
		die "a test skipped inside the VM, where every device must exist; console log: $log"
	fi
	if [ "$exitcode" != 0 ]; then
		die "the suite failed inside the VM (exit $exitcode) on $kernel; console log: $log"
	fi
	if ! tr -d '\r' <"$log" | grep -qE '^--- PASS'; then
		die "the VM suite reported success but ran no test; console log: $log"
	fi
	log "PASS in the VM on $kernel"
}

run_vm() {
	local deb
	local t0=$SECONDS
	deb=$(resolve_kernel_deb)
	log "kernel package: $(basename "$deb")"
	prepare_kernel "$deb"
	log "kernel: $((SECONDS - t0))s"
	phase initramfs build_initramfs
	phase "VM run" boot
}

main() {
	local what=${1:-all} start=$SECONDS
	case "$what" in
	all)
		phase packages ensure_packages
		phase build build_tools
		phase "host run" run_host
		run_vm
		;;
	host)
		phase build build_tools
		phase "host run" run_host
		;;
	vm)
		phase packages ensure_packages
		phase build build_tools
		run_vm
		;;
	tools) build_tools ;;
	kernel)
		local deb
		ensure_packages
		deb=$(resolve_kernel_deb)
		prepare_kernel "$deb"
		log "kernel $(cat "$KDIR/release") in $KDIR"
		;;
	*) die "unknown command $what (want all, host, vm, tools or kernel)" ;;
	esac
	log "$what took $((SECONDS - start))s"
}

main "$@"
