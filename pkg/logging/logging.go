// Package logging opens the plugin's log: stderr (which runtimes capture) or
// an append-only file that an operator chose.
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"syscall"
)

// Open returns a logger at level writing to file, or to stderr when file is
// empty. The file is opened append-only with mode 0600 and refuses to follow
// a symlink in its last component, because the plugin runs as root and a
// planted link would otherwise let anyone who can write the directory
// redirect root's writes.
func Open(file, level string, stderr io.Writer) (*slog.Logger, func(), error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, nil, fmt.Errorf("invalid logLevel %q: use debug, info, warn or error", level)
	}
	w, closeFn := stderr, func() {}
	if file != "" {
		f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
		if err != nil {
			return nil, nil, fmt.Errorf("opening logFile %s: %w", file, err)
		}
		// Every record is written straight to the file (no buffer), so
		// Close cannot lose a line.
		w, closeFn = f, func() { _ = f.Close() }
	}
	h := slog.NewTextHandler(w, &slog.HandlerOptions{Level: lvl})
	return slog.New(h).With("plugin", "macguard", "pid", os.Getpid()), closeFn, nil
}

// Discard is a logger for tests and callers that want none.
func Discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
