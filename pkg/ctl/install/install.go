// Package install is `macguardctl install` and `macguardctl uninstall`, the
// DaemonSet's agent: it puts the macguard plugin on a node and keeps it
// there.
//
// install copies the macguard plugin binary (by default the file macguard
// next to the running macguardctl, as in the image) into the CNI bin
// directory and chains a macguard entry into the conflist a primary CNI
// (Cilium, Calico) writes; with --watch it keeps doing so whenever that
// agent rewrites the file. uninstall takes the entry (and, if asked, the
// binary) out again. Every write is atomic and durable, keeps the file's
// mode and owner, and only ever happens after the file was parsed the way
// the runtime parses it (with libcni): a file macguard cannot parse is
// reported and left exactly as it is.
package install

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/macguard-cni/macguard/pkg/atomicfile"
)

// Options is what an install or uninstall run does.
type Options struct {
	// CNIBinDir is where the binary goes (install) or is removed from
	// (uninstall with RemoveBinary). Empty: the binary is not touched.
	CNIBinDir string
	// Source is the plugin binary to install; empty means the file
	// macguard next to the running executable (see defaultSource).
	Source string
	// ChainInto lists the conflists to add the entry to, or to remove it
	// from.
	ChainInto []string
	// PluginConfig is the entry's JSON (install); empty means
	// DefaultPluginConfig.
	PluginConfig string
	// ConvertConf allows turning a single-plugin .conf into a .conflist.
	ConvertConf bool
	// RemoveBinary removes CNIBinDir/macguard on uninstall.
	RemoveBinary bool
	// Watch keeps the run going: files are re-checked on every change and
	// every Resync until the context is cancelled.
	Watch bool
	// Resync is the period of the full re-check in watch mode; inotify can
	// miss changes (an overflowing queue, a directory replaced).
	Resync time.Duration

	// Tunables for tests; zero values mean the defaults below.
	debounce   time.Duration
	flapWrites int
	flapWindow time.Duration
	holdMin    time.Duration
	holdMax    time.Duration
}

// Defaults for Options.
const (
	DefaultResync = time.Minute
	// debounce lets a writer that produces several events (truncate,
	// write, close) finish before the file is read.
	defaultDebounce = 100 * time.Millisecond
	// When macguard had to re-add its entry flapWrites times within
	// flapWindow, another writer is removing it as fast as it is added
	// (Cilium with cni.exclusive=true regenerates its file on every change
	// in the directory). macguard then waits holdMin, doubling up to
	// holdMax while the fight goes on, instead of feeding the loop (see
	// admit).
	defaultFlapWrites = 5
	defaultFlapWindow = time.Minute
	defaultHoldMin    = 10 * time.Second
	defaultHoldMax    = 5 * time.Minute
)

func (o *Options) setDefaults() {
	if o.Resync <= 0 {
		o.Resync = DefaultResync
	}
	if o.debounce <= 0 {
		o.debounce = defaultDebounce
	}
	if o.flapWrites <= 0 {
		o.flapWrites = defaultFlapWrites
	}
	if o.flapWindow <= 0 {
		o.flapWindow = defaultFlapWindow
	}
	if o.holdMin <= 0 {
		o.holdMin = defaultHoldMin
	}
	if o.holdMax <= 0 {
		o.holdMax = defaultHoldMax
	}
}

// target is one --chain-into file and what the run knows about it.
type target struct {
	// given is the path as the operator wrote it.
	given string
	// list is the conflist that holds (or will hold) the entry.
	list string
	// conf is set when given is a single-plugin file (.conf, .json) that
	// --convert-conf turns into list.
	conf string

	// Watch-mode state. writes: the recent writes, counted only while
	// there is no back-off. hold: the current back-off, 0 when there is
	// none; holdUntil: its end; retried: when the first try after it was
	// let through, zero until then (see admit). lastErr: the last error
	// logged, so a file that stays broken is reported once, not on every
	// event.
	writes    []time.Time
	hold      time.Duration
	holdUntil time.Time
	retried   time.Time
	lastErr   string
	waiting   bool
}

func newTarget(path string) *target {
	path = filepath.Clean(path)
	ext := filepath.Ext(path)
	if ext == ".conflist" {
		return &target{given: path, list: path}
	}
	return &target{given: path, list: strings.TrimSuffix(path, ext) + ".conflist", conf: path}
}

// names are the directory entries whose changes concern t.
func (t *target) names() []string {
	n := []string{filepath.Base(t.list)}
	if t.conf != "" {
		n = append(n, filepath.Base(t.conf))
	}
	return n
}

// runner carries one install or uninstall run.
type runner struct {
	opts      Options
	log       *slog.Logger
	uninstall bool
	entry     json.RawMessage
	srcSum    string
	targets   []*target
	now       func() time.Time
	// binOK: the binary was found or put in place; chaining waits for
	// it, so a conflist never names a plugin the runtime cannot find.
	binOK  bool
	binErr string
}

func newRunner(opts Options, log *slog.Logger, uninstall bool) (*runner, error) {
	opts.setDefaults()
	r := &runner{opts: opts, log: log, uninstall: uninstall, now: time.Now}
	if len(opts.ChainInto) == 0 && opts.CNIBinDir == "" {
		return nil, errors.New("nothing to do: give --cni-bin-dir and/or --chain-into")
	}
	if uninstall && opts.RemoveBinary && opts.CNIBinDir == "" {
		return nil, errors.New("--remove-binary needs --cni-bin-dir")
	}
	seen := map[string]bool{}
	for _, p := range opts.ChainInto {
		if p == "" {
			continue
		}
		t := newTarget(p)
		if seen[t.list] {
			continue
		}
		seen[t.list] = true
		r.targets = append(r.targets, t)
	}
	if uninstall {
		return r, nil
	}
	entry, err := Entry(opts.PluginConfig)
	if err != nil {
		return nil, err
	}
	r.entry = entry
	if opts.CNIBinDir != "" {
		if r.opts.Source == "" {
			src, err := defaultSource(os.Executable)
			if err != nil {
				return nil, err
			}
			r.opts.Source = src
		}
		sum, err := sourceSHA256(r.opts.Source)
		if err != nil {
			return nil, err
		}
		r.srcSum = sum
	} else {
		r.binOK = true
	}
	return r, nil
}

// defaultSource is the plugin binary installed when no --plugin-binary is
// given: the file macguard in the directory of the running executable
// (executable is os.Executable). In the image that is /macguard, next to
// /macguardctl.
func defaultSource(executable func() (string, error)) (string, error) {
	exe, err := executable()
	if err != nil {
		return "", fmt.Errorf("finding the plugin binary next to this program: %w (give --plugin-binary)", err)
	}
	src := filepath.Join(filepath.Dir(exe), PluginType)
	if filepath.Clean(exe) == src {
		// This program is named like the plugin (macguardctl renamed):
		// installing it would make every pod start run the tool.
		return "", fmt.Errorf("this program is itself named %s; give the plugin binary with --plugin-binary", src)
	}
	return src, nil
}

// sourceSHA256 checks that src is a regular file and returns its checksum.
// Installing anything else (a directory, a device) into the CNI bin
// directory would break every pod start.
func sourceSHA256(src string) (string, error) {
	fi, err := os.Stat(src)
	if err != nil {
		return "", fmt.Errorf("the plugin binary to install: %w (give its path with --plugin-binary or MACGUARD_PLUGIN_BINARY)", err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("the plugin binary to install, %s, is not a regular file (%s)", src, fi.Mode().Type())
	}
	sum, err := fileSHA256(src)
	if err != nil {
		return "", fmt.Errorf("checksum of the plugin binary %s: %w", src, err)
	}
	return sum, nil
}

func (r *runner) binPath() string { return filepath.Join(r.opts.CNIBinDir, PluginType) }

// errNotYet: the conflist does not exist yet (the CNI agent writes it once
// it is ready); in watch mode the run waits for it.
var errNotYet = errors.New("does not exist yet")

// errHeld: a write was postponed by the flapping back-off.
var errHeld = errors.New("held back")

// reconcileBinary installs (or, for uninstall, removes) the binary.
func (r *runner) reconcileBinary() error {
	if r.opts.CNIBinDir == "" {
		return nil
	}
	dst := r.binPath()
	if r.uninstall {
		if !r.opts.RemoveBinary {
			return nil
		}
		err := os.Remove(dst)
		switch {
		case err == nil:
			r.log.Info("removed binary", "file", dst)
		case errors.Is(err, fs.ErrNotExist):
		default:
			return fmt.Errorf("removing %s: %w", dst, err)
		}
		return nil
	}
	removeStaleTmp(r.opts.CNIBinDir, r.now())
	wrote, err := installBinary(r.opts.Source, r.srcSum, dst)
	if err != nil {
		r.binOK = false
		return err
	}
	r.binOK = true
	if wrote {
		r.log.Info("installed binary", "file", dst, "sha256", short(r.srcSum))
	}
	return nil
}

// reconcileTarget brings one conflist to the wanted state and returns the
// change it made.
func (r *runner) reconcileTarget(t *target) (Change, error) {
	removeStaleTmp(filepath.Dir(t.list), r.now())
	if r.uninstall {
		return r.unchain(t)
	}
	if !r.binOK {
		return Unchanged, fmt.Errorf("not chaining into %s: the binary %s is not installed", t.list, r.binPath())
	}
	if t.conf != "" {
		data, fi, err := readRegular(t.conf)
		switch {
		case err == nil:
			return r.convert(t, data, fi)
		case !errors.Is(err, fs.ErrNotExist):
			return Unchanged, fmt.Errorf("reading %s: %w", t.conf, err)
		}
	}
	data, fi, err := readRegular(t.list)
	if errors.Is(err, fs.ErrNotExist) {
		return Unchanged, fmt.Errorf("%s %w", t.list, errNotYet)
	}
	if err != nil {
		return Unchanged, fmt.Errorf("reading %s: %w", t.list, err)
	}
	out, change, err := chainList(data, r.entry)
	if err != nil {
		return Unchanged, fmt.Errorf("not chaining into %s, left as it is: %w", t.list, err)
	}
	if change == Unchanged {
		return Unchanged, nil
	}
	if err := r.write(t, t.list, out, fi, data); err != nil {
		return Unchanged, err
	}
	return change, nil
}

func (r *runner) convert(t *target, data []byte, fi fs.FileInfo) (Change, error) {
	if isList(data) {
		return Unchanged, fmt.Errorf("%s holds a plugin list, but runtimes load a file with that extension as a single plugin; rename it to %s", t.conf, t.list)
	}
	if !r.opts.ConvertConf {
		return Unchanged, fmt.Errorf("%s is a single-plugin configuration; pass --convert-conf to replace it with %s (the plugin followed by macguard)", t.conf, t.list)
	}
	out, err := convertConf(data, r.entry)
	if err != nil {
		return Unchanged, fmt.Errorf("not converting %s, left as it is: %w", t.conf, err)
	}
	// The new list first, then the old file goes: until then the runtime
	// keeps using the .conf (it sorts first), never nothing.
	if err := r.write(t, t.list, out, fi, nil); err != nil {
		return Unchanged, err
	}
	if err := unchangedSince(t.conf, data, fi)(); err != nil {
		// Rewritten meanwhile: the next event converts the new content.
		return Converted, nil
	}
	if err := os.Remove(t.conf); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return Converted, fmt.Errorf("removing %s after converting it to %s: %w", t.conf, t.list, err)
	}
	return Converted, atomicfile.SyncDir(filepath.Dir(t.conf))
}

func (r *runner) unchain(t *target) (Change, error) {
	data, fi, err := readRegular(t.list)
	if errors.Is(err, fs.ErrNotExist) {
		return Unchanged, nil
	}
	if err != nil {
		return Unchanged, fmt.Errorf("reading %s: %w", t.list, err)
	}
	out, change, err := unchainList(data)
	if err != nil {
		return Unchanged, fmt.Errorf("not removing macguard from %s, left as it is: %w", t.list, err)
	}
	if change == Unchanged {
		return Unchanged, nil
	}
	if err := r.write(t, t.list, out, fi, data); err != nil {
		return Unchanged, err
	}
	return change, nil
}

// write replaces path with out, keeping the mode and owner of fi (the file
// it replaces, or the .conf it converts). read, when not nil, is what path
// held when out was computed; the write is cancelled if that changed.
func (r *runner) write(t *target, path string, out []byte, fi fs.FileInfo, read []byte) error {
	if r.opts.Watch && !r.uninstall {
		if err := r.admit(t); err != nil {
			return err
		}
	}
	var guard func() error
	if read != nil {
		guard = unchangedSince(path, read, fi)
	}
	if err := writeAtomic(path, strings.NewReader(string(out)), fi.Mode().Perm(), ownerOf(fi), guard); err != nil {
		if errors.Is(err, errBusy) {
			return fmt.Errorf("%s: %w", path, err)
		}
		return err
	}
	if t.hold == 0 {
		t.writes = append(t.writes, r.now())
	}
	return nil
}

// admit applies the flapping back-off before a watch-mode write. Up to
// flapWrites writes within flapWindow pass; the next try starts a hold of
// holdMin. The first try after a hold passes, so the entry is back as soon
// as the other writer may have stopped. Only what happens to that write
// tells whether it has: a try within flapWindow of it means the entry was
// removed again, and the hold doubles (up to holdMax); a later try means the
// entry stayed for a whole window, and the back-off is over.
//
// The writes before a hold cannot decide this: no write happens during the
// hold, so by its end they say nothing about the other writer, and a hold
// longer than flapWindow would always look like peace.
func (r *runner) admit(t *target) error {
	now := r.now()
	if t.hold > 0 {
		switch {
		case now.Before(t.holdUntil):
			return errHeld
		case t.retried.IsZero():
			t.retried = now
			return nil
		case now.Sub(t.retried) < r.opts.flapWindow:
			return r.backOff(t, now, min(2*t.hold, r.opts.holdMax))
		}
		r.log.Info("the macguard entry stayed in place for a whole window; back-off over",
			"file", t.list, "window", r.opts.flapWindow)
		t.hold, t.holdUntil, t.retried, t.writes = 0, time.Time{}, time.Time{}, nil
	}
	recent := t.writes[:0]
	for _, w := range t.writes {
		if now.Sub(w) < r.opts.flapWindow {
			recent = append(recent, w)
		}
	}
	t.writes = recent
	if len(recent) < r.opts.flapWrites {
		return nil
	}
	return r.backOff(t, now, r.opts.holdMin)
}

// backOff starts a hold of t's writes.
func (r *runner) backOff(t *target, now time.Time, hold time.Duration) error {
	t.hold, t.holdUntil, t.retried, t.writes = hold, now.Add(hold), time.Time{}, nil
	r.log.Warn("another writer keeps removing the macguard entry; backing off",
		"file", t.list, "retry_in", hold,
		"hint", "Cilium rewrites its conflist on every change when cni.exclusive=true; see docs/install.md")
	return errHeld
}

// nextRetry is when the earliest hold ends, zero when no target is held.
func (r *runner) nextRetry() time.Time {
	var next time.Time
	for _, t := range r.targets {
		if !t.holdUntil.IsZero() && t.holdUntil.After(r.now()) && (next.IsZero() || t.holdUntil.Before(next)) {
			next = t.holdUntil
		}
	}
	return next
}

// retryHeld reconciles every target whose hold has ended: nothing else may
// happen in the directory to bring on the try that puts the entry back.
func (r *runner) retryHeld() {
	for _, t := range r.targets {
		if !t.holdUntil.IsZero() && !r.now().Before(t.holdUntil) {
			t.holdUntil = time.Time{}
			// applyTarget logs its own failures (see watch), and a
			// new hold is logged by backOff and re-armed by the caller.
			_ = r.applyTarget(t)
		}
	}
}

// applyTarget reconciles t and logs the outcome: one line per change, one
// line per new problem.
func (r *runner) applyTarget(t *target) error {
	change, err := r.reconcileTarget(t)
	switch {
	case errors.Is(err, errHeld):
		return err
	case errors.Is(err, errNotYet) && r.opts.Watch:
		if !t.waiting {
			r.log.Info("waiting for the CNI agent to write the conflist", "file", t.list)
			t.waiting = true
		}
		return err
	case err != nil:
		if msg := err.Error(); msg != t.lastErr {
			r.log.Error(msg, "file", t.list)
			t.lastErr = msg
		}
		return err
	}
	t.lastErr, t.waiting = "", false
	switch change {
	case Appended:
		r.log.Info("chained macguard into the conflist", "file", t.list, "change", "appended")
	case Updated:
		r.log.Info("updated the macguard entry in the conflist", "file", t.list, "change", "updated")
	case Converted:
		r.log.Info("converted a single-plugin configuration to a conflist with macguard", "from", t.conf, "file", t.list)
	case Removed:
		r.log.Info("removed macguard from the conflist", "file", t.list)
	}
	return nil
}

func (r *runner) applyBinary() error {
	err := r.reconcileBinary()
	if err != nil {
		if msg := err.Error(); msg != r.binErr {
			r.log.Error(msg, "file", r.binPath())
			r.binErr = msg
		}
		return err
	}
	r.binErr = ""
	return nil
}

// applyAll runs one full pass in the safe order: on install the binary
// before any conflist names it; on uninstall the entries before the binary
// they name. It returns the first error.
func (r *runner) applyAll() error {
	var first error
	keep := func(err error) {
		if first == nil && err != nil {
			first = err
		}
	}
	if !r.uninstall {
		keep(r.applyBinary())
	}
	for _, t := range r.targets {
		keep(r.applyTarget(t))
	}
	if r.uninstall {
		if first == nil {
			keep(r.applyBinary())
		} else if r.opts.RemoveBinary {
			r.log.Warn("keeping the binary: a conflist may still name it", "file", r.binPath())
		}
	}
	return first
}

// Check reports, without changing anything, whether the files are as an
// install (or uninstall) with these options would leave them. It writes one
// line per file to w and returns whether everything is in place; it is the
// DaemonSet's readiness probe.
func Check(opts Options, uninstall bool, w io.Writer) (bool, error) {
	r, err := newRunner(opts, slog.New(slog.DiscardHandler), uninstall)
	if err != nil {
		return false, err
	}
	ok := true
	report := func(path, problem string) {
		if problem == "" {
			fmt.Fprintf(w, "ok       %s\n", path)
			return
		}
		ok = false
		fmt.Fprintf(w, "not ok   %s: %s\n", path, problem)
	}
	switch {
	case r.opts.CNIBinDir == "":
	case uninstall && r.opts.RemoveBinary:
		problem := ""
		if _, err := os.Lstat(r.binPath()); err == nil {
			problem = "still present"
		}
		report(r.binPath(), problem)
	case !uninstall:
		problem, err := binaryState(r.binPath(), r.srcSum)
		if err != nil {
			problem = err.Error()
		}
		report(r.binPath(), problem)
	}
	for _, t := range r.targets {
		report(t.list, r.checkTarget(t))
	}
	return ok, nil
}

func (r *runner) checkTarget(t *target) string {
	if !r.uninstall && t.conf != "" {
		if _, err := os.Lstat(t.conf); err == nil {
			return fmt.Sprintf("%s exists; macguard is not in the configuration the runtime uses", t.conf)
		}
	}
	data, _, err := readRegular(t.list)
	if errors.Is(err, fs.ErrNotExist) {
		if r.uninstall {
			return ""
		}
		return "does not exist (yet)"
	}
	if err != nil {
		return err.Error()
	}
	var change Change
	if r.uninstall {
		_, change, err = unchainList(data)
	} else {
		_, change, err = chainList(data, r.entry)
	}
	switch {
	case err != nil:
		return err.Error()
	case change == Appended:
		return "no macguard entry"
	case change == Updated:
		return "the macguard entry differs from --plugin-config"
	case change == Removed:
		return "still has a macguard entry"
	}
	return ""
}
