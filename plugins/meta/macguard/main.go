// Command macguard is a chained CNI meta-plugin that gives the pod
// interface a stable, valid MAC and reports it in the result. It is only the
// plugin: the operator's commands (install, mac, doctor) are macguardctl's,
// so the binary every pod start runs carries none of them.
package main

import (
	"os"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/macguard-cni/macguard/pkg/buildinfo"
	"github.com/macguard-cni/macguard/pkg/cnienv"
	"github.com/macguard-cni/macguard/pkg/plugin"
	"github.com/macguard-cni/macguard/pkg/stdin"
)

func main() {
	if os.Getenv("CNI_COMMAND") == "" {
		os.Exit(plugin.Manual(os.Args[1:], os.Stdout, os.Stderr))
	}
	cnienv.Validate()
	stdin.Bound(stdin.Limit)
	skel.PluginMainFuncs(plugin.New().Funcs(), plugin.SupportedVersions, buildinfo.String())
}
