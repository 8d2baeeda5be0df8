// Command macguard is a chained CNI meta-plugin that gives the pod
// interface a stable, valid MAC and reports it in the result. Run without
// CNI_COMMAND it is a small CLI (see `macguard help`).
package main

import (
	"os"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/macguard-cni/macguard/pkg/buildinfo"
	"github.com/macguard-cni/macguard/pkg/cli"
	"github.com/macguard-cni/macguard/pkg/cnienv"
	"github.com/macguard-cni/macguard/pkg/install"
	"github.com/macguard-cni/macguard/pkg/plugin"
	"github.com/macguard-cni/macguard/pkg/stdin"
)

func main() {
	if os.Getenv("CNI_COMMAND") == "" {
		cli.SupportedVersions = plugin.SupportedVersions.SupportedVersions()
		cli.Register("install", install.InstallMain)
		cli.Register("uninstall", install.UninstallMain)
		os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
	}
	cnienv.Validate()
	stdin.Bound(stdin.Limit)
	skel.PluginMainFuncs(plugin.New().Funcs(), plugin.SupportedVersions, buildinfo.String())
}
