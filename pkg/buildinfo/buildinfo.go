// Package buildinfo carries the version and commit stamped into the binary at
// link time (see the Makefile's LDFLAGS).
package buildinfo

import "fmt"

// Version and Commit are set with -ldflags -X; the defaults mark a build that
// did not go through the Makefile.
var (
	Version = "v0.0.0-dev"
	Commit  = "unknown"
)

// String is the one-line version shown by `macguard version` and in the CNI
// VERSION "about" text.
func String() string {
	return fmt.Sprintf("macguard %s (commit %s)", Version, Commit)
}
