package install

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watch runs r until ctx is done: a full pass now and every Resync, and a
// pass over the concerned files shortly after any change to them.
//
// The directories are watched, not the files: an agent replaces its
// conflist by rename (Cilium's renameio) or rewrites it in place (Calico),
// and may delete and create it again, all of which are events for a name in
// the directory. The resync covers what inotify cannot see, such as a write
// through a hard link elsewhere.
func (r *runner) watch(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("starting the file watcher: %w", err)
	}
	defer w.Close()

	// What each watched directory entry concerns: the binary (nil) or a
	// target.
	type key struct{ dir, name string }
	interest := map[key][]*target{}
	var dirs []string
	addDir := func(d string) {
		if !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
	}
	if r.opts.CNIBinDir != "" {
		d := filepath.Clean(r.opts.CNIBinDir)
		interest[key{d, PluginType}] = nil
		addDir(d)
	}
	for _, t := range r.targets {
		d := filepath.Dir(t.list)
		for _, n := range t.names() {
			interest[key{d, n}] = append(interest[key{d, n}], t)
		}
		addDir(d)
	}
	// Adding a directory already watched is harmless, and re-resolves its
	// path: a directory that was replaced is watched again.
	watchDirs := func() {
		for _, d := range dirs {
			if err := w.Add(d); err != nil {
				r.log.Error("cannot watch directory; relying on the periodic resync", "dir", d, "err", err)
			}
		}
	}
	watchDirs()
	// In this loop the errors of applyAll, applyBinary and applyTarget are
	// already logged where they happen (applyTarget and applyBinary log
	// each new failure at Error with the file, once until it changes;
	// backOff logs a hold at Warn; a missing conflist is logged at Info),
	// and a watch keeps going: the next event, retry or resync tries
	// again. Nothing is lost by discarding them here.
	_ = r.applyAll()

	resync := time.NewTicker(r.opts.Resync)
	defer resync.Stop()
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	armRetry := func() {
		if next := r.nextRetry(); !next.IsZero() {
			retry.Reset(next.Sub(r.now()))
		}
	}
	armRetry()

	dirtyBin, dirtyAll := false, false
	dirty := map[*target]bool{}
	events, errs := w.Events, w.Errors
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-events:
			if !ok {
				events = nil // watcher gone; resync keeps working
				r.log.Warn("file events stopped; relying on the periodic resync", "every", r.opts.Resync)
				continue
			}
			if slices.Contains(dirs, e.Name) {
				// The directory itself was removed or moved away;
				// fsnotify dropped its watch, and the next pass adds it
				// again once it is back.
				dirtyAll = true
			} else {
				ts, ok := interest[key{filepath.Dir(e.Name), filepath.Base(e.Name)}]
				if !ok {
					continue // another file, or one of our temporary files
				}
				if ts == nil {
					dirtyBin = true
				}
				for _, t := range ts {
					dirty[t] = true
				}
			}
			debounce.Reset(r.opts.debounce)
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			// Events were lost (the kernel's queue overflowed, or a read
			// failed): only a full pass is sure to see what they said.
			if !errors.Is(err, fsnotify.ErrEventOverflow) {
				r.log.Warn("file watcher error; re-checking every file", "err", err)
			}
			dirtyAll = true
			debounce.Reset(r.opts.debounce)
		case <-debounce.C:
			if dirtyAll {
				watchDirs()
				_ = r.applyAll() // logged by applyBinary/applyTarget, see above
			} else {
				if dirtyBin {
					_ = r.applyBinary() // logged by applyBinary, see above
				}
				for _, t := range r.targets {
					if dirty[t] {
						_ = r.applyTarget(t) // logged by applyTarget, see above
					}
				}
			}
			dirtyBin, dirtyAll = false, false
			clear(dirty)
			armRetry()
		case <-retry.C:
			r.retryHeld()
			armRetry()
		case <-resync.C:
			watchDirs()
			_ = r.applyAll() // logged by applyBinary/applyTarget, see above
			armRetry()
		}
	}
}
