// Package logging opens the plugin's log: stderr (which runtimes capture) or
// an append-only file that an operator chose, beneath the node's log roots.
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/macguard-cni/macguard/pkg/pathpolicy"
)

// ParseLevel checks a logLevel.
func ParseLevel(level string) (slog.Level, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return lvl, fmt.Errorf("invalid logLevel %q: use debug, info, warn or error", level)
	}
	return lvl, nil
}

// Open returns a logger at level writing to file, or to stderr when file is
// empty. The file must lie beneath one of roots.Log and is opened
// append-only with mode 0600 through pathpolicy.OpenAppend: no symlink in
// any component, no FIFO, only a regular file, because the plugin runs as
// root and the path comes from a conflist a tenant may have written.
func Open(file string, roots pathpolicy.Roots, level string, stderr io.Writer) (*slog.Logger, func(), error) {
	lvl, err := ParseLevel(level)
	if err != nil {
		return nil, nil, err
	}
	w, closeFn := stderr, func() {}
	if file != "" {
		place, err := roots.LogFile(file)
		if err != nil {
			return nil, nil, err
		}
		f, err := pathpolicy.OpenAppend(place)
		if err != nil {
			return nil, nil, fmt.Errorf("opening logFile %s: %w", file, err)
		}
		// Every record is written straight to the file (no buffer), so
		// Close cannot lose a line.
		w, closeFn = f, func() { _ = f.Close() }
	}
	return New(w, lvl), closeFn, nil
}

// New is the plugin's logger on w.
func New(w io.Writer, lvl slog.Level) *slog.Logger {
	h := slog.NewTextHandler(w, &slog.HandlerOptions{Level: lvl})
	return slog.New(h).With("plugin", "macguard", "pid", os.Getpid())
}

// Discard is a logger for tests and callers that want none.
func Discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
