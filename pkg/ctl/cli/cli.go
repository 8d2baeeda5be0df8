// Package cli is macguardctl's command line: it dispatches subcommands and
// holds the small ones itself (version, and mac: the MAC a pod or VM will
// get, so operators can pre-register it in DHCP or firewall rules). Larger
// subcommands (install, uninstall, doctor) live in their own packages and
// are registered by main.
package cli

import (
	"flag"
	"fmt"
	"io"

	"github.com/macguard-cni/macguard/pkg/buildinfo"
	"github.com/macguard-cni/macguard/pkg/identity"
	"github.com/macguard-cni/macguard/pkg/macaddr"
)

const usage = `macguardctl: the operator's tool for macguard, the chained CNI plugin that
gives pod and VM interfaces a stable, valid MAC (the plugin itself is the
macguard binary in the CNI bin directory).

  macguardctl version
  macguardctl mac --namespace NS --pod NAME --ifname IF [--salt S] [--prefix P]
  macguardctl mac --namespace NS --vm NAME --ifname IF [--salt S] [--prefix P]
  macguardctl mac --container-id ID --ifname IF [--salt S] [--prefix P]
  macguardctl mac --namespace NS --vm NAME --vm-interface NAME [--salt S] [--prefix P]
                  (the MAC "macguardctl webhook" writes into the VM spec)
  macguardctl install [--cni-bin-dir DIR] [--chain-into FILE --plugin-config JSON] [--watch]
  macguardctl uninstall [--chain-into FILE] [--remove-binary]
  macguardctl doctor [--json] [--fix] [--conf FILE] [--kubeconfig FILE]   what is wrong with the MACs on this node
  macguardctl webhook [--salt S] [--prefix P] [--cert-secret NS/NAME ...]   the admission webhook (see --help)
  macguardctl help     (install/uninstall: see "macguardctl install --help")
`

// Main runs the CLI and returns the process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, buildinfo.String())
		return 0
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
		return 0
	case "mac":
		return macCmd(args[1:], stdout, stderr)
	}
	if cmd, ok := extra[args[0]]; ok {
		return cmd(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "macguardctl: unknown command %q\n\n%s", args[0], usage)
	return 2
}

// extra holds subcommands registered by main.
var extra = map[string]func(args []string, stdout, stderr io.Writer) int{}

// Register adds a subcommand; it is called from main before Main.
func Register(name string, cmd func(args []string, stdout, stderr io.Writer) int) {
	extra[name] = cmd
}

func macCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mac", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ns := fs.String("namespace", "", "Kubernetes namespace of the pod or VM")
	pod := fs.String("pod", "", "pod name (a virt-launcher-<vm>-<suffix> name resolves to its VM)")
	vm := fs.String("vm", "", "KubeVirt VM name")
	cid := fs.String("container-id", "", "container ID, for pods started without Kubernetes arguments")
	ifName := fs.String("ifname", "", "interface name inside the pod, e.g. eth0 or net1")
	salt := fs.String("salt", "", "the salt from the plugin config")
	prefix := fs.String("prefix", "", "the prefix from the plugin config (with --vm-interface: the webhook's --prefix)")
	vmIface := fs.String("vm-interface", "", "with --vm: an interface's name in the VM spec (e.g. default); prints the MAC the webhook writes into the spec, not the pod interface's")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "macguardctl mac: "+format+"\n", a...)
		return 2
	}
	if *vmIface != "" {
		if *ifName != "" || *pod != "" || *cid != "" || *ns == "" || *vm == "" {
			return fail("--vm-interface needs --namespace and --vm and excludes --ifname, --pod and --container-id (it names the VM spec's interface, --ifname the pod's)")
		}
		p, err := macaddr.ParsePrefix(*prefix)
		if err != nil {
			return fail("--prefix: %v", err)
		}
		vmID := identity.VM(*ns, *vm)
		fmt.Fprintln(stdout, macaddr.DeriveVMInterface(macaddr.Input{Kind: vmID.Kind, Key: vmID.Key, IfName: *vmIface, Salt: *salt, Prefix: p}))
		return 0
	}
	if *ifName == "" {
		return fail("--ifname is required (the interface name inside the pod, e.g. eth0)")
	}
	p, err := macaddr.ParsePrefix(*prefix)
	if err != nil {
		return fail("--prefix: %v", err)
	}
	var id identity.Identity
	switch {
	case *cid != "" && (*pod != "" || *vm != "" || *ns != ""):
		return fail("--container-id cannot be combined with --namespace, --pod or --vm")
	case *cid != "":
		id = identity.Container(*cid)
	case *ns == "" || (*pod == "") == (*vm == ""):
		return fail("give --namespace with exactly one of --pod or --vm (or --container-id)")
	case *vm != "":
		id = identity.VM(*ns, *vm)
	default:
		id, err = identity.Resolve(identity.ModeAuto, identity.Pod{Namespace: *ns, Name: *pod}, "")
		if err != nil {
			return fail("%v", err)
		}
	}
	mac := macaddr.Derive(macaddr.Input{Kind: id.Kind, Key: id.Key, IfName: *ifName, Salt: *salt, Prefix: p})
	fmt.Fprintln(stdout, mac)
	return 0
}
