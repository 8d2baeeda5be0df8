// Command macguardctl is macguard's operator tool and the DaemonSet's
// agent: it installs the plugin on a node, prints the MAC a pod or VM will
// get, explains (with the node doctor) the MACs a node has, and runs the
// KubeVirt admission webhook that writes VM interfaces' MACs into their spec. It is a
// separate binary so that the plugin, which runs on every pod start, links
// none of this.
package main

import (
	"os"

	"github.com/macguard-cni/macguard/pkg/ctl/cli"
	"github.com/macguard-cni/macguard/pkg/ctl/doctor"
	"github.com/macguard-cni/macguard/pkg/ctl/install"
	"github.com/macguard-cni/macguard/pkg/ctl/webhook"
)

func main() {
	cli.Register("install", install.InstallMain)
	cli.Register("uninstall", install.UninstallMain)
	cli.Register("doctor", doctor.Main)
	cli.Register("webhook", webhook.Main)
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
