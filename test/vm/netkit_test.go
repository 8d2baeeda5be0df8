package vm

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/macguard-cni/macguard/internal/testutil"
)

// netkitPod is a sandbox whose eth0 the netkit-cni fixture created, as
// cilium-cni does in netkit mode.
type netkitPod struct {
	ns   ns.NetNS
	cid  string
	prev []byte // the fixture's result: macguard's prevResult
}

// addNetkitPod runs the fixture's ADD for a new pod namespace and checks
// that it produced what the test relies on (a netkit device in the asked
// mode, with a MAC exactly in L2 mode), so a test cannot pass on a device
// that is not the one it claims to test.
func (n *node) addNetkitPod(t *testing.T, mode, cid, address string) *netkitPod {
	t.Helper()
	pod := testutil.NewNetns(t)
	fixture := tool(t, "netkit-cni")
	conf := []byte(fmt.Sprintf(`{"cniVersion":%q,"name":%q,"type":"netkit-cni","mode":%q,"address":%q}`,
		cniVersion, netName, mode, address))
	call := cniCall{command: "ADD", containerID: cid, netns: pod.Path()}
	prev := n.plugin(t, fixture, call, conf).mustSucceed(t, "netkit-cni ADD")
	// Registered after the netns cleanup, so it runs first, while the
	// namespace still exists: the fixture's DEL is exercised too.
	t.Cleanup(func() {
		call.command = "DEL"
		n.plugin(t, fixture, call, conf).mustSucceed(t, "netkit-cni DEL")
	})

	s := readLinkState(t, pod, podIf)
	if s.Kind != "netkit" || s.NetkitMode != mode {
		t.Fatalf("fixture made a %s device in mode %q, want netkit %s", s.Kind, s.NetkitMode, mode)
	}
	_, resMAC := sandboxEntry(t, prev, pod.Path())
	switch {
	case mode == "l3" && (s.MAC != "" || resMAC != ""):
		t.Fatalf("netkit L3 should have no MAC, device has %q and the result %q", s.MAC, resMAC)
	case mode == "l2" && (s.MAC == "" || mustMAC(t, resMAC) != s.MAC):
		t.Fatalf("netkit L2 should have a MAC and report it, device has %q and the result %q", s.MAC, resMAC)
	}
	return &netkitPod{ns: pod, cid: cid, prev: prev}
}

func (p *netkitPod) call(command, args string) cniCall {
	return cniCall{command: command, containerID: p.cid, netns: p.ns.Path(), args: args}
}

// The failure that started the project: Cilium's netkit in L3 mode leaves
// the pod without a MAC and the kernel refuses to give it one. Whatever
// asks for a MAC, macguard must fail with the remedy and change nothing.
func TestNetkitL3FailsWithRemedyAndChangesNothing(t *testing.T) {
	requireKernel(t, "netkit")
	mg := testutil.PluginBinary(t)
	tests := []struct {
		name          string
		fields        map[string]any
		runtimeConfig map[string]any
		// mentions are what the message must name beyond the remedy,
		// the interface and the netns.
		mentions []string
	}{
		{name: "default config derives for the empty MAC"},
		{name: "assign always", fields: map[string]any{"assign": "always"}},
		{name: "requested MAC via runtimeConfig", runtimeConfig: map[string]any{"mac": "0a:58:0a:63:00:03"},
			mentions: []string{"0a:58:0a:63:00:03", "runtimeConfig.mac"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := newNode(t)
			p := n.addNetkitPod(t, "l3", "cid-l3-fail", "10.99.0.2/24")
			before := readLinkState(t, p.ns, podIf)

			o := n.plugin(t, mg, p.call("ADD", testutil.PodArgs("vms", "virt-launcher-vm1-abcde", p.cid, "uid-virt-launcher-vm1-abcde")),
				n.macguardConf(t, tc.fields, p.prev, tc.runtimeConfig))
			if o.err == nil {
				t.Fatalf("ADD succeeded on a netkit L3 device (result %s); it cannot carry a MAC", o.stdout)
			}
			if o.err.Code != 101 {
				t.Errorf("error code %d, want 101 (device cannot carry a MAC): %s", o.err.Code, o.err.Msg)
			}
			msg := o.err.Msg + " " + o.err.Details
			requireContains(t, "the error", msg, append([]string{"netkit-l2", "macAddress", podIf, p.ns.Path()}, tc.mentions...)...)

			if after := readLinkState(t, p.ns, podIf); !reflect.DeepEqual(after, before) {
				t.Errorf("the failed ADD changed the device:\nbefore %+v\nafter  %+v", before, after)
			}
			if files := n.Records(t); len(files) != 0 {
				t.Errorf("the failed ADD left state in dataDir: %v", files)
			}
		})
	}
}

// onUnsupported "skip" lets such pods start: the main plugin's result goes
// through as it was, and the log says why nothing was done.
func TestNetkitL3OnUnsupportedSkipPassesResultThrough(t *testing.T) {
	requireKernel(t, "netkit")
	mg := testutil.PluginBinary(t)
	n := newNode(t)
	p := n.addNetkitPod(t, "l3", "cid-l3-skip", "10.99.0.2/24")
	before := readLinkState(t, p.ns, podIf)
	fields := map[string]any{"onUnsupported": "skip"}
	args := testutil.PodArgs("vms", "virt-launcher-vm1-abcde", p.cid, "uid-virt-launcher-vm1-abcde")

	out := n.plugin(t, mg, p.call("ADD", args), n.macguardConf(t, fields, p.prev, nil)).mustSucceed(t, "ADD")
	if !sameJSON(t, out, p.prev) {
		t.Errorf("result differs from prevResult:\nprev   %s\nresult %s", p.prev, out)
	}
	if after := readLinkState(t, p.ns, podIf); !reflect.DeepEqual(after, before) {
		t.Errorf("ADD changed the device:\nbefore %+v\nafter  %+v", before, after)
	}
	if files := n.Records(t); len(files) != 0 {
		t.Errorf("nothing was changed, yet dataDir holds %v", files)
	}
	var warned bool
	for _, line := range strings.Split(n.ReadLog(t), "\n") {
		if strings.Contains(line, "level=WARN") && strings.Contains(line, "ifname="+podIf) && strings.Contains(line, p.cid) {
			warned = true
		}
	}
	if !warned {
		t.Errorf("no warning naming %s and container %s in logFile:\n%s", podIf, p.cid, n.ReadLog(t))
	}

	// The pod started, so the runtime's CHECK must pass, and DEL (nothing
	// to restore) must succeed and still leave the device alone.
	n.plugin(t, mg, p.call("CHECK", args), n.macguardConf(t, fields, out, nil)).mustSucceed(t, "CHECK")
	n.plugin(t, mg, p.call("DEL", args), n.macguardConf(t, fields, out, nil)).mustSucceed(t, "DEL")
	if after := readLinkState(t, p.ns, podIf); !reflect.DeepEqual(after, before) {
		t.Errorf("DEL changed the device:\nbefore %+v\nafter  %+v", before, after)
	}
}

// Cilium's netkit-l2 mode: the device takes a MAC, so assign "always"
// gives a VM the MAC derived from namespace/VM name, and a restarted VM —
// a new virt-launcher pod with a new suffix and a new container ID — gets
// the same one.
func TestNetkitL2AssignAlwaysKeepsMACAcrossVMRestart(t *testing.T) {
	requireKernel(t, "netkit")
	mg := testutil.PluginBinary(t)
	want := derivedMAC(t, "vms", "virt-launcher-vm1-abcde")
	n := newNode(t) // one node, one dataDir: the VM restarts on the same node
	fields := map[string]any{"assign": "always"}

	launches := []struct{ pod, cid string }{
		{"virt-launcher-vm1-abcde", "cid-vm1-first-launch"},
		{"virt-launcher-vm1-fghij", "cid-vm1-after-restart"},
	}
	var got []string
	for _, l := range launches {
		t.Run(l.pod, func(t *testing.T) {
			p := n.addNetkitPod(t, "l2", l.cid, "10.99.0.2/24")
			orig := podMAC(t, p.ns)
			if orig == want {
				t.Fatalf("the fixture's random MAC %s already equals the derived one; the test would prove nothing", orig)
			}
			args := testutil.PodArgs("vms", l.pod, l.cid, "uid-"+l.pod)

			out := n.plugin(t, mg, p.call("ADD", args), n.macguardConf(t, fields, p.prev, nil)).mustSucceed(t, "ADD")
			mac := podMAC(t, p.ns)
			got = append(got, mac)
			if mac != want {
				t.Errorf("interface MAC %s, want %s (macguardctl mac --namespace vms --pod %s)", mac, want, l.pod)
			}
			idx, resMAC := sandboxEntry(t, out, p.ns.Path())
			if resMAC != want {
				t.Errorf("result reports MAC %q, want %s", resMAC, want)
			}
			for _, ip := range testutil.ParseResult(t, out).IPs {
				if ip.Interface == nil || *ip.Interface != idx {
					t.Errorf("result IP %s no longer points at the pod interface (entry %d): %s", ip.Address, idx, out)
				}
			}
			if w := n.warnings(t); len(w) != 0 {
				t.Errorf("ADD logged warnings: %q", w)
			}
			if files, wantFile := n.Records(t), testutil.RecordName(netName, l.cid, podIf); !slices.Equal(files, []string{wantFile}) {
				t.Errorf("dataDir holds %v, want the one record %s", files, wantFile)
			}

			n.plugin(t, mg, p.call("CHECK", args), n.macguardConf(t, fields, out, nil)).mustSucceed(t, "CHECK")
			n.plugin(t, mg, p.call("DEL", args), n.macguardConf(t, fields, out, nil)).mustSucceed(t, "DEL")
			if mac := podMAC(t, p.ns); mac != orig {
				t.Errorf("DEL left MAC %s, want the original %s", mac, orig)
			}
			if files := n.Records(t); len(files) != 0 {
				t.Errorf("DEL left state: %v", files)
			}
		})
	}
	if len(got) == 2 && got[0] != got[1] {
		t.Errorf("the VM changed its MAC across the restart: %s then %s", got[0], got[1])
	}
}

// A MAC requested through the network selection element (Multus passes it
// as runtimeConfig.mac) is set on a netkit L2 device, reported normalized,
// checked and restored.
func TestNetkitL2RequestedMACFromRuntimeConfig(t *testing.T) {
	requireKernel(t, "netkit")
	mg := testutil.PluginBinary(t)
	tests := []struct{ name, requested, want string }{
		{"lowercase with colons", "0a:58:0a:63:00:07", "0a:58:0a:63:00:07"},
		{"uppercase with dashes", "0A-58-0A-63-00-08", "0a:58:0a:63:00:08"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := newNode(t)
			p := n.addNetkitPod(t, "l2", "cid-l2-requested", "10.99.0.2/24")
			orig := podMAC(t, p.ns)
			args := testutil.PodArgs("default", "web-0", p.cid, "uid-web-0")
			fields := map[string]any{"capabilities": map[string]any{"mac": true}}
			rc := map[string]any{"mac": tc.requested}

			out := n.plugin(t, mg, p.call("ADD", args), n.macguardConf(t, fields, p.prev, rc)).mustSucceed(t, "ADD")
			if mac := podMAC(t, p.ns); mac != tc.want {
				t.Errorf("interface MAC %s, want %s", mac, tc.want)
			}
			if w := n.warnings(t); len(w) != 0 {
				t.Errorf("ADD logged warnings: %q", w)
			}
			// Exact string: the result must carry the normalized form.
			if _, resMAC := sandboxEntry(t, out, p.ns.Path()); resMAC != tc.want {
				t.Errorf("result reports MAC %q, want %q", resMAC, tc.want)
			}
			n.plugin(t, mg, p.call("CHECK", args), n.macguardConf(t, fields, out, rc)).mustSucceed(t, "CHECK")
			n.plugin(t, mg, p.call("DEL", args), n.macguardConf(t, fields, out, rc)).mustSucceed(t, "DEL")
			if mac := podMAC(t, p.ns); mac != orig {
				t.Errorf("DEL left MAC %s, want the original %s", mac, orig)
			}
		})
	}
}
