package main

import (
	"strings"
	"testing"
)

// A ptp ADD result as ptp v1.9.1 prints it (host veth first, then the
// sandbox interface).
const ptpResult = `{"cniVersion":"1.1.0","interfaces":[
 {"name":"veth1234","mac":"aa:bb:cc:00:00:01"},
 {"name":"eth0","mac":"0a:58:c6:12:05:02","sandbox":"/run/netns/x"}],
 "ips":[{"interface":1,"address":"198.18.5.2/24","gateway":"198.18.5.1"}]}`

func TestMainPluginMAC(t *testing.T) {
	s := sample{Calls: []call{
		{Plugin: "ptp", Command: "ADD", Stdout: []byte(ptpResult)},
		{Plugin: "macguard", Command: "ADD", Stdout: []byte(strings.ReplaceAll(ptpResult, "0a:58:c6:12:05:02", "02:00:00:00:00:99"))},
	}}
	mac, err := mainPluginMAC(s, "ptp")
	if err != nil || mac != "0a:58:c6:12:05:02" {
		t.Fatalf("mainPluginMAC = %q, %v; want ptp's sandbox MAC, not the chained plugin's", mac, err)
	}
	for name, s := range map[string]sample{
		"main never ran":   {Calls: []call{{Plugin: "macguard", Command: "ADD", Stdout: []byte(ptpResult)}}},
		"output not kept":  {Calls: []call{{Plugin: "ptp", Command: "ADD"}}},
		"no sandbox iface": {Calls: []call{{Plugin: "ptp", Command: "ADD", Stdout: []byte(`{"cniVersion":"1.1.0","interfaces":[{"name":"veth1","mac":"aa:bb:cc:00:00:01"}]}`)}}},
	} {
		if mac, err := mainPluginMAC(s, "ptp"); err == nil {
			t.Errorf("%s: mainPluginMAC = %q, want an error", name, mac)
		}
	}
}
