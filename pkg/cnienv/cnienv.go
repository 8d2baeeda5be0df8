// Package cnienv checks the CNI_* variables skel validates, before skel does,
// so that a bad value is reported with the variable's name and the rule it
// breaks. skel's own texts ("interface name is . or ..", "invalid characters
// in containerID", "unknown CNI_COMMAND: X") say neither, and they end up in
// `kubectl describe pod` where nobody can look anything up.
//
// The judge is skel's own (cni/pkg/utils, the functions skel calls), so the
// set of accepted invocations and the error code (4, invalid environment
// variables) cannot differ from skel's; only the message does. Missing
// variables are left to skel, whose message already lists them by name.
package cnienv

import (
	"fmt"
	"os"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/utils"
)

// Commands are the CNI_COMMAND values skel dispatches.
var Commands = []string{"ADD", "CHECK", "DEL", "GC", "STATUS", "VERSION"}

// maxIfName is IFNAMSIZ-1, the limit utils.ValidateInterfaceName applies
// (its constant is not exported); the message states it.
const maxIfName = 15

// Check returns the CNI error for the first invalid CNI_* value, or nil.
func Check(getenv func(string) string) *types.Error {
	cmd := getenv("CNI_COMMAND")
	known := false
	for _, c := range Commands {
		known = known || cmd == c
	}
	if !known {
		return invalid("unknown CNI_COMMAND %q: use %s", cmd, strings.Join(Commands, ", "))
	}
	// skel validates these two only for the commands that need them.
	if cmd != "ADD" && cmd != "CHECK" && cmd != "DEL" {
		return nil
	}
	if id := getenv("CNI_CONTAINERID"); id != "" && utils.ValidateContainerID(id) != nil {
		return invalid("invalid CNI_CONTAINERID %q: a container ID is a letter or digit followed by letters, digits, '_', '.' or '-'", id)
	}
	if name := getenv("CNI_IFNAME"); name != "" && utils.ValidateInterfaceName(name) != nil {
		return invalid("invalid CNI_IFNAME %q: %s; an interface name is 1 to %d bytes without '/', ':' or whitespace, and not \".\" or \"..\"", name, ifNameProblem(name), maxIfName)
	}
	return nil
}

// ifNameProblem says which rule a non-empty name that
// utils.ValidateInterfaceName refused breaks. It asks in the library's own
// order (length, "." or "..", then characters), so what is left after the
// first two is the character rule; the library's texts are not used
// because they name neither the variable nor the byte count.
func ifNameProblem(name string) string {
	switch {
	case len(name) > maxIfName:
		return fmt.Sprintf("%d bytes is too long", len(name))
	case name == "." || name == "..":
		return "not a name"
	}
	return "contains '/', ':' or whitespace"
}

func invalid(format string, a ...any) *types.Error {
	return types.NewError(types.ErrInvalidEnvironmentVariables, fmt.Sprintf(format, a...), "")
}

// Validate runs Check on the process environment; on failure it prints the
// CNI error on stdout and exits 1, as skel would.
func Validate() {
	if err := Check(os.Getenv); err != nil {
		_ = err.Print() // should stdout be gone, exit status 1 still says it failed
		os.Exit(1)
	}
}
