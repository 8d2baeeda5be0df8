package kubevirt

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	k8sv1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	k8stypes "k8s.io/apimachinery/pkg/types"

	"github.com/macguard-cni/macguard/internal/testutil"
)

// envGuestDir names the directory hack/kubevirt/guest.sh built the real
// guest into (vmlinuz, initramfs.cpio).
const envGuestDir = "KUBEVIRT_GUEST_DIR"

// The addresses KubeVirt's masquerade binding gives a guest by default
// (api.DefaultVMCIDR): the guest .2, the pod's k6t-eth0 bridge .1.
const (
	guestIP = "10.0.2.2/24"
	guestGW = "10.0.2.1"
)

// embeddedLibvirt is libvirt's QEMU driver run inside virsh
// (qemu:///embed?root=DIR, no daemon), all of its configuration, state,
// sockets and logs under root, the QEMU it starts a process of this test.
// Why not libvirtd (docs/kubevirt.md): Debian's privileged QEMU driver
// keeps its state in fixed paths (/run/libvirt, /var/lib/libvirt, ...)
// and needs the libvirt-qemu user that only libvirt-daemon-system, which
// starts services, creates; the embedded driver takes a root directory.
// The user lookup still happens, so virsh runs in a mount namespace of its
// own whose /etc/passwd and /etc/group (bind-mounted copies) name it; the
// machine's files are never changed.
type embeddedLibvirt struct {
	root, etc string
}

func newEmbeddedLibvirt(t *testing.T) *embeddedLibvirt {
	t.Helper()
	// Short: libvirt refuses unix socket paths over 107 bytes, and the
	// guest agent's lands five levels below root.
	dir, err := os.MkdirTemp("", "kv")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	e := &embeddedLibvirt{root: filepath.Join(dir, "libvirt"), etc: filepath.Join(dir, "etc")}
	for _, d := range []string{filepath.Join(e.root, "etc"), e.etc} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// root/etc/qemu.conf: QEMU as root like virt-launcher's, no security
	// driver, no cgroups (none are delegated to this test) and the
	// guest's stdio in a file instead of virtlogd's socket.
	conf := "user = \"root\"\ngroup = \"root\"\nsecurity_driver = \"none\"\ncgroup_controllers = [ ]\nstdio_handler = \"file\"\n"
	if err := os.WriteFile(filepath.Join(e.root, "etc", "qemu.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct{ name, line string }{
		{"passwd", "libvirt-qemu:x:64055:64055:libvirt qemu:/nonexistent:/usr/sbin/nologin\n"},
		{"group", "libvirt-qemu:x:64055:\nkvm:x:64056:\n"},
	} {
		b, err := os.ReadFile("/etc/" + f.name)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(e.etc, f.name), append(b, f.line...), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// virsh runs `virsh -c qemu:///embed?root=... <cmds>` inside podNS (the
// QEMU it starts inherits the netns and finds the pod's tap there).
func (e *embeddedLibvirt) virsh(t *testing.T, podNS ns.NetNS, cmds string) string {
	t.Helper()
	for _, tool := range []string{"virsh", "unshare", "qemu-system-x86_64"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found (hack/kubevirt/prepare.sh packages installs libvirt-clients, libvirt-daemon-driver-qemu, qemu-system-x86; unshare is util-linux): %v", tool, err)
		}
	}
	script := fmt.Sprintf(`mount --bind %q /etc/passwd && mount --bind %q /etc/group && exec virsh -q -c %q %q`,
		filepath.Join(e.etc, "passwd"), filepath.Join(e.etc, "group"), "qemu:///embed?root="+e.root, cmds)
	var out bytes.Buffer
	err := podNS.Do(func(ns.NetNS) error {
		cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script)
		cmd.Stdout, cmd.Stderr = &out, &out
		return cmd.Run()
	})
	if err != nil {
		t.Fatalf("virsh %s: %v\n%s", cmds, err, out.String())
	}
	return out.String()
}

// stop kills the domain's QEMU by the PID libvirt recorded and waits for
// it to go.
func (e *embeddedLibvirt) stop(t *testing.T, domain string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.root, "run", "qemu", domain+".pid"))
	if err != nil {
		t.Errorf("no pid file for domain %s: %v", domain, err)
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		t.Errorf("pid file of %s holds %q", domain, b)
		return
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	for i := 0; i < 100; i++ {
		if syscall.Kill(pid, 0) != nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Errorf("QEMU %d of domain %s still runs after SIGKILL", pid, domain)
}

// guestDir is the real guest hack/kubevirt/guest.sh built.
func guestDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv(envGuestDir)
	if dir == "" {
		t.Fatalf("%s is unset: make test-kubevirt-host builds the guest (hack/kubevirt/guest.sh) and sets it", envGuestDir)
	}
	mustExist(t, filepath.Join(dir, "vmlinuz"))
	mustExist(t, filepath.Join(dir, "initramfs.cpio"))
	return dir
}

var guestNIC = regexp.MustCompile(`MACGUARD-GUEST-NIC eth0 ([0-9a-f:]{17})`)

// A real guest: the domain KubeVirt's code generated for a VM on
// masquerade binding, in a virt-launcher pod chained with macguard, started
// by libvirt's own QEMU driver (TCG) on the tap KubeVirt's NetPod made in
// the pod's netns. The guest prints its NIC's MAC on the serial console
// (KubeVirt's serial console log) and serves it over HTTP: the MAC is the
// one `macguardctl mac --vm` promises, and a peer pod on the same network
// reaches the guest through the launcher pod's IP (KubeVirt's NAT) and
// reads it back.
func TestRealGuestSeesTheDerivedMAC(t *testing.T) {
	testutil.RequireKernel(t, vmSuite, "veth", "bridge")
	if testutil.InVM() {
		// QEMU's TCG inside the VM suite's own TCG guest is far too slow:
		// make test-kubevirt-vm leaves this test out (VMTEST_SKIP).
		t.Fatal("the real guest runs on the host kernel (make test-kubevirt-host), not inside the VM suite")
	}
	const vm = "vm7"
	dir := guestDir(t)
	n := newNode(t, "pods", bridgeMain(), map[string]any{"assign": "always"})
	want := vmMAC(t, vm)
	l := n.startLauncher(t, vm, "abcde")
	peer := n.startLauncher(t, "peer", "zzzzz")
	podIP := resultIP(t, l.result)

	vmi := masqueradeVMI(vm, "")
	vmi.UID = k8stypes.UID("uid-" + vm)
	// The guest kernel and its initramfs need more than the 64Mi of the
	// smallest VMI.
	vmi.Spec.Domain.Resources.Requests[k8sv1.ResourceMemory] = resource.MustParse("256Mi")
	// KubeVirt's NetPod builds k6t-eth0 (the guest's gateway), the tap
	// and its nftables NAT (its own nft adapter, `nft` run in the pod).
	virtHandlerSetup(t, vmi, l)

	d := convertedDomain(t, vmi, l.ns, true)
	if macs := domainMACs(d); len(macs) != 1 || macs[0] != want {
		// Not fatal: the guest then shows which MAC it really got.
		t.Errorf("KubeVirt's domain has interface MACs %q, want [%s]", macs, want)
	}
	// Boot the guest kernel directly (KubeVirt's kernelBoot does the same
	// from a container image) on TCG, and root virt-launcher's private
	// directory (sockets, the serial log) in the test's.
	d.Spec.Type = "qemu"
	d.Spec.OS.Kernel = filepath.Join(dir, "vmlinuz")
	d.Spec.OS.Initrd = filepath.Join(dir, "initramfs.cpio")
	d.Spec.OS.KernelArgs = "console=ttyS0 panic=-1 guest_ip=" + guestIP + " guest_gw=" + guestGW
	if d.Spec.CPU.Mode == "host-model" {
		d.Spec.CPU.Mode = "" // TCG has no host CPU model to copy
	}
	private := filepath.Join(t.TempDir(), "kubevirt-private")
	x := strings.ReplaceAll(string(domainXML(t, d)), "/var/run/kubevirt-private", private)
	if strings.Contains(x, "/var/run/kubevirt") {
		t.Fatalf("the domain still names a path of the machine's /var/run/kubevirt:\n%s", x)
	}
	if err := os.MkdirAll(filepath.Join(private, string(vmi.UID)), 0o700); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "domain.xml")
	if err := os.WriteFile(f, []byte(x), 0o644); err != nil {
		t.Fatal(err)
	}

	lv := newEmbeddedLibvirt(t)
	name := d.Spec.Name
	t.Cleanup(func() { lv.stop(t, name) })
	lv.virsh(t, l.ns, "define "+f+"; start "+name)

	serialLog := filepath.Join(private, string(vmi.UID), "virt-serial0-log")
	console := waitFor(t, 40*time.Second, func() (string, bool) {
		b, _ := os.ReadFile(serialLog)
		if bytes.Contains(b, []byte("MACGUARD-GUEST-READY")) {
			return string(b), true
		}
		qemuLog, _ := os.ReadFile(filepath.Join(lv.root, "log", "qemu", name+".log"))
		return fmt.Sprintf("serial log %s:\n%s\nQEMU's log:\n%s\ndomain:\n%s", serialLog, b, qemuLog, x), false
	})
	m := guestNIC.FindStringSubmatch(console)
	if m == nil || m[1] != want {
		t.Errorf("the guest reports eth0 %v, want %s; console:\n%s", m, want, console)
	}
	if strings.Contains(console, "MACGUARD-GUEST-ERROR") {
		t.Errorf("the guest reported an error; console:\n%s", console)
	}

	// The peer pod, through the launcher pod's IP (KubeVirt's DNAT to the
	// guest), gets the guest's own answer: its eth0 MAC.
	got := waitFor(t, 20*time.Second, func() (string, bool) {
		body, err := httpGetIn(peer.ns, podIP, "/mac")
		return fmt.Sprintf("%q (err %v); console:\n%s", body, err, console), err == nil && strings.TrimSpace(body) == want
	})
	t.Logf("peer pod -> http://%s/mac (the launcher pod, DNAT to the guest): %s", podIP, got)
}

// waitFor polls f until it reports done or the timeout passes, and returns
// its last value; the timeout fails the test with that value.
func waitFor(t *testing.T, timeout time.Duration, f func() (string, bool)) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		v, ok := f()
		if ok {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %s; last seen:\n%s", timeout, v)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// httpGetIn fetches http://<ip>/<path> from inside podNS. The connection
// is dialled on the thread ns.Do switched into the pod's netns (the socket
// is made there); http.Transport would dial on another goroutine, i.e. in
// the machine's own namespace.
func httpGetIn(podNS ns.NetNS, ip, path string) (string, error) {
	var body string
	err := podNS.Do(func(ns.NetNS) error {
		conn, err := net.DialTimeout("tcp", net.JoinHostPort(ip, "80"), 3*time.Second)
		if err != nil {
			return err
		}
		defer conn.Close()
		if err := conn.SetDeadline(time.Now().Add(3 * time.Second)); err != nil {
			return err
		}
		req, err := http.NewRequest(http.MethodGet, "http://"+ip+path, nil)
		if err != nil {
			return err
		}
		if err := req.Write(conn); err != nil {
			return err
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), req)
		if err != nil {
			return err
		}
		defer func() { _ = resp.Body.Close() }() // a read body; nothing to report on close
		b, err := io.ReadAll(resp.Body)
		body = string(b)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("HTTP %s", resp.Status)
		}
		return err
	})
	return body, err
}

// resultIP is the pod interface's IPv4 address in a chain's result.
func resultIP(t *testing.T, result []byte) string {
	t.Helper()
	for _, ip := range testutil.ParseResult(t, result).IPs {
		if a, _, err := net.ParseCIDR(ip.Address); err == nil && a.To4() != nil {
			return a.String()
		}
	}
	t.Fatalf("no IPv4 address in the result: %s", result)
	return ""
}
