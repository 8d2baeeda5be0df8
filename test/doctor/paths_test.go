package doctor_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/macguard-cni/macguard/internal/testutil"
	"github.com/macguard-cni/macguard/pkg/ctl/doctor"
	"github.com/macguard-cni/macguard/test/doctor/nodeworld"
)

// The addresses of the reply-path world (documentation and private
// ranges, all inside namespaces the test makes).
const (
	nodeEth   = "10.0.0.1"     // the node's end of the pod's eth0
	podEth    = "10.0.0.2"     // eth0: the pod's default route goes via nodeEth
	lanGW     = "192.168.50.1" // the router's address on the LAN: net1's gateway
	podLAN    = "192.168.50.10"
	nodeLAN   = "192.168.50.2" // the node's address on the macvlan parent (one case)
	peer      = "203.0.113.2"  // an off-subnet peer, behind the router
	probePort = "8080"
	// exchange bounds one TCP exchange: a lost SYN-ACK is retried after 1 s.
	exchange = 3 * time.Second
)

// replyWorld is a node with one pod: eth0 a veth to the node namespace,
// which has the pod's default route and no way to the peer, and net1 a
// macvlan on the node's lan0, made by the real cnitool with the reference
// macvlan and static IPAM (plus sbr when withSBR), chained as a
// NetworkAttachmentDefinition would chain them. lan0 is a veth to a router
// namespace that holds the LAN's gateway and, on its loopback, an address
// of another subnet: the off-subnet peer. Only the route back decides
// whether the peer gets an answer from net1.
type replyWorld struct {
	*nodeworld.World
	pod    *nodeworld.Pod
	router ns.NetNS
	chain  []string
}

func newReplyWorld(t *testing.T, withSBR bool) *replyWorld {
	w := &replyWorld{World: base(t), router: testutil.NewNetns(t)}
	// cnitool keeps libcni's cache in /var/lib/cni: it runs with a
	// directory of the test's bound there (testutil.CNITool.VarLib), which
	// is the doctor's --cache-dir.
	varLib := t.TempDir()
	w.Cache = filepath.Join(varLib, "cni")
	if err := os.MkdirAll(filepath.Join(w.Cache, "results"), 0o700); err != nil {
		t.Fatal(err)
	}

	testutil.VethPair(t, w.Node, "lan0", w.router, "rlan")
	testutil.AddAddr(t, w.router, "rlan", lanGW+"/24")
	testutil.LinkUp(t, w.router, "lo")
	testutil.AddAddr(t, w.router, "lo", peer+"/32")

	w.pod = w.NewPod(t, "default", "web", true)
	testutil.VethPair(t, w.Node, "podh", w.pod.NS, "eth0")
	testutil.AddAddr(t, w.Node, "podh", nodeEth+"/24")
	testutil.AddAddr(t, w.pod.NS, "eth0", podEth+"/24")
	testutil.AddDefaultRoute(t, w.pod.NS, nodeEth)

	plugins := []string{fmt.Sprintf(`{"type":"macvlan","master":"lan0","mode":"bridge","ipam":{"type":"static","addresses":[{"address":"%s/24","gateway":"%s"}]}}`, podLAN, lanGW)}
	w.chain = []string{"macvlan"}
	if withSBR {
		plugins = append(plugins, `{"type":"sbr"}`)
		w.chain = append(w.chain, "sbr")
	}
	confDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(confDir, "mvnet.conflist"), []byte(nodeworld.Conflist("mvnet", plugins...)), 0o644); err != nil {
		t.Fatal(err)
	}
	tool := &testutil.CNITool{Bin: testutil.CNIToolBinary(t), CNIPath: testutil.CNIPath(t), NetConfPath: confDir, Node: w.Node, VarLib: varLib}
	call := testutil.Call{IfName: "net1", CNIArgs: testutil.PodArgs("default", "web", w.pod.ContainerID, "uid-web")}
	tool.Must(t, "add", "mvnet", w.pod.NS.Path(), call)
	t.Cleanup(func() {
		if run := tool.Run(t, "del", "mvnet", w.pod.NS.Path(), call); run.Err != nil {
			t.Errorf("%v", run)
		}
	})
	return w
}

// listen is net1's address for the probe.
func listen(ip string) string { return ip + ":" + probePort }

// TestReplyPath: a request from an off-subnet peer reaches net1; without
// sbr the reply leaves through eth0 and never comes back, and the doctor
// names it (path-asymmetric, with rp_filter and where sbr goes); with sbr
// chained right after macvlan the reply comes back and the doctor has
// nothing to say.
func TestReplyPath(t *testing.T) {
	bin := testutil.ToolBinary(t)
	t.Run("without sbr", func(t *testing.T) {
		w := newReplyWorld(t, false)
		// The LAN itself works: the gateway, on net1's subnet, gets its answer.
		if err := testutil.TCPExchange(t, w.pod.NS, listen(podLAN), w.router, lanGW, exchange); err != nil {
			t.Fatalf("setup: the router cannot reach net1 from its own subnet: %v", err)
		}
		if err := testutil.TCPExchange(t, w.pod.NS, listen(podLAN), w.router, peer, exchange); err == nil {
			t.Fatal("the off-subnet peer got an answer from net1 without sbr: this world does not show an asymmetric path")
		} else {
			t.Logf("as expected, no answer: %v", err)
		}
		r, code := w.Run(t, bin)
		want := []nodeworld.Problem{p(doctor.Warning, "path-asymmetric", "default/web", "net1", "")}
		if got := nodeworld.Problems(r); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("problems %v, want %v\n%+v", got, want, r.Findings)
		}
		if code != 1 {
			t.Errorf("exit code %d, want 1", code)
		}
		f := nodeworld.Find(r, "path-asymmetric", "default/web")
		t.Logf("the doctor says: %s\n  fix: %s", f.Message, f.Remedy)
		for _, s := range []string{"would leave through eth0, not net1", "rp_filter net1 ", "eth0 ", "all ",
			`right after macvlan, the main plugin, in network "mvnet"`, "macvlan -> sbr", "route of its own"} {
			if !strings.Contains(f.Message+" "+f.Remedy, s) {
				t.Errorf("finding does not say %q: %s | %s", s, f.Message, f.Remedy)
			}
		}
	})
	t.Run("with sbr", func(t *testing.T) {
		w := newReplyWorld(t, true)
		if err := testutil.TCPExchange(t, w.pod.NS, listen(podLAN), w.router, peer, exchange); err != nil {
			t.Fatalf("with %s the off-subnet peer gets no answer from net1: %v", strings.Join(w.chain, " -> "), err)
		}
		r, code := w.Run(t, bin)
		if got := nodeworld.Problems(r); len(got) != 0 || code != 0 {
			t.Errorf("problems %v (exit %d), want none", got, code)
		}
		if f := nodeworld.Find(r, "path-asymmetric", ""); f != nil {
			t.Errorf("path-asymmetric with sbr: %+v", f)
		}
	})
}

// TestNodeViaParent: the node carries an address on lan0, net1's macvlan
// parent. The pod reaches it through net1 (same subnet), and macvlan never
// passes frames between a parent and its macvlans: no answer, while the
// router on the same LAN answers. The doctor, run in the node's namespace
// where lan0 is its own device, names it (and the asymmetric path of the
// world without sbr). With sbr the pod's main table has no route through
// net1 any more, so it reaches the node through eth0: not this case.
func TestNodeViaParent(t *testing.T) {
	bin := testutil.ToolBinary(t)
	w := newReplyWorld(t, false)
	testutil.AddAddr(t, w.Node, "lan0", nodeLAN+"/24")
	if err := testutil.TCPExchange(t, w.router, listen(lanGW), w.pod.NS, podLAN, exchange); err != nil {
		t.Fatalf("setup: the pod cannot reach the router through net1: %v", err)
	}
	if err := testutil.TCPExchange(t, w.Node, listen(nodeLAN), w.pod.NS, "", exchange); err == nil {
		t.Fatal("the pod reached the node's address on net1's parent: macvlan isolates them, this world shows nothing")
	}
	w.RunNS = w.Node
	r, code := w.Run(t, bin)
	want := []nodeworld.Problem{p(doctor.Warning, "path-asymmetric", "default/web", "net1", ""),
		p(doctor.Warning, "path-node-via-parent", "default/web", "net1", "")}
	if got := nodeworld.Problems(r); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("problems %v, want %v\n%+v", got, want, r.Findings)
	}
	if code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	f := nodeworld.Find(r, "path-node-via-parent", "")
	if !strings.Contains(f.Message, "lan0") || !strings.Contains(f.Message, nodeLAN) {
		t.Errorf("finding does not name lan0 and %s: %s", nodeLAN, f.Message)
	}
}
