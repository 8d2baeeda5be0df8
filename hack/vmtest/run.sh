#!/usr/bin/env bash
# vmtest: run the real-kernel test matrix (test/vm) on this machine's kernel
# and, with the integration suite (test/integration), inside a QEMU VM booted
# on Debian's 6.12 cloud kernel, which has the netkit, ipvlan and dummy
# devices this machine's kernel may lack.
#
#   hack/vmtest/run.sh [all|host|vm|tools|kernel]
#     all     host then vm (default; what `make test-vm` runs)
#     host    test/vm on the running kernel; missing devices skip by name
#             (test/integration runs on it in `make test-integration`)
#     vm      build kernel + initramfs, boot, run both suites; nothing may skip
#     tools   only build the binaries the suite needs into $VMTEST_CACHE/bin
#     kernel  only resolve, download and unpack the kernel
#     packages  only install the Debian packages the VM run needs (QEMU,
#             busybox, the decompressors, kmod) where missing
#
# Environment (all optional):
#   VMTEST_KERNEL_DEB   path to a linux-image .deb to boot instead of the newest
#   VMTEST_KERNEL_PKG   Debian package name to boot, e.g.
#                       linux-image-6.12.115+deb12-cloud-amd64-unsigned
#   VMTEST_RUN          -test.run regexp for every run (default: everything)
#   VMTEST_SKIP         -test.skip regexp for the VM run: tests that run only
#                       on the host (test/kubevirt's real guest: QEMU's TCG
#                       inside this TCG guest is far too slow)
#   VMTEST_TIMEOUT      seconds the VM may run before it is killed (default 300)
#   VMTEST_CACHE        cache directory (default <repo>/.cache/vmtest)
#   VMTEST_SMP          guest CPUs (default 1)
#   VMTEST_MEM          guest memory in MiB (default 512)
#   VMTEST_SUITES       the suites to run, e.g. "kubevirt" (default "vm integration");
#                       a suite is ./test/<suite>, its own Go module or not
#   VMTEST_ACCEL        QEMU accelerator (default tcg; kvm only where it works)
#   MACGUARD_BIN        plugin binary to test (default: `make build`, bin/macguard)
#   MACGUARDCTL_BIN     macguardctl to test (default: the one next to MACGUARD_BIN)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=../lib/errexit.sh
. "$ROOT/hack/lib/errexit.sh"
# shellcheck source=../lib/deb.sh
. "$ROOT/hack/lib/deb.sh"
CACHE=${VMTEST_CACHE:-$ROOT/.cache/vmtest}
BIN=$CACHE/bin
TIMEOUT=${VMTEST_TIMEOUT:-300}
# One vCPU runs the suite as fast as two under TCG and leaves a host core
# free on a two-core machine.
SMP=${VMTEST_SMP:-1}
MEM=${VMTEST_MEM:-512}
GO=${GO:-go}
# Loaded into the guest in this order after their dependencies; bridge
# pulls in stp and llc. Modules the kernel has built in are skipped.
# virtio_net (with failover, net_failover) is for test/kubevirt's real
# guest (hack/kubevirt/guest.sh), which boots this kernel with a NIC.
MODULES=(veth macvlan ipvlan dummy bridge tun virtio_net)
# The kernel family the issue asks for; the newest available N is used.
KERNEL_PATTERN='^linux-image-6\.12\.[0-9]+\+deb12-cloud-amd64-unsigned$'
MARKER=MACGUARD-VMTEST-RESULT
SUITE_MARKER=MACGUARD-VMTEST-SUITE
# The test binaries the guest runs, in order: <suite>.test built from
# ./test/<suite>. Each one's result counts on its own (boot).
# test/kubevirt (make test-kubevirt) runs in a boot of its own.
read -ra SUITES <<<"${VMTEST_SUITES:-vm integration}"

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
	for p in "${want[@]}"; do deb_installed "$p" || missing+=("$p"); done
	[ ${#missing[@]} -eq 0 ] && return 0
	log "installing ${missing[*]}"
	# deb_install updates the lists first: they may be fresh but predate
	# these packages.
	deb_install "${missing[@]}"
	touch "$CACHE/apt-updated"
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
		# A failing apt-cache is the offline case below, not a stop.
		pkg=$( { apt-cache search --names-only "$KERNEL_PATTERN" || true; } | awk '{print $1}' | sort -V | tail -1)
	fi
	if [ -z "$pkg" ]; then
		# Offline, or the archive moved on: a cached kernel still tests.
		cached=$(find "$debs" -maxdepth 1 -name 'linux-image-6.12.*+deb12-cloud-amd64-unsigned_*.deb' | sort -V | tail -1)
		[ -n "$cached" ] || die "no package matches $KERNEL_PATTERN (apt-get update?) and none is cached in $debs"
		log "no kernel package found by apt; using cached $(basename "$cached")"
		echo "$cached"
		return
	fi
	cached=$(find "$debs" -maxdepth 1 -name "${pkg}_*.deb" | sort -V | tail -1)
	if [ -z "$cached" ]; then
		log "downloading $pkg"
		# apt-get download drops privileges to _apt, which cannot write
		# the cache; the warning about downloading as root is expected.
		(cd "$debs" && { apt-get download -q "$pkg" 2>&1 | grep -v 'unsandboxed as root' >&2 || true; })
		cached=$(find "$debs" -maxdepth 1 -name "${pkg}_*.deb" | sort -V | tail -1)
		[ -n "$cached" ] || die "apt-get download $pkg produced no .deb in $debs"
		# Keep one kernel: older ones leave the archive anyway.
		find "$debs" -maxdepth 1 -name 'linux-image-*.deb' ! -name "$(basename "$cached")" -delete
	fi
	echo "$cached"
}

# module_file finds a module's file by name; module names and file names
# may differ in '-' versus '_'. Nothing when there is none (the caller
# says so): neither find nor a find that head -1 cut short (SIGPIPE under
# pipefail) may end the script first.
module_file() {
	local mods=$1 name=$2
	{ find "$mods" -name "${name}.ko*" -o -name "${name//_/-}.ko*" -o -name "${name//-/_}.ko*" || true; } | head -1 || true
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
	local deb=$1 tmp mods rel found
	KDIR=$CACHE/kernel/$(basename "$deb" .deb)
	# Keep one unpacked kernel, like one .deb.
	find "$CACHE/kernel" -mindepth 1 -maxdepth 1 ! -path "$KDIR" -exec rm -rf {} + 2>/dev/null || true
	# .done names the modules unpacked: a changed MODULES unpacks again.
	if [ -f "$KDIR/.done" ] && [ "$(cat "$KDIR/.done")" = "${MODULES[*]}" ]; then
		return 0
	fi
	log "unpacking $(basename "$deb")"
	rm -rf "$KDIR" && mkdir -p "$KDIR/modules"
	tmp=$(mktemp -d "$CACHE/unpack.XXXXXX")
	dpkg-deb -x "$deb" "$tmp"
	found=("$tmp"/boot/vmlinuz-*)
	[ -f "${found[0]}" ] || die "no boot/vmlinuz-* in $deb"
	cp "${found[0]}" "$KDIR/vmlinuz"
	found=("$tmp"/lib/modules/*)
	[ -d "${found[0]}" ] || die "no lib/modules/* in $deb"
	mods=${found[0]}
	rel=$(basename "$mods")
	echo "$rel" >"$KDIR/release"
	grep -q '^CONFIG_NETKIT=y' "$tmp/boot/config-$rel" ||
		log "warning: $rel is not built with CONFIG_NETKIT=y; the netkit cases will fail in the VM"
	LOAD=()
	for m in "${MODULES[@]}"; do add_module "$mods" "$KDIR/modules" "$m"; done
	printf '%s\n' "${LOAD[@]}" >"$KDIR/modules/load.order"
	rm -rf "$tmp"
	echo "${MODULES[*]}" >"$KDIR/.done"
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
	: "${MACGUARDCTL_BIN:=$(dirname "$MACGUARD_BIN")/macguardctl}"
	[ -x "$MACGUARD_BIN" ] || die "MACGUARD_BIN=$MACGUARD_BIN is not an executable"
	[ -x "$MACGUARDCTL_BIN" ] || die "MACGUARDCTL_BIN=$MACGUARDCTL_BIN is not an executable (make build builds it next to the plugin)"
	export MACGUARD_BIN MACGUARDCTL_BIN
	# The reference tools are pinned to the versions go.mod already uses,
	# so the chain test speaks the same libcni as the plugin.
	cni=$(modversion github.com/containernetworking/cni)
	plugins=$(modversion github.com/containernetworking/plugins)
	log "building test binaries (cnitool $cni; host-local, ipvlan, macvlan $plugins)"
	export CGO_ENABLED=0
	GOBIN=$BIN $GO install -trimpath "github.com/containernetworking/cni/cnitool@$cni"
	# The main plugins of the reference chains (chain_test.go).
	GOBIN=$BIN $GO install -trimpath \
		"github.com/containernetworking/plugins/plugins/ipam/host-local@$plugins" \
		"github.com/containernetworking/plugins/plugins/main/bridge@$plugins" \
		"github.com/containernetworking/plugins/plugins/main/ipvlan@$plugins" \
		"github.com/containernetworking/plugins/plugins/main/macvlan@$plugins"
	$GO build -trimpath -o "$BIN/netkit-cni" ./test/fixtures/netkit-cni
	local s
	for s in "${SUITES[@]}"; do
		if [ -f "test/$s/go.mod" ]; then
			# A module of its own (test/kubevirt): built from its directory,
			# without -trimpath so that it reuses what the host run of the
			# same module compiled (KubeVirt's packages take minutes).
			(cd "test/$s" && $GO test -c -o "$BIN/$s.test" .)
		else
			$GO test -c -trimpath -o "$BIN/$s.test" "./test/$s"
		fi
	done
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

# add_program copies a dynamically linked program and the libraries ldd
# names (with the loader) into the initramfs at the same paths.
add_program() {
	local stage=$1 prog=$2 lib
	[ -x "$prog" ] || die "cannot put ${prog:-a program} into the guest: not installed"
	mkdir -p "$stage$(dirname "$prog")"
	cp "$prog" "$stage$prog"
	for lib in $(ldd "$prog" | grep -oE '/[^ ]+'); do
		mkdir -p "$stage$(dirname "$lib")"
		cp -L "$lib" "$stage$lib"
	done
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
	cp "$MACGUARDCTL_BIN" "$stage/vmtest/macguardctl"
	cp "$BIN/netkit-cni" "$BIN/host-local" "$BIN/bridge" "$BIN/ipvlan" "$BIN/macvlan" "$BIN/cnitool" "$stage/opt/cni/bin/"
	local s budget
	for s in "${SUITES[@]}"; do
		cp "$BIN/$s.test" "$stage/vmtest/"
		# test/kubevirt has libvirt's own parser judge the domains.
		if [ "$s" = kubevirt ]; then add_program "$stage" "$(command -v virsh || true)"; fi
	done
	# The guest's /init sources this. The suites' timeouts add up to less
	# than the host's, so a hung test still prints Go's goroutine dump and
	# the markers instead of being killed silently; each suite gets an
	# equal share, so a hang in the first leaves the second its time.
	budget=$(( TIMEOUT > 90 ? TIMEOUT - 30 : TIMEOUT * 2 / 3 ))
	# sed quotes VMTEST_RUN for the guest's sh; ${VMTEST_RUN//...} would
	# need the same escapes inside this here-document, less readably.
	# shellcheck disable=SC2001
	cat >"$stage/vmtest/env" <<-EOF
		export MACGUARD_VM=1
		export MACGUARD_BIN=/opt/cni/bin/macguard
		export MACGUARDCTL_BIN=/vmtest/macguardctl
		export VMTEST_BIN_DIR=/opt/cni/bin
		export VMTEST_SUITES='${SUITES[*]}'
		export VMTEST_SUITE_TIMEOUT=$(( budget / ${#SUITES[@]} ))s
		export VMTEST_RUN='$(sed "s/'/'\\\\''/g" <<<"${VMTEST_RUN:-}")'
		export VMTEST_SKIP='$(sed "s/'/'\\\\''/g" <<<"${VMTEST_SKIP:-}")'
		export KUBEVIRT_CHAIN_WITHOUT_MACGUARD=$([ "${KUBEVIRT_CHAIN_WITHOUT_MACGUARD:-}" = 1 ] && echo 1)
	EOF
	# Uncompressed: gzip would save a few MB of host memory but cost seconds
	# of decompression in the emulated guest.
	(cd "$stage" && find . | /bin/busybox cpio -o -H newc 2>/dev/null) >"$CACHE/initramfs.cpio"
}

boot() {
	local log=$CACHE/console.log rc out line exitcode kernel
	# TCG by default: it is what CI has, and on this machine kind /dev/kvm
	# exists but a KVM guest hangs at boot. VMTEST_ACCEL=kvm where it works.
	local accel=${VMTEST_ACCEL:-tcg}
	log "booting $(cat "$KDIR/release") under QEMU (accel $accel, ${SMP} CPU, timeout ${TIMEOUT}s)"
	set +e
	# No NIC: every test stays inside the guest's own namespaces. Console
	# on the serial port, streamed to the terminal and kept for parsing.
	timeout -k 10 "$TIMEOUT" qemu-system-x86_64 -machine "accel=$accel" -m "$MEM" -smp "$SMP" -nographic -no-reboot -nic none \
		-kernel "$KDIR/vmlinuz" -initrd "$CACHE/initramfs.cpio" \
		-append "console=ttyS0 quiet panic=-1" </dev/null | tee "$log" |
		sed -u -e 's/\r$//' -e 's/\x1b\[[0-9;?]*[a-zA-Z]//g' -e 's/\x1bc//g' # SeaBIOS would clear the terminal
	rc=${PIPESTATUS[0]}
	set -e
	# The serial console ends lines with \r\n.
	out=$(tr -d '\r' <"$log")
	line=$(grep -E "^$MARKER exit=[0-9]+ kernel=" <<<"$out" | tail -1 || true)
	if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
		die "the VM did not finish within ${TIMEOUT}s (VMTEST_TIMEOUT); console log: $log"
	fi
	if [ -z "$line" ]; then
		die "the VM stopped (qemu exit $rc) without printing the $MARKER marker: the guest crashed or never ran the suites; console log: $log"
	fi
	exitcode=$(sed -E 's/.* exit=([0-9]+) .*/\1/' <<<"$line")
	kernel=$(sed -E 's/.* kernel=(.*)$/\1/' <<<"$line")
	log "kernel that ran the suites: $kernel"
	if grep -qE '^\s*--- SKIP' <<<"$out"; then
		grep -E '^\s*--- SKIP' <<<"$out" | sed 's/^\s*/vmtest: skipped: /' >&2
		die "a test skipped inside the VM, where every device must exist; console log: $log"
	fi
	judge_suites "$out" "$kernel" || die "the VM run on $kernel did not pass (see above); console log: $log"
	if [ "$exitcode" != 0 ]; then
		# Every suite passed but the guest did not: /init failed itself.
		die "the guest reported exit $exitcode on $kernel; console log: $log"
	fi
	log "PASS in the VM on $kernel"
}

# judge_suites checks every suite's own result in the console output: it
# finished, exited 0, and ran tests. A suite that matched no test passes
# only under a VMTEST_RUN filter, and then some suite must have run one.
judge_suites() {
	local out=$1 kernel=$2 s line code passed total=0 failed=0
	for s in "${SUITES[@]}"; do
		line=$(grep -E "^$SUITE_MARKER name=$s exit=[0-9]+\$" <<<"$out" | tail -1 || true)
		if [ -z "$line" ]; then
			log "FAIL: the $s suite never finished inside the VM (no '$SUITE_MARKER name=$s' line)"
			failed=1
			continue
		fi
		code=${line##*exit=}
		# Top-level tests only ("--- PASS" at the start of a line), counted
		# between this suite's markers.
		passed=$(awk -v b="$SUITE_MARKER-BEGIN name=$s" -v e="$SUITE_MARKER name=$s exit=" \
			'$0 == b {on = 1; next} index($0, e) == 1 {on = 0} on && /^--- PASS/ {n++} END {print n + 0}' <<<"$out")
		total=$((total + passed))
		if [ "$code" != 0 ]; then
			log "FAIL: the $s suite failed inside the VM (exit $code) on $kernel"
			failed=1
		elif [ "$passed" = 0 ] && [ -z "${VMTEST_RUN:-}" ]; then
			log "FAIL: the $s suite reported success inside the VM but ran no test"
			failed=1
		else
			log "$s suite: PASS ($passed top-level tests) in the VM"
		fi
	done
	if [ "$failed" = 0 ] && [ "$total" = 0 ]; then
		log "FAIL: VMTEST_RUN='${VMTEST_RUN:-}' matched no test in any suite"
		failed=1
	fi
	return "$failed"
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
	packages) ensure_packages ;;
	kernel)
		local deb
		ensure_packages
		deb=$(resolve_kernel_deb)
		prepare_kernel "$deb"
		log "kernel $(cat "$KDIR/release") in $KDIR"
		;;
	*) die "unknown command $what (want all, host, vm, tools, kernel or packages)" ;;
	esac
	log "$what took $((SECONDS - start))s"
}

main "$@"
