// Package plugin implements macguard's CNI commands. Every command follows
// the same one-way flow: parse config -> inspect the link -> decide (package
// policy, pure) -> apply with rollback -> correct the result.
package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/macguard-cni/macguard/pkg/config"
	"github.com/macguard-cni/macguard/pkg/identity"
	"github.com/macguard-cni/macguard/pkg/link"
	"github.com/macguard-cni/macguard/pkg/logging"
	"github.com/macguard-cni/macguard/pkg/macaddr"
	"github.com/macguard-cni/macguard/pkg/pathpolicy"
	"github.com/macguard-cni/macguard/pkg/policy"
	"github.com/macguard-cni/macguard/pkg/result"
	"github.com/macguard-cni/macguard/pkg/state"
)

// Store is the part of package state the plugin uses; tests substitute one
// that fails on purpose to prove rollback.
type Store interface {
	Open(create bool) error
	Lock(exclusive bool) (unlock func(), err error)
	LockAttachment(state.Key) (unlock func(), err error)
	Save(state.Record) error
	Load(state.Key) (state.Record, bool, error)
	Remove(state.Key) error
	GC(network string, valid map[state.Key]bool) ([]state.Key, error)
	Close()
}

// Plugin holds the seams to the outside world. The zero value is not
// usable; New gives the real one.
type Plugin struct {
	Open     link.Opener
	NewStore func(dataDir pathpolicy.Place) Store
	Stdout   io.Writer
	Stderr   io.Writer
	Now      func() time.Time
	// Roots are where the node lets the plugin keep state and logs
	// (pathpolicy); New reads them from the environment.
	Roots pathpolicy.Roots
}

// New returns the plugin wired to the kernel, the filesystem and stdio.
func New() *Plugin {
	return &Plugin{
		Open:     link.Open,
		NewStore: func(dataDir pathpolicy.Place) Store { return state.Beneath(dataDir) },
		Stdout:   os.Stdout,
		Stderr:   os.Stderr,
		Now:      time.Now,
		Roots:    pathpolicy.Node(),
	}
}

// Funcs returns the commands in the shape skel wants.
func (p *Plugin) Funcs() skel.CNIFuncs {
	return skel.CNIFuncs{Add: p.Add, Check: p.Check, Del: p.Del, GC: p.GC, Status: p.Status}
}

// invocation is what every command starts from.
type invocation struct {
	args *skel.CmdArgs
	cfg  *config.Config
	log  *slog.Logger
	// dataDir is cfg.DataDir beneath its root; dataDirErr says why the
	// node's roots refuse it (then dataDir is empty).
	dataDir    pathpolicy.Place
	dataDirErr error
}

// start parses the config and opens the log; close releases what it
// opened. For ADD (strict) a logFile the node's roots refuse is a config
// error; DEL, GC, CHECK and STATUS must never be blocked by one (a
// teardown must finish), so they log to stderr instead and carry on. A
// refused dataDir is left in dataDirErr for the command to judge.
func (p *Plugin) start(args *skel.CmdArgs, strict bool) (inv *invocation, close func(), err error) {
	cfg, err := config.Parse(args.StdinData, args.Args)
	if err != nil {
		return nil, nil, err
	}
	inv = &invocation{args: args, cfg: cfg}
	inv.dataDir, inv.dataDirErr = p.Roots.DataDir(cfg.DataDir)
	log, closeLog, err := logging.Open(cfg.LogFile, p.Roots, cfg.LogLevel, p.Stderr)
	if err != nil {
		if strict {
			return nil, nil, newError(types.ErrInvalidNetworkConfig, "%v (the directory must exist, beneath an allowed root, with no symlink in the path, and the file must be a regular file; leave logFile empty to log to stderr)", err)
		}
		lvl, lerr := logging.ParseLevel(cfg.LogLevel)
		if lerr != nil {
			return nil, nil, newError(types.ErrInvalidNetworkConfig, "%v", lerr)
		}
		log, closeLog = logging.New(p.Stderr, lvl), func() {}
		log.Warn("logFile not used; logging to stderr", append(inv.attachmentAttrs(), "error", err)...)
	}
	inv.log = log
	for _, e := range p.Roots.Ignored {
		log.Warn("ignoring an allowed-root entry that is not a clean absolute path outside /proc, /sys and /dev", "entry", e)
	}
	return inv, closeLog, nil
}

func (inv *invocation) key() state.Key {
	return state.Key{Network: inv.cfg.Network, ContainerID: inv.args.ContainerID, IfName: inv.args.IfName}
}

// inSandbox matches a result's "sandbox" against CNI_NETNS, by path or, when
// a runtime spelled the same namespace differently, by inode.
func (inv *invocation) inSandbox(sandbox string) bool {
	if sandbox == inv.args.Netns {
		return true
	}
	a, errA := os.Stat(sandbox)
	b, errB := os.Stat(inv.args.Netns)
	return errA == nil && errB == nil && os.SameFile(a, b)
}

// attached is an ADD or CHECK that has validated its input and opened the
// pod's namespace; both commands start from exactly this. Everything they
// do to links happens inside one netns.Do.
type attached struct {
	*invocation
	prev      *result.Result
	requested *config.Requested
	netns     link.Netns
	close     func()
}

// attach validates what ADD and CHECK need and opens the pod's namespace;
// closing the result does not close inv's log.
func (p *Plugin) attach(inv *invocation) (*attached, error) {
	args := inv.args
	fail := func(err error) (*attached, error) { return nil, err }
	requested, err := inv.cfg.Requested()
	if err != nil {
		var e *types.Error
		if errors.As(err, &e) {
			err = newError(e.Code, "%s (for %q in netns %s; nothing was changed)", e.Msg, args.IfName, args.Netns)
		}
		return fail(err)
	}
	if err := inv.cfg.RequirePrevResult(); err != nil {
		return fail(err)
	}
	prev, err := result.Parse(inv.cfg.PrevResult, inv.cfg.CNIVersion)
	if err != nil {
		return fail(newError(types.ErrInvalidNetworkConfig, "invalid prevResult from the previous plugin in the chain: %v", err))
	}
	netns, err := p.Open(args.Netns)
	if err != nil {
		return fail(asCNIError(err))
	}
	return &attached{invocation: inv, prev: prev, requested: requested, netns: netns,
		close: func() { _ = netns.Close() }}, nil // a handle's close loses nothing
}

// inspect reads the interface and decides; it runs inside the namespace.
func (at *attached) inspect() (link.Observed, policy.Decision, error) {
	obs, err := at.netns.Inspect(at.args.IfName)
	if err != nil {
		return obs, policy.Decision{}, err
	}
	id, err := identity.Resolve(at.cfg.Identity, at.cfg.Pod, at.args.ContainerID)
	if err != nil {
		return obs, policy.Decision{}, newError(types.ErrInvalidEnvironmentVariables, "%v", err)
	}
	derived := macaddr.Derive(macaddr.Input{
		Kind: id.Kind, Key: id.Key, IfName: at.args.IfName, Salt: at.cfg.Salt, Prefix: at.cfg.Prefix,
	})
	return obs, policy.Decide(policy.Input{
		Assign:    at.cfg.Assign,
		Requested: at.requested,
		Derived:   derived,
		Identity:  id.String(),
		Link:      obs,
	}), nil
}

// outcome is the log line an ADD earned.
type outcome struct {
	level slog.Level
	msg   string
	attrs []any
}

// Add makes the interface's MAC right and prints the corrected result, all
// in one entry into the pod's namespace. It logs one line whatever happens:
// what it found, what it did and why, or the error.
func (p *Plugin) Add(args *skel.CmdArgs) error {
	inv, closeLog, err := p.start(args, true)
	if err != nil {
		// No usable log file: the runtime keeps stderr.
		logging.New(p.Stderr, slog.LevelInfo).Error("ADD failed", append(attachmentAttrs(args), "error", err)...)
		return err
	}
	defer closeLog()
	var at *attached
	if inv.dataDirErr != nil {
		// Refused before anything is looked at, even when nothing
		// would be changed: the config is wrong either way.
		err = newError(types.ErrInvalidNetworkConfig, "%v", inv.dataDirErr)
	} else {
		at, err = p.attach(inv)
	}
	if err != nil {
		inv.log.Error("ADD failed", append(inv.attachmentAttrs(), "error", err)...)
		return err
	}
	defer at.close()
	// Named in the failure line even when entering the namespace fails.
	out := outcome{attrs: at.attachmentAttrs()}
	err = at.netns.Do(func() error {
		var err error
		out, err = p.add(at)
		return err
	})
	if err != nil {
		at.log.Error("ADD failed", append(out.attrs, "error", err)...)
		return asCNIError(err)
	}
	at.log.Log(context.Background(), out.level, out.msg, out.attrs...)
	return nil
}

// add is ADD's work inside the namespace. Printing the result is part of
// it: a runtime that never got the result will not send the DEL that undoes
// the change, so a failure to print rolls the change back like any other.
func (p *Plugin) add(at *attached) (outcome, error) {
	obs, d, err := at.inspect()
	if err != nil {
		return outcome{attrs: at.attachmentAttrs()}, err
	}
	var held lockedStore
	if d.Action == policy.Set {
		// Another ADD of this attachment may be changing it right now:
		// wait for it under the attachment's lock and look again, so this
		// one decides on what that one left (most often: nothing to do)
		// and never undoes it. change owns the locks from here.
		if held, err = p.lockAttachment(at); err != nil {
			return outcome{attrs: at.attachmentAttrs()}, err
		}
		if obs, d, err = at.inspect(); err != nil || d.Action != policy.Set {
			held.release()
			if err != nil {
				return outcome{attrs: at.attachmentAttrs()}, err
			}
		}
	}
	if d.Action != policy.Keep {
		// The driver (a VF's, netkit) names the device in the line that
		// records a change or a refusal. Not for a pass-through, the common
		// case on a primary network: both ethtool ioctls take RTNL.
		at.netns.Identify(&obs)
	}
	out := outcome{level: slog.LevelInfo, msg: "ADD", attrs: at.logAttrs(obs, d)}
	final := obs.MAC
	var tx *transaction
	switch d.Action {
	case policy.Unsupported:
		if at.cfg.OnUnsupported != config.UnsupportedSkip {
			return out, newError(ErrCodeUnsupported, "cannot give %q in netns %s (%s) the MAC %s, nothing was changed: %s",
				at.args.IfName, at.args.Netns, obs.Describe(), d.MAC, d.Reason)
		}
		out.level, out.msg = slog.LevelWarn, "MAC not applied: device cannot carry it; passing the result through (onUnsupported=skip)"
	case policy.Set:
		var attrs []any
		tx, attrs, err = p.change(at, held, obs, d)
		out.attrs = append(out.attrs, attrs...)
		var refused refusedError
		switch {
		case errors.As(err, &refused):
			out.level, out.msg = slog.LevelWarn, "MAC not applied: kernel refused it on this device; passing the result through (onUnsupported=skip)"
			out.attrs = append(out.attrs, "error", refused.err)
		case err != nil:
			return out, err
		default:
			defer tx.release()
			final = d.MAC
		}
	}
	res, err := at.corrected(final)
	if err == nil {
		err = p.print(res)
	}
	if err != nil && tx != nil {
		err = tx.rollback(err)
	}
	return out, err
}

// corrected returns the result to print: the prevResult exactly as received
// when it already reports the sandbox interface's MAC in canonical form, or a
// copy whose entry for it carries final. "Canonical" matters: a main plugin
// or tuning may echo a requested "0A:58:..." verbatim, and plugins whose
// CHECK compares strings (macvlan, tuning) then fail against the kernel's
// lowercase address.
func (at *attached) corrected(final net.HardwareAddr) (json.RawMessage, error) {
	if macaddr.IsZero(final) {
		return at.prev.Raw, nil
	}
	if _, mac, ok := at.prev.Find(at.args.IfName, at.inSandbox); ok && mac == macaddr.String(final) {
		return at.prev.Raw, nil
	}
	return at.prev.WithMAC(at.args.IfName, at.args.Netns, at.inSandbox, macaddr.String(final))
}

// attachmentAttrs name the attachment in every log line of a command.
func (inv *invocation) attachmentAttrs() []any {
	return append(attachmentAttrs(inv.args), "network", inv.cfg.Network)
}

func attachmentAttrs(args *skel.CmdArgs) []any {
	return []any{"container", args.ContainerID, "netns", args.Netns, "ifname", args.IfName}
}

// lockedStore is a Store whose directory and attachment locks are held
// until release.
type lockedStore struct {
	Store
	release func()
}

// lockAttachment opens dataDir (creating it) and takes its shared lock
// and the attachment's lock.
func (p *Plugin) lockAttachment(at *attached) (lockedStore, error) {
	store := p.NewStore(at.dataDir)
	unlock, err := store.Lock(false)
	if err != nil {
		store.Close()
		if errors.Is(err, pathpolicy.ErrRefused) {
			// A symlink, FIFO or pseudo-filesystem on the way: the
			// config's fault, found before anything was changed.
			return lockedStore{}, newError(types.ErrInvalidNetworkConfig, "%v (dataDir must lie beneath %s with no symlink in its path; nothing was changed)",
				err, strings.Join(p.Roots.Data, ", "))
		}
		return lockedStore{}, stateErr(err)
	}
	unlockAtt, err := store.LockAttachment(at.key())
	if err != nil {
		unlock()
		return lockedStore{}, stateErr(err)
	}
	return lockedStore{Store: store, release: func() { unlockAtt(); unlock() }}, nil
}

func (inv *invocation) logAttrs(obs link.Observed, d policy.Decision) []any {
	attrs := append(inv.attachmentAttrs(),
		"device", obs.Describe(), "old", macaddr.String(obs.MAC), "new", macaddr.String(d.MAC),
		"action", d.Action.String(), "reason", d.Reason,
	)
	if len(obs.PermMAC) > 0 {
		// A VF or NIC's burned-in address tells an operator which
		// hardware the pod got, whatever MAC it carries now.
		attrs = append(attrs, "permMAC", obs.PermMAC.String())
	}
	return attrs
}

func (p *Plugin) print(out json.RawMessage) error {
	if _, err := p.Stdout.Write(append(out, '\n')); err != nil {
		return fmt.Errorf("writing result to stdout: %w", err)
	}
	return nil
}

// refusedError is a kernel refusal of the MAC, fully rolled back, that
// onUnsupported=skip turns into a pass-through.
type refusedError struct{ err error }

func (r refusedError) Error() string { return r.err.Error() }

// announceMode is how peers learn of a changed MAC; the log line reports it.
type announceMode int

const (
	// announceOff: the config turned announcements off.
	announceOff announceMode = iota
	// announceKernel: arp_notify/ndisc_notify made the kernel announce
	// the change itself.
	announceKernel
	// announceSent: the kernel could not be asked, macguard sent the
	// frames.
	announceSent
	// announceFailed: sending the frames failed (best effort).
	announceFailed
)

func (a announceMode) String() string {
	return [...]string{"off", "kernel", "sent", "failed"}[a]
}

// change makes the MAC change as a transaction whose every step has an
// undo, and returns it still holding the state lock so that a later failure
// (printing the result) rolls back under it. On failure everything done is
// already undone and the lock released; the returned error then carries
// every undo that failed too. The record is written first so that an ADD
// killed at any point leaves something DEL can undo.
func (p *Plugin) change(at *attached, held lockedStore, obs link.Observed, d policy.Decision) (*transaction, []any, error) {
	args, cfg, netns := at.args, at.cfg, at.netns
	store := held.Store
	tx := &transaction{where: fmt.Sprintf("%q in netns %s", args.IfName, args.Netns), release: held.release}
	var attrs []any
	fail := func(err error) (*transaction, []any, error) {
		err = tx.rollback(err)
		tx.release()
		return nil, attrs, err
	}

	key := at.key()
	rec := state.Record{
		Network: cfg.Network, ContainerID: args.ContainerID, IfName: args.IfName, Netns: args.Netns,
		OriginalMAC: macaddr.String(obs.MAC), AppliedMAC: macaddr.String(d.MAC), Created: p.Now().UTC(),
	}
	prior, hadPrior, err := store.Load(key)
	switch {
	case errors.Is(err, state.ErrCorrupt):
		// What a crash left of a record whose netns is gone: this ADD's
		// record replaces it.
		attrs = append(attrs, "replacedCorruptRecord", err.Error())
	case err != nil:
		return fail(stateErr(err))
	}
	if hadPrior {
		// A repeated ADD for the same attachment: the interface already
		// carries what the first ADD set, and DEL must still go back to what
		// it had before that.
		if applied, perr := macaddr.Parse(prior.AppliedMAC); perr == nil && macaddr.Equal(applied, obs.MAC) {
			rec.OriginalMAC = prior.OriginalMAC
		}
	}
	if err := store.Save(rec); err != nil {
		return fail(stateErr(err))
	}
	tx.done("removing the state record from dataDir "+cfg.DataDir, func() error {
		if hadPrior {
			return store.Save(prior)
		}
		return store.Remove(key)
	})

	// Announcing: the kernel does it during the change itself when it can
	// be asked to; sending the frames ourselves is the fallback. The
	// switches are put back once the change is made, or by the rollback.
	mode := announceOff
	var restoreSwitches func() error
	if cfg.Announce {
		restore, err := netns.AnnounceOnChange(args.IfName)
		if err != nil {
			mode = announceSent
			attrs = append(attrs, "kernelAnnounceError", err.Error())
		} else {
			mode = announceKernel
			restoreSwitches = tx.done("putting back arp_notify/ndisc_notify", restore)
		}
	}

	if err := netns.SetMAC(args.IfName, d.MAC); err != nil {
		// onUnsupported=skip passes the result through only when the
		// device itself refused the MAC and everything done before was
		// put back: an undo that failed leaves something to report.
		skip := errors.Is(err, link.ErrNotSupported) && cfg.OnUnsupported == config.UnsupportedSkip
		if _, attrs, rerr := fail(err); !skip || rerr != err {
			return nil, attrs, rerr
		}
		return nil, attrs, refusedError{err}
	}
	if !macaddr.IsZero(obs.MAC) {
		tx.done("restoring MAC "+obs.MAC.String()+" (the interface may still have "+d.MAC.String()+")",
			func() error { return netns.SetMAC(args.IfName, obs.MAC) })
	}

	after, err := netns.Inspect(args.IfName)
	if err != nil {
		return fail(fmt.Errorf("reading back %q in netns %s after setting MAC %s: %w", args.IfName, args.Netns, d.MAC, err))
	}
	if !macaddr.Equal(after.MAC, d.MAC) {
		return fail(fmt.Errorf("set MAC %s on %q in netns %s but the kernel reports %q: %w",
			d.MAC, args.IfName, args.Netns, macaddr.String(after.MAC), link.ErrRefused))
	}

	swapped, err := netns.SwapLinkLocal(args.IfName, obs.MAC, d.MAC)
	if err != nil {
		return fail(err)
	}
	if swapped {
		tx.done("restoring the link-local address", func() error {
			_, err := netns.SwapLinkLocal(args.IfName, d.MAC, obs.MAC)
			return err
		})
	}

	if restoreSwitches != nil {
		// The kernel announced during SetMAC; nothing after needs them.
		if err := restoreSwitches(); err != nil {
			attrs = append(attrs, "announceRestoreError", err.Error())
		}
	}
	if mode == announceSent {
		// Best effort by design: peers learn the new MAC from the pod's first
		// packets anyway, and failing a pod over a lost announcement would
		// be worse than a short-lived stale cache entry.
		if err := netns.Announce(args.IfName, d.MAC); err != nil {
			mode = announceFailed
			attrs = append(attrs, "announceError", err.Error())
		}
	}
	return tx, append(attrs, "announce", mode.String(), "linkLocalReplaced", swapped), nil
}

// Check verifies that the interface still has the MAC the policy requires
// and the result reports.
func (p *Plugin) Check(args *skel.CmdArgs) error {
	inv, closeLog, err := p.start(args, false)
	if err != nil {
		return err
	}
	defer closeLog()
	at, err := p.attach(inv)
	if err != nil {
		return err
	}
	defer at.close()
	return at.netns.Do(func() error { return asCNIError(at.check()) })
}

func (at *attached) check() error {
	args := at.args
	obs, d, err := at.inspect()
	if err != nil {
		return err
	}
	// device names the interface for a failure; ethtool is asked only
	// then, as a passing CHECK prints nothing.
	device := func() string {
		at.netns.Identify(&obs)
		return obs.Describe()
	}
	if _, reported, ok := at.prev.Find(args.IfName, at.inSandbox); ok && reported != "" {
		mac, err := macaddr.Parse(reported)
		if err != nil {
			return newError(types.ErrInvalidNetworkConfig, "prevResult reports an invalid MAC for %q: %v", args.IfName, err)
		}
		if !macaddr.Equal(mac, obs.MAC) {
			return newError(ErrCodeCheckMismatch, "%q (%s) in netns %s has MAC %q but the result reports %s (changed after ADD?)",
				args.IfName, device(), args.Netns, macaddr.String(obs.MAC), mac)
		}
	}
	switch d.Action {
	case policy.Set:
		return newError(ErrCodeCheckMismatch, "%q (%s) in netns %s has MAC %q but should have %s (%s)",
			args.IfName, device(), args.Netns, macaddr.String(obs.MAC), d.MAC, d.Reason)
	case policy.Unsupported:
		if at.cfg.OnUnsupported != config.UnsupportedSkip {
			return newError(ErrCodeUnsupported, "%q (%s) in netns %s: %s", args.IfName, device(), args.Netns, d.Reason)
		}
	}
	return nil
}

// openExistingStore opens and locks dataDir for DEL and GC. A dataDir
// that does not exist means there is nothing to undo, and it is not
// created: tearing down must not depend on being able to write. Nothing
// but a busy lock (answered "try again later") is an error: a dataDir the
// node's roots refuse, or that cannot be opened, holds nothing this
// network's config may act on, and one that cannot be locked (it is not
// writable) is still read by DEL, never by GC (which needs its exclusive
// lock to be sure no ADD is writing). store is nil when there is nothing
// to read.
func (p *Plugin) openExistingStore(inv *invocation, cmd string, exclusive bool) (store Store, unlock func(), err error) {
	warn := func(msg string, err error) (Store, func(), error) {
		inv.log.Warn(cmd+": "+msg, append(inv.attachmentAttrs(), "dataDir", inv.cfg.DataDir, "error", err)...)
		return nil, nil, nil
	}
	if inv.dataDirErr != nil {
		return warn("dataDir refused; nothing to do", inv.dataDirErr)
	}
	store = p.NewStore(inv.dataDir)
	if err := store.Open(false); err != nil {
		store.Close()
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, nil
		}
		if errors.Is(err, pathpolicy.ErrRefused) {
			return warn("dataDir refused; nothing to do", err)
		}
		return warn("dataDir cannot be opened; nothing to do", err)
	}
	unlock, err = store.Lock(exclusive)
	switch {
	case errors.Is(err, state.ErrBusy):
		store.Close()
		return nil, nil, asCNIError(err)
	case err != nil && exclusive:
		// GC without its exclusive lock could remove a record an ADD is
		// writing; it has nothing to finish, so it does nothing.
		store.Close()
		return warn("dataDir cannot be locked; nothing done", err)
	case err != nil:
		inv.log.Warn(cmd+": dataDir cannot be locked; going on without the lock", append(inv.attachmentAttrs(), "dataDir", inv.cfg.DataDir, "error", err)...)
		return store, store.Close, nil
	}
	return store, unlock, nil
}

// Del puts the original MAC back if macguard changed it and forgets the
// attachment. It succeeds whenever there is nothing left it can do: no
// record (none, unreadable, refused, corrupt, oversized: it logs why), the
// netns or the interface gone, or no prevResult. Only a config that does
// not parse, or a dataDir locked by a running GC, fails it.
func (p *Plugin) Del(args *skel.CmdArgs) error {
	inv, closeLog, err := p.start(args, false)
	if err != nil {
		return err
	}
	defer closeLog()
	store, unlock, err := p.openExistingStore(inv, "DEL", false)
	if store == nil || err != nil {
		return err
	}
	defer unlock()
	key := inv.key()
	rec, found, err := store.Load(key)
	if err != nil {
		// A record that cannot be used must not block teardown: drop it.
		inv.log.Warn("DEL: dropping unusable state record; nothing restored", append(inv.attachmentAttrs(), "error", err)...)
		p.forget(inv, store, key)
		return nil
	}
	if !found {
		return nil
	}
	p.restore(inv, rec)
	p.forget(inv, store, key)
	return nil
}

// forget removes a record for DEL; a record that cannot be removed is
// GC's (or the doctor's) to remove later, never a reason to fail DEL.
func (p *Plugin) forget(inv *invocation, store Store, key state.Key) {
	if err := store.Remove(key); err != nil {
		inv.log.Warn("DEL: state record not removed; GC will remove it", append(inv.attachmentAttrs(), "error", err)...)
	}
}

// restore is best effort: the pod is going away, and a DEL that fails keeps
// the runtime retrying a teardown that cannot get better.
func (p *Plugin) restore(inv *invocation, rec state.Record) {
	args := inv.args
	attrs := append(inv.attachmentAttrs(), "applied", rec.AppliedMAC, "original", rec.OriginalMAC)
	// Load accepts only assignable MACs (or all zeros); the check is
	// repeated where the MAC is used.
	original, err := macaddr.Parse(rec.OriginalMAC)
	if err != nil || macaddr.IsZero(original) || macaddr.CheckAssignable(original) != nil {
		inv.log.Info("DEL: no original MAC to restore", attrs...)
		return
	}
	applied, _ := macaddr.Parse(rec.AppliedMAC)
	if args.Netns == "" {
		inv.log.Info("DEL: no netns given; nothing to restore", attrs...)
		return
	}
	netns, err := p.Open(args.Netns)
	if err != nil {
		// Gone, most often; the error says if it is something else (the
		// node's own namespace, say).
		inv.log.Info("DEL: netns cannot be opened; nothing to restore", append(attrs, "error", err)...)
		return
	}
	defer netns.Close()
	err = netns.Do(func() error {
		obs, err := netns.Inspect(args.IfName)
		if err != nil {
			inv.log.Info("DEL: interface gone; nothing to restore", append(attrs, "error", err)...)
			return nil
		}
		if !macaddr.Equal(obs.MAC, applied) {
			inv.log.Warn("DEL: interface MAC changed since ADD; leaving it", append(attrs, "current", macaddr.String(obs.MAC))...)
			return nil
		}
		if err := netns.SetMAC(args.IfName, original); err != nil {
			inv.log.Warn("DEL: restoring the original MAC failed", append(attrs, "error", err)...)
			return nil
		}
		if _, err := netns.SwapLinkLocal(args.IfName, applied, original); err != nil {
			inv.log.Warn("DEL: restoring the link-local address failed", append(attrs, "error", err)...)
		}
		inv.log.Info("DEL: original MAC restored", attrs...)
		return nil
	})
	if err != nil {
		inv.log.Warn("DEL: entering the netns failed; nothing restored", append(attrs, "error", err)...)
	}
}

// GC forgets every attachment the runtime no longer lists as valid.
// GC forgets every attachment of this network that the runtime no longer
// lists as valid; other networks' records are theirs (CNI's GC is per
// network).
func (p *Plugin) GC(args *skel.CmdArgs) error {
	inv, closeLog, err := p.start(args, false)
	if err != nil {
		return err
	}
	defer closeLog()
	store, unlock, err := p.openExistingStore(inv, "GC", true)
	if store == nil || err != nil {
		return err
	}
	defer unlock()
	valid := make(map[state.Key]bool, len(inv.cfg.ValidAttachments))
	for _, a := range inv.cfg.ValidAttachments {
		valid[state.Key{Network: inv.cfg.Network, ContainerID: a.ContainerID, IfName: a.IfName}] = true
	}
	removed, err := store.GC(inv.cfg.Network, valid)
	for _, k := range removed {
		inv.log.Info("GC: removed stale state", "network", k.Network, "container", k.ContainerID, "ifname", k.IfName)
	}
	return asCNIError(stateErr(err))
}

// Status reports readiness. macguard has no daemon or network to wait for;
// a config that does not parse is the one thing that makes it not ready.
func (p *Plugin) Status(args *skel.CmdArgs) error {
	_, closeLog, err := p.start(args, false)
	if err != nil {
		return err
	}
	closeLog()
	return nil
}
