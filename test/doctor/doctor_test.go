// Package doctor_test runs the real `macguardctl doctor` binary against
// nodes built from real network namespaces on this machine's kernel (veth
// and macvlan pods), with conf, bin, data, cache, netns and proc
// directories of their own, and checks that it names every problem of the
// world with its pod, interface and code, and nothing else. It needs root:
// it fails, never skips, without it.
package doctor_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/vishvananda/netlink"

	"github.com/macguard-cni/macguard/internal/testutil"
	"github.com/macguard-cni/macguard/pkg/config"
	"github.com/macguard-cni/macguard/pkg/ctl/doctor"
	"github.com/macguard-cni/macguard/test/doctor/nodeworld"
)

const (
	bridge      = `{"type":"bridge","bridge":"cni0","ipam":{}}`
	macguard    = `{"type":"macguard","capabilities":{"mac":true}}`
	webMAC      = "0a:58:0a:00:00:05"
	otherMAC    = "0a:58:0a:00:00:09"
	defaultConf = "10-net.conflist"
)

// base is a healthy node: its conflist chains macguard after bridge.
func base(t *testing.T) *nodeworld.World {
	w := nodeworld.New(t)
	w.WriteConf(t, defaultConf, nodeworld.Conflist("net", bridge, macguard))
	return w
}

// webPod is a healthy pod of net: veth eth0 with the MAC macguard gave it,
// cached by the runtime, and macguard's record of the change.
func webPod(t *testing.T, w *nodeworld.World, name, mac string) *nodeworld.Pod {
	p := w.NewPod(t, "default", name, true)
	w.Veth(t, p, "eth0", mac)
	w.CacheAttachment(t, p, nodeworld.Attachment{Network: "net", IfName: "eth0", Conflist: nodeworld.Conflist("net", bridge, macguard), ResultMAC: mac})
	w.Record(t, p.ContainerID, "eth0", p.NetnsPath(), "", mac)
	return p
}

// pluginMessage is what the plugin itself says about a macguard entry.
func pluginMessage(t *testing.T, entry string) string {
	cfg, err := config.Parse([]byte(entry), "")
	if err == nil {
		_, err = cfg.Requested()
	}
	var e *types.Error
	if !errors.As(err, &e) {
		t.Fatalf("the plugin accepts %s (err %v); the test needs an entry it refuses", entry, err)
	}
	return e.Msg
}

func p(sev doctor.Severity, code, pod, ifName, file string) nodeworld.Problem {
	return nodeworld.Problem{Severity: sev, Code: code, Pod: pod, Interface: ifName, File: file}
}

func TestDoctorNamesEveryProblem(t *testing.T) {
	bin := testutil.ToolBinary(t)
	tests := []struct {
		name  string
		build func(t *testing.T, w *nodeworld.World)
		want  []nodeworld.Problem
		// check looks at the rest of the report.
		check func(t *testing.T, w *nodeworld.World, r doctor.Report)
	}{
		{
			name:  "healthy veth pod chained with macguard",
			build: func(t *testing.T, w *nodeworld.World) { webPod(t, w, "web", webMAC) },
			check: func(t *testing.T, w *nodeworld.World, r doctor.Report) {
				if len(r.Pods) != 1 || r.Pods[0].Name != "default/web" {
					t.Fatalf("pods %+v, want default/web only", r.Pods)
				}
				var eth0 *doctor.PodInterface
				for i := range r.Pods[0].Interfaces {
					if r.Pods[0].Interfaces[i].Name == "eth0" {
						eth0 = &r.Pods[0].Interfaces[i]
					}
				}
				if eth0 == nil || eth0.Kind != "veth" || eth0.MAC != webMAC || eth0.Network != "net" || !eth0.Macguard || eth0.Applied != webMAC {
					t.Errorf("eth0 reported as %+v", eth0)
				}
				if len(r.Records) != 1 || r.Records[0].State != "live" {
					t.Errorf("records %+v, want one live", r.Records)
				}
				if len(r.Configs) != 1 || !r.Configs[0].Loaded || !r.Configs[0].Macguard || r.Configs[0].After != "bridge" {
					t.Errorf("configs %+v", r.Configs)
				}
				if !r.Binary.Present || !strings.HasPrefix(r.Binary.Version, "macguard ") {
					t.Errorf("binary %+v", r.Binary)
				}
			},
		},
		{
			name: "a secondary network from Multus' cache",
			build: func(t *testing.T, w *nodeworld.World) {
				pod := webPod(t, w, "web", webMAC)
				w.Macvlan(t, pod, "net1", "0a:58:0a:00:00:31", netlink.MACVLAN_MODE_BRIDGE)
				conf := nodeworld.Conflist("mvnet", `{"type":"macvlan","master":"eth0"}`, macguard)
				w.CacheAttachment(t, pod, nodeworld.Attachment{Network: "mvnet", IfName: "net1", Conflist: conf, ResultMAC: "0a:58:0a:00:00:31", Multus: true})
				w.Record(t, pod.ContainerID, "net1", pod.NetnsPath(), "", "0a:58:0a:00:00:31")
			},
			check: func(t *testing.T, w *nodeworld.World, r doctor.Report) {
				nets := map[string]string{}
				for _, ifc := range r.Pods[0].Interfaces {
					nets[ifc.Name] = ifc.Network + " " + ifc.Applied
				}
				if nets["eth0"] != "net "+webMAC || nets["net1"] != "mvnet 0a:58:0a:00:00:31" {
					t.Errorf("networks and applied MACs %v", nets)
				}
			},
		},
		{
			name: "macvlan pod with assign always has the derived MAC",
			build: func(t *testing.T, w *nodeworld.World) {
				pod := w.NewPod(t, "default", "mv", true)
				mac := testutil.DerivedMAC(t, "--namespace", "default", "--pod", "mv", "--ifname", "net1")
				w.Macvlan(t, pod, "net1", mac, netlink.MACVLAN_MODE_BRIDGE)
				conf := nodeworld.Conflist("mvnet", `{"type":"macvlan","master":"eth0"}`, `{"type":"macguard","assign":"always"}`)
				w.CacheAttachment(t, pod, nodeworld.Attachment{Network: "mvnet", IfName: "net1", Conflist: conf, ResultMAC: mac})
			},
			check: func(t *testing.T, w *nodeworld.World, r doctor.Report) {
				for _, ifc := range r.Pods[0].Interfaces {
					if ifc.Name == "net1" && (ifc.Kind != "macvlan" || ifc.MacvlanMode != "bridge") {
						t.Errorf("net1 reported as %+v, want macvlan in bridge mode", ifc)
					}
				}
			},
		},
		{
			name: "macvlan pod with assign always and another MAC",
			build: func(t *testing.T, w *nodeworld.World) {
				pod := w.NewPod(t, "default", "mv", true)
				w.Macvlan(t, pod, "net1", otherMAC, netlink.MACVLAN_MODE_PRIVATE)
				conf := nodeworld.Conflist("mvnet", `{"type":"macvlan","master":"eth0"}`, `{"type":"macguard","assign":"always"}`)
				w.CacheAttachment(t, pod, nodeworld.Attachment{Network: "mvnet", IfName: "net1", Conflist: conf, ResultMAC: otherMAC})
			},
			want: []nodeworld.Problem{p(doctor.Warning, "mac-not-derived", "default/mv", "net1", "")},
		},
		{
			name: "drift from the MAC macguard applied",
			build: func(t *testing.T, w *nodeworld.World) {
				pod := webPod(t, w, "web", webMAC)
				// Something else changed the MAC after ADD; the cached result
				// and the record still say macguard's.
				w.CacheAttachment(t, pod, nodeworld.Attachment{Network: "net", IfName: "eth0", Conflist: nodeworld.Conflist("net", bridge, macguard), ResultMAC: otherMAC})
				w.Record(t, pod.ContainerID, "eth0", pod.NetnsPath(), "", otherMAC)
			},
			want: []nodeworld.Problem{
				p(doctor.Warning, "mac-differs-from-result", "default/web", "eth0", ""),
				p(doctor.Warning, "mac-drift", "default/web", "eth0", ""),
			},
		},
		{
			name: "cached result differs from the interface",
			build: func(t *testing.T, w *nodeworld.World) {
				pod := w.NewPod(t, "default", "web", true)
				w.Veth(t, pod, "eth0", webMAC)
				w.CacheAttachment(t, pod, nodeworld.Attachment{Network: "net", IfName: "eth0", Conflist: nodeworld.Conflist("net", bridge, macguard), ResultMAC: otherMAC})
			},
			want: []nodeworld.Problem{p(doctor.Warning, "mac-differs-from-result", "default/web", "eth0", "")},
		},
		{
			name: "the same MAC on a veth pod and a macvlan pod",
			build: func(t *testing.T, w *nodeworld.World) {
				webPod(t, w, "web", webMAC)
				other := w.NewPod(t, "default", "db", true)
				w.Macvlan(t, other, "net1", webMAC, netlink.MACVLAN_MODE_BRIDGE)
			},
			want: []nodeworld.Problem{
				p(doctor.Error, "mac-duplicate", "default/web", "eth0", ""),
				p(doctor.Error, "mac-duplicate", "netns-dir:cni-db", "net1", ""),
			},
		},
		{
			name: "stale records: netns gone, interface gone",
			build: func(t *testing.T, w *nodeworld.World) {
				pod := webPod(t, w, "web", webMAC)
				w.Record(t, "gone-sandbox", "eth0", filepath.Join(w.Root, "no-such-netns"), "", otherMAC)
				w.Record(t, pod.ContainerID, "net9", pod.NetnsPath(), "", otherMAC)
			},
			want: []nodeworld.Problem{
				p(doctor.Warning, "record-stale", "", "", nodeworld.RecordName("gone-sandbox", "eth0")),
				p(doctor.Warning, "record-stale", "", "", nodeworld.RecordName(nodeworld.ContainerID("default", "web"), "net9")),
			},
		},
		{
			name: "tuning and macguard both set the MAC",
			build: func(t *testing.T, w *nodeworld.World) {
				w.WriteConf(t, defaultConf, nodeworld.Conflist("net", bridge, `{"type":"tuning","mac":"0a:58:0a:00:00:42"}`, macguard))
			},
			want: []nodeworld.Problem{p(doctor.Warning, "conf-two-owners", "", "", defaultConf)},
		},
		{
			name: "the runtime's first conflist does not chain macguard",
			build: func(t *testing.T, w *nodeworld.World) {
				w.WriteConf(t, "05-cilium.conflist", nodeworld.Conflist("cilium", `{"type":"cilium-cni"}`))
			},
			want: []nodeworld.Problem{p(doctor.Error, "conf-loaded-not-chained", "", "", "05-cilium.conflist")},
		},
		{
			name: "an entry the plugin refuses",
			build: func(t *testing.T, w *nodeworld.World) {
				w.WriteConf(t, defaultConf, nodeworld.Conflist("net", bridge, `{"type":"macguard","assign":"sometimes"}`))
			},
			want: []nodeworld.Problem{p(doctor.Error, "conf-entry-invalid", "", "", defaultConf)},
			check: func(t *testing.T, w *nodeworld.World, r doctor.Report) {
				msg := pluginMessage(t, `{"type":"macguard","assign":"sometimes"}`)
				if f := nodeworld.Find(r, "conf-entry-invalid", ""); f == nil || !strings.Contains(f.Message, msg) {
					t.Errorf("finding %+v does not carry the plugin's own message %q", f, msg)
				}
			},
		},
		{
			name: "a requested MAC on a chain without macguard did not stick",
			build: func(t *testing.T, w *nodeworld.World) {
				pod := w.NewPod(t, "default", "web", true)
				w.Veth(t, pod, "net1", webMAC)
				w.CacheAttachment(t, pod, nodeworld.Attachment{Network: "plain", IfName: "net1", Conflist: nodeworld.Conflist("plain", bridge),
					ResultMAC: webMAC, ExtraArgs: [][2]string{{"MAC", "0a:58:0a:00:00:42"}}})
			},
			want: []nodeworld.Problem{p(doctor.Error, "mac-request-ignored", "default/web", "net1", "")},
		},
		{
			// ADD refuses a MAC for a device without a link layer (or skips
			// it with onUnsupported "skip"); the doctor asks the same rule.
			name: "a requested MAC on a tun, which has no link layer",
			build: func(t *testing.T, w *nodeworld.World) {
				pod := w.NewPod(t, "default", "vpn", true)
				w.Tun(t, pod, "net1")
				w.CacheAttachment(t, pod, nodeworld.Attachment{Network: "net", IfName: "net1", Conflist: nodeworld.Conflist("net", bridge, macguard),
					RuntimeMAC: "0a:58:0a:00:00:42"})
			},
			want: []nodeworld.Problem{p(doctor.Error, "mac-unsupported", "default/vpn", "net1", "")},
		},
		{
			name: "a tun without a requested MAC is none of the doctor's business",
			build: func(t *testing.T, w *nodeworld.World) {
				pod := w.NewPod(t, "default", "vpn", true)
				w.Tun(t, pod, "net1")
				w.CacheAttachment(t, pod, nodeworld.Attachment{Network: "net", IfName: "net1", Conflist: nodeworld.Conflist("net", bridge, macguard)})
			},
		},
		{
			name: "a netns held only by a process, and one seen twice",
			build: func(t *testing.T, w *nodeworld.World) {
				pod := webPod(t, w, "web", webMAC)
				w.AddProcess(t, pod)
				hidden := w.NewPod(t, "default", "hidden", false)
				w.Veth(t, hidden, "eth0", "0a:58:0a:00:00:33")
			},
			check: func(t *testing.T, w *nodeworld.World, r doctor.Report) {
				seen := map[string][]string{}
				for _, pod := range r.Pods {
					seen[pod.Name] = pod.Seen
				}
				want := map[string][]string{"default/web": {"netns-dir", "pid 4001"}, filepath.Join(w.Proc, "4002", "ns", "net"): {"pid 4002"}}
				if !reflect.DeepEqual(seen, want) {
					t.Errorf("pods seen as %v, want %v", seen, want)
				}
			},
		},
		{
			// A doctor in a pod whose netns dir mount receives no new
			// namespaces: the paths the runtime gave are dead ends, and the
			// sandbox's process (its cgroup names the container ID) ties
			// the netns to the cache and the record.
			name: "netns paths unusable, found through the sandbox process",
			build: func(t *testing.T, w *nodeworld.World) {
				pod := w.NewPod(t, "default", "web", false)
				w.Veth(t, pod, "eth0", webMAC)
				dead := filepath.Join(w.NetnsDir, "cni-web")
				if err := os.WriteFile(dead, nil, 0o444); err != nil {
					t.Fatal(err)
				}
				w.CacheAttachment(t, pod, nodeworld.Attachment{Network: "net", IfName: "eth0", Conflist: nodeworld.Conflist("net", bridge, macguard), ResultMAC: webMAC, Netns: dead})
				w.Record(t, pod.ContainerID, "eth0", dead, "", webMAC)
			},
			check: func(t *testing.T, w *nodeworld.World, r doctor.Report) {
				if len(r.Pods) != 1 || r.Pods[0].Name != "default/web" {
					t.Errorf("pods %+v, want default/web", r.Pods)
				}
				if len(r.Records) != 1 || r.Records[0].State != "live" {
					t.Errorf("records %+v, want one live", r.Records)
				}
			},
		},
		{
			name: "no plugin binary",
			build: func(t *testing.T, w *nodeworld.World) {
				if err := os.Remove(filepath.Join(w.Bin, "macguard")); err != nil {
					t.Fatal(err)
				}
			},
			want: []nodeworld.Problem{p(doctor.Error, "binary-missing", "", "", "macguard")},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := base(t)
			tc.build(t, w)
			r, code := w.Run(t, bin)
			got := nodeworld.Problems(r)
			want := slices.Clone(tc.want)
			for i := range want {
				// A pod without a cache entry is named by its netns path.
				if rest, ok := strings.CutPrefix(want[i].Pod, "netns-dir:"); ok {
					want[i].Pod = filepath.Join(w.NetnsDir, rest)
				}
			}
			slices.SortFunc(want, func(a, b nodeworld.Problem) int { return strings.Compare(a.String(), b.String()) })
			if !reflect.DeepEqual(got, want) && (len(got) != 0 || len(want) != 0) {
				t.Errorf("problems:\n  got  %v\n  want %v\nreport: %+v", got, want, r.Findings)
			}
			wantCode := 0
			if len(want) > 0 {
				wantCode = 1
			}
			if code != wantCode {
				t.Errorf("exit code %d, want %d", code, wantCode)
			}
			for _, f := range r.Findings {
				if f.Severity != doctor.Info && f.Remedy == "" {
					t.Errorf("finding without a remedy: %+v", f)
				}
			}
			if tc.check != nil {
				tc.check(t, w, r)
			}
		})
	}
}
