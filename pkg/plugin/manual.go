package plugin

import (
	"fmt"
	"io"
	"strings"

	"github.com/macguard-cni/macguard/pkg/buildinfo"
)

const manual = `macguard is a CNI plugin: a container runtime runs it with CNI_COMMAND set,
chained after the main plugin in a conflist.

The operator's commands live in macguardctl:
  macguardctl mac --namespace NS --vm NAME --ifname IF   the MAC a VM will get
  macguardctl install / uninstall                        put macguard on a node
  macguardctl help
`

// Manual is what the plugin binary does when a person runs it (CNI_COMMAND
// unset): "version" prints the version; anything else prints what reference
// plugins print by hand, plus a pointer to macguardctl. It returns the exit
// code: 0 for no arguments, version or help, 2 for anything else.
func Manual(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "version", "--version", "-v":
			fmt.Fprintln(stdout, buildinfo.String())
			return 0
		case "help", "--help", "-h":
			fmt.Fprint(stdout, manual)
			return 0
		}
	}
	fmt.Fprintln(stderr, buildinfo.String())
	fmt.Fprintf(stderr, "CNI protocol versions supported: %s\n\n", strings.Join(SupportedVersions.SupportedVersions(), ", "))
	fmt.Fprint(stderr, manual)
	if len(args) > 0 {
		fmt.Fprintf(stderr, "\nmacguard: unknown command %q (operator commands are macguardctl's)\n", args[0])
		return 2
	}
	return 0
}
