package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/containernetworking/cni/libcni"
)

// cniVersion is the newest the reference plugins and macguard share; it is
// also the first with GC, which the GC sweep needs.
const cniVersion = "1.1.0"

// variant is one chain under test.
type variant struct {
	Key   string `json:"key"`
	Title string `json:"title"`
	// Main is the interface plugin (macvlan, ptp, bridge); Meta the chained
	// plugin after it, "" for a floor.
	Main string `json:"main"`
	Meta string `json:"meta,omitempty"`
	// Floor is the key of the chain with the same Main and no Meta.
	Floor string `json:"floor"`
	// RequestMAC: the runtime asks for a MAC through the "mac" capability
	// (runtimeConfig.mac), as Multus does for a pod annotation.
	RequestMAC bool `json:"requestMAC"`
	// ExpectMAC says what MAC the ADD result must report for the sandbox
	// interface, so a chain that silently did nothing is caught instead of
	// being measured as fast.
	Expect expectation `json:"-"`

	list *libcni.NetworkConfigList
}

type expectation int

const (
	expectAny       expectation = iota // whatever the main plugin chose
	expectRequested                    // the MAC in runtimeConfig.mac
	expectDerived                      // macguard's derived MAC (pkg/macaddr, what `macguardctl mac` prints)
	// expectUnchanged: the MAC the main plugin reported, i.e. the chained
	// plugin changed nothing. A pass-through that rewrote the MAC would
	// pass expectAny and be timed as if it had done nothing.
	expectUnchanged
)

// Keys of the variants, in the order they are interleaved and reported.
const (
	vFloorMacvlan = "floor-macvlan"
	vTuning       = "macvlan+tuning"
	vMGEnforce    = "macvlan+macguard"
	vMGQuiet      = "macvlan+macguard-noannounce"
	vFloorPtp     = "floor-ptp"
	vMGPass       = "ptp+macguard"
	vFloorBridge  = "floor-bridge"
	vMGAlways     = "bridge+macguard"
)

// buildVariants returns the chains of the latency comparison. Each gets its
// own network name, IPAM subnet (198.18.0.0/15 is reserved for benchmarks,
// RFC 2544) and state directories in the run's tmpfs.
func buildVariants(e *env) ([]*variant, error) {
	vs := []*variant{
		{Key: vFloorMacvlan, Title: "floor: macvlan", Main: "macvlan"},
		{Key: vTuning, Title: "macvlan + tuning (requested MAC)", Main: "macvlan", Meta: "tuning", RequestMAC: true, Expect: expectRequested},
		{Key: vMGEnforce, Title: "macvlan + macguard (requested MAC)", Main: "macvlan", Meta: "macguard", RequestMAC: true, Expect: expectRequested},
		// Not a target: isolates what the announcement costs.
		{Key: vMGQuiet, Title: "macvlan + macguard (requested MAC, announce off)", Main: "macvlan", Meta: "macguard", RequestMAC: true, Expect: expectRequested},
		{Key: vFloorPtp, Title: "floor: ptp", Main: "ptp"},
		{Key: vMGPass, Title: "ptp + macguard (pass-through)", Main: "ptp", Meta: "macguard", Expect: expectUnchanged},
		{Key: vFloorBridge, Title: "floor: bridge", Main: "bridge"},
		{Key: vMGAlways, Title: `bridge + macguard (assign "always")`, Main: "bridge", Meta: "macguard", Expect: expectDerived},
	}
	for i, v := range vs {
		v.Floor = "floor-" + v.Main
		var metaConf map[string]any
		switch v.Meta {
		case "tuning":
			metaConf = map[string]any{"type": "tuning", "capabilities": map[string]bool{"mac": true}, "dataDir": e.path("tuning", v.Key)}
		case "macguard":
			metaConf = map[string]any{"type": "macguard", "dataDir": e.path("macguard", v.Key)}
			if v.RequestMAC {
				metaConf["capabilities"] = map[string]bool{"mac": true}
			}
			if v.Expect == expectDerived {
				metaConf["assign"] = "always"
			}
			if v.Key == vMGQuiet {
				metaConf["announce"] = false
			}
		}
		list, err := chain(e, netName(v.Key), v.Main, i, metaConf)
		if err != nil {
			return nil, fmt.Errorf("variant %s: %w", v.Key, err)
		}
		v.list = list
	}
	return vs, nil
}

func netName(key string) string { return "mgbench-" + safe(key) }

// safe turns a variant key into something CNI accepts in a container ID or
// network name ([a-zA-Z0-9_.-]).
func safe(key string) string { return strings.ReplaceAll(key, "+", "_") }

// chain builds a conflist of main (with host-local IPAM on subnet
// 198.18.<subnet>.0/24) followed by meta when it is not nil.
func chain(e *env, name, main string, subnet int, meta map[string]any) (*libcni.NetworkConfigList, error) {
	ipam := map[string]any{
		"type":    "host-local",
		"ranges":  [][]map[string]string{{{"subnet": fmt.Sprintf("198.18.%d.0/24", subnet)}}},
		"dataDir": e.path("ipam"),
	}
	mainConf := map[string]any{"type": main, "ipam": ipam}
	switch main {
	case "macvlan":
		mainConf["master"] = nodeParent
		mainConf["mode"] = "bridge"
	case "bridge":
		mainConf["bridge"] = fmt.Sprintf("mgb-br%d", subnet)
	case "ptp":
	default:
		return nil, fmt.Errorf("no configuration for main plugin %q", main)
	}
	plugins := []any{mainConf}
	if meta != nil {
		plugins = append(plugins, meta)
	}
	raw, err := json.Marshal(map[string]any{"cniVersion": cniVersion, "name": name, "plugins": plugins})
	if err != nil {
		return nil, fmt.Errorf("encoding conflist %s: %w", name, err)
	}
	list, err := libcni.NetworkConfFromBytes(raw)
	if err != nil {
		return nil, fmt.Errorf("libcni rejects conflist %s: %w", name, err)
	}
	return list, nil
}
