// Package stdin bounds how much of standard input the plugin reads.
//
// skel reads all of stdin with io.ReadAll before it looks at a byte of it, so
// a runtime bug or a hostile caller that streams without end would make a
// root process on every node grow until the OOM killer picks something. A
// network config with its prevResult is a few KiB even for pods with many
// interfaces, so the plugin reads at most Limit bytes, answers with a CNI
// error when there is more, and hands skel the bytes it read.
package stdin

import (
	"fmt"
	"io"
	"os"

	"github.com/containernetworking/cni/pkg/types"
)

// Limit is the most macguard reads from stdin: 1 MiB, three orders of
// magnitude above a real config.
const Limit = 1 << 20

// Read returns all of r when it holds at most limit bytes. It stops reading
// after limit+1 bytes, so an endless stream costs limit+1 bytes of memory and
// ends at once. The errors are the CNI errors the plugin prints: code 7
// (invalid network config) for too much input, which may well be valid JSON,
// and code 5 (I/O failure, as skel uses) when stdin cannot be read.
func Read(r io.Reader, limit int64) ([]byte, *types.Error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, types.NewError(types.ErrIOFailure, fmt.Sprintf("reading the network config from stdin: %v", err), "")
	}
	if int64(len(data)) > limit {
		return nil, types.NewError(types.ErrInvalidNetworkConfig,
			fmt.Sprintf("network config on stdin is larger than %s, the most macguard reads (a config with its prevResult is a few KiB)", size(limit)), "")
	}
	return data, nil
}

func size(n int64) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB (%d bytes)", n>>20, n)
	}
	return fmt.Sprintf("%d bytes", n)
}

// Replace reads in (at most limit bytes) and returns a file that yields the
// same bytes, for code such as skel that insists on reading an *os.File.
// The replacement is a pipe fed by a goroutine: it needs no file system,
// and a config larger than the pipe buffer (64 KiB) simply streams.
func Replace(in *os.File, limit int64) (*os.File, *types.Error) {
	data, cniErr := Read(in, limit)
	if cniErr != nil {
		return nil, cniErr
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, types.NewError(types.ErrIOFailure, fmt.Sprintf("buffering the network config read from stdin: %v", err), "")
	}
	go func() {
		// A reader that stops early (skel does not read stdin for VERSION)
		// leaves this goroutine blocked until the process exits, which for
		// a plugin is moments later.
		// Write fails only when the reader closed early, which is fine.
		_, _ = w.Write(data)
		_ = w.Close()
	}()
	return r, nil
}

// Bound makes os.Stdin the bounded copy of itself before skel reads it. On
// too much input or a read error it prints the CNI error on stdout and exits
// 1, as skel would. VERSION is left alone: skel does not read stdin for it,
// and someone typing `CNI_COMMAND=VERSION macguard` at a terminal must not
// find it waiting for end of input.
func Bound(limit int64) {
	if os.Getenv("CNI_COMMAND") == "VERSION" {
		return
	}
	r, cniErr := Replace(os.Stdin, limit)
	if cniErr != nil {
		_ = cniErr.Print() // should stdout be gone, exit status 1 still says it failed
		os.Exit(1)
	}
	os.Stdin = r
}
