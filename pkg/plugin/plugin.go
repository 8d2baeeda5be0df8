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
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/macguard-cni/macguard/pkg/config"
	"github.com/macguard-cni/macguard/pkg/identity"
	"github.com/macguard-cni/macguard/pkg/link"
	"github.com/macguard-cni/macguard/pkg/logging"
	"github.com/macguard-cni/macguard/pkg/macaddr"
	"github.com/macguard-cni/macguard/pkg/policy"
	"github.com/macguard-cni/macguard/pkg/result"
	"github.com/macguard-cni/macguard/pkg/state"
)

// Store is the part of package state the plugin uses; tests substitute one
// that fails on purpose to prove rollback.
type Store interface {
	Lock(exclusive bool) (unlock func(), err error)
	Save(state.Record) error
	Load(state.Key) (state.Record, bool, error)
	Remove(state.Key) error
	GC(valid map[state.Key]bool) ([]state.Key, error)
}

// Plugin holds the seams to the outside world. The zero value is not
// usable; New gives the real one.
type Plugin struct {
	Open     link.Opener
	NewStore func(dir string) Store
	Stdout   io.Writer
	Stderr   io.Writer
	Now      func() time.Time
}

// New returns the plugin wired to the kernel, the filesystem and stdio.
func New() *Plugin {
	return &Plugin{
		Open:     link.Open,
		NewStore: func(dir string) Store { return state.New(dir) },
		Stdout:   os.Stdout,
		Stderr:   os.Stderr,
		Now:      time.Now,
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
}

func (p *Plugin) start(args *skel.CmdArgs) (*invocation, func(), error) {
	cfg, err := config.Parse(args.StdinData, args.Args)
	if err != nil {
		return nil, nil, err
	}
	log, closeLog, err := logging.Open(cfg.LogFile, cfg.LogLevel, p.Stderr)
	if err != nil {
		return nil, nil, newError(types.ErrInvalidNetworkConfig, "%v (the directory must exist and the file must not be a symlink; leave logFile empty to log to stderr)", err)
	}
	return &invocation{args: args, cfg: cfg, log: log}, closeLog, nil
}

func (inv *invocation) key() state.Key {
	return state.Key{ContainerID: inv.args.ContainerID, IfName: inv.args.IfName}
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

// policyInput gathers what the decision needs from config and the link.
func (inv *invocation) policyInput(obs link.Observed) (policy.Input, error) {
	id, err := identity.Resolve(inv.cfg.Identity, inv.cfg.Pod, inv.args.ContainerID)
	if err != nil {
		return policy.Input{}, newError(types.ErrInvalidEnvironmentVariables, "%v", err)
	}
	derived := macaddr.Derive(macaddr.Input{
		Kind: id.Kind, Key: id.Key, IfName: inv.args.IfName, Salt: inv.cfg.Salt, Prefix: inv.cfg.Prefix,
	})
	return policy.Input{
		Assign:    inv.cfg.NetConf.Assign,
		Requested: inv.cfg.Requested,
		Derived:   derived,
		Identity:  id.String(),
		Link:      obs,
	}, nil
}

// attached is an ADD or CHECK that has validated its input and found its
// interface; both commands start from exactly this.
type attached struct {
	*invocation
	prev  *result.Result
	netns link.Netns
	obs   link.Observed
	input policy.Input
}

func (p *Plugin) attach(args *skel.CmdArgs) (*attached, func(), error) {
	inv, closeLog, err := p.start(args)
	if err != nil {
		return nil, nil, err
	}
	fail := func(err error) (*attached, func(), error) {
		closeLog()
		return nil, nil, err
	}
	cfg := inv.cfg
	if err := cfg.ResolveRequested(); err != nil {
		var e *types.Error
		if errors.As(err, &e) {
			err = newError(e.Code, "%s (for %q in netns %s; nothing was changed)", e.Msg, args.IfName, args.Netns)
		}
		return fail(err)
	}
	if err := cfg.RequirePrevResult(); err != nil {
		return fail(err)
	}
	prev, err := result.Parse(cfg.PrevResult, cfg.CNIVersion)
	if err != nil {
		return fail(newError(types.ErrInvalidNetworkConfig, "invalid prevResult from the previous plugin in the chain: %v", err))
	}
	netns, err := p.Open(args.Netns)
	if err != nil {
		return fail(asCNIError(err))
	}
	done := func() { netns.Close(); closeLog() }
	obs, err := netns.Inspect(args.IfName)
	if err != nil {
		done()
		return nil, nil, asCNIError(err)
	}
	in, err := inv.policyInput(obs)
	if err != nil {
		done()
		return nil, nil, err
	}
	return &attached{invocation: inv, prev: prev, netns: netns, obs: obs, input: in}, done, nil
}

// Add makes the interface's MAC right and prints the corrected result. It
// logs one line whatever happens: what it found, what it did and why, or
// the error.
func (p *Plugin) Add(args *skel.CmdArgs) error {
	at, done, err := p.attach(args)
	if err != nil {
		return err
	}
	defer done()
	d := policy.Decide(at.input)
	if d.Action != policy.Keep {
		// The driver (a VF's, netkit) names the device in the line that
		// records a change or a refusal. Not for a pass-through, the common
		// case on a primary network: both ethtool ioctls take RTNL.
		at.netns.Identify(&at.obs)
	}
	attrs := at.logAttrs(at.obs, d)
	level, msg, err := p.add(at, d, &attrs)
	if err != nil {
		at.log.Error("ADD failed", append(attrs, "error", err)...)
		return asCNIError(err)
	}
	at.log.Log(context.Background(), level, msg, attrs...)
	return nil
}

// add does ADD's work after the decision and returns the log line it
// earned. Printing the result is part of it: a runtime that never got the
// result will not send the DEL that undoes the change, so a failure to print
// rolls the change back like any other.
func (p *Plugin) add(at *attached, d policy.Decision, attrs *[]any) (slog.Level, string, error) {
	inv, cfg, obs := at.invocation, at.cfg, at.obs
	level, msg := slog.LevelInfo, "ADD"
	final := obs.MAC
	var ch *change
	switch d.Action {
	case policy.Unsupported:
		if cfg.OnUnsupported != config.UnsupportedSkip {
			return 0, "", newError(ErrCodeUnsupported, "cannot give %q in netns %s (%s) the MAC %s, nothing was changed: %s",
				inv.args.IfName, inv.args.Netns, obs.Describe(), d.MAC, d.Reason)
		}
		level, msg = slog.LevelWarn, "MAC not applied: device cannot carry it; passing the result through (onUnsupported=skip)"
	case policy.Set:
		c, err := p.apply(inv, at.netns, obs, d)
		var skipped skippedError
		switch {
		case errors.As(err, &skipped):
			level, msg = slog.LevelWarn, "MAC not applied: kernel refused it on this device; passing the result through (onUnsupported=skip)"
			*attrs = append(*attrs, "error", skipped.err)
		case err != nil:
			return 0, "", err
		default:
			defer c.release()
			ch, final = c, d.MAC
			*attrs = append(*attrs, c.attrs...)
		}
	}
	out, err := inv.corrected(at.prev, final)
	if err == nil {
		err = p.print(out)
	}
	if err != nil && ch != nil {
		err = ch.rollback(err)
	}
	return level, msg, err
}

// corrected returns the result to print: the prevResult exactly as received
// when it already reports the sandbox interface's MAC in canonical form, or a
// copy whose entry for it carries final. "Canonical" matters: a main plugin
// or tuning may echo a requested "0A:58:..." verbatim, and plugins whose
// CHECK compares strings (macvlan, tuning) then fail against the kernel's
// lowercase address.
func (inv *invocation) corrected(prev *result.Result, final net.HardwareAddr) (json.RawMessage, error) {
	if macaddr.IsZero(final) {
		return prev.Raw, nil
	}
	if _, mac, ok := prev.Find(inv.args.IfName, inv.inSandbox); ok && mac == macaddr.String(final) {
		return prev.Raw, nil
	}
	return prev.WithMAC(inv.args.IfName, inv.args.Netns, inv.inSandbox, macaddr.String(final))
}

func (inv *invocation) logAttrs(obs link.Observed, d policy.Decision) []any {
	attrs := []any{
		"container", inv.args.ContainerID, "netns", inv.args.Netns, "ifname", inv.args.IfName,
		"device", obs.Describe(), "old", macaddr.String(obs.MAC), "new", macaddr.String(d.MAC),
		"action", d.Action.String(), "reason", d.Reason,
	}
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

// skippedError marks a kernel refusal that onUnsupported=skip turns into a
// pass-through.
type skippedError struct{ err error }

func (s skippedError) Error() string { return s.err.Error() }

// change is a MAC change apply made, with what undoes it. It keeps the
// state lock until released, so that a rollback after apply returned still
// happens under it.
type change struct {
	inv *invocation
	// undo holds what to reverse, each step named so a failed rollback
	// says exactly what is left behind.
	undo    []step
	attrs   []any
	release func()
}

type step struct {
	what string
	fn   func() error
}

// rollback undoes every step in reverse order and returns cause, with
// whatever could not be undone.
func (c *change) rollback(cause error) error {
	var errs []error
	for i := len(c.undo) - 1; i >= 0; i-- {
		if err := c.undo[i].fn(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.undo[i].what, err))
		}
	}
	c.undo = nil
	if len(errs) > 0 {
		args := c.inv.args
		return fmt.Errorf("%w; rolling back %q in netns %s also failed: %w", cause, args.IfName, args.Netns, errors.Join(errs...))
	}
	return cause
}

// apply changes the MAC with write-ahead state. The record is written before
// the change so that an ADD killed at any point leaves something DEL can
// undo; a failure inside apply undoes, in reverse order, exactly what was
// done, and the returned change can undo it all later.
func (p *Plugin) apply(inv *invocation, netns link.Netns, obs link.Observed, d policy.Decision) (*change, error) {
	args, cfg := inv.args, inv.cfg
	store := p.NewStore(cfg.DataDir)
	unlock, err := store.Lock(false)
	if err != nil {
		return nil, stateErr(err)
	}
	c := &change{inv: inv, release: unlock}
	fail := func(err error) (*change, error) {
		err = c.rollback(err)
		unlock()
		return nil, err
	}

	key := inv.key()
	rec := state.Record{
		ContainerID: args.ContainerID, IfName: args.IfName, Netns: args.Netns,
		OriginalMAC: macaddr.String(obs.MAC), AppliedMAC: macaddr.String(d.MAC), Created: p.Now().UTC(),
	}
	prior, hadPrior, err := store.Load(key)
	if err != nil {
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
	c.undo = append(c.undo, step{"removing the state record from dataDir " + cfg.DataDir, func() error {
		if hadPrior {
			return store.Save(prior)
		}
		return store.Remove(key)
	}})

	// Announcing: the kernel does it during the change itself when it can
	// be asked to; sending the frames ourselves is the fallback.
	announced := "off"
	if cfg.Announce {
		restore, err := netns.AnnounceOnChange(args.IfName)
		if err != nil {
			announced = "sent"
			c.attrs = append(c.attrs, "kernelAnnounceError", err.Error())
		} else {
			announced = "kernel"
			defer func() {
				if err := restore(); err != nil {
					c.attrs = append(c.attrs, "announceRestoreError", err.Error())
				}
			}()
		}
	}

	if err := netns.SetMAC(args.IfName, d.MAC); err != nil {
		err = c.rollback(err)
		unlock()
		if errors.Is(err, link.ErrNotSupported) && cfg.OnUnsupported == config.UnsupportedSkip {
			return nil, skippedError{err}
		}
		return nil, err
	}
	if !macaddr.IsZero(obs.MAC) {
		c.undo = append(c.undo, step{"restoring MAC " + obs.MAC.String() + " (the interface may still have " + d.MAC.String() + ")",
			func() error { return netns.SetMAC(args.IfName, obs.MAC) }})
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
		c.undo = append(c.undo, step{"restoring the link-local address", func() error {
			_, err := netns.SwapLinkLocal(args.IfName, d.MAC, obs.MAC)
			return err
		}})
	}

	if announced == "sent" {
		// Best effort by design: peers learn the new MAC from the pod's first
		// packets anyway, and failing a pod over a lost announcement would
		// be worse than a short-lived stale cache entry.
		if err := netns.Announce(args.IfName, d.MAC); err != nil {
			announced = "failed"
			c.attrs = append(c.attrs, "announceError", err.Error())
		}
	}
	c.attrs = append(c.attrs, "announce", announced, "linkLocalReplaced", swapped)
	return c, nil
}

// Check verifies that the interface still has the MAC the policy requires
// and the result reports.
func (p *Plugin) Check(args *skel.CmdArgs) error {
	at, done, err := p.attach(args)
	if err != nil {
		return err
	}
	defer done()
	obs := at.obs
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
	switch d := policy.Decide(at.input); d.Action {
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

// openExistingStore locks dataDir for DEL and GC. A dataDir that does not
// exist means there is nothing to undo, and it is not created: tearing down
// must not depend on being able to write.
func (p *Plugin) openExistingStore(dir string, exclusive bool) (Store, func(), error) {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	store := p.NewStore(dir)
	unlock, err := store.Lock(exclusive)
	if err != nil {
		return nil, nil, asCNIError(stateErr(err))
	}
	return store, unlock, nil
}

// Del puts the original MAC back if macguard changed it and forgets the
// attachment. It succeeds when there is nothing left to do: no record, the
// netns or the interface gone, or no prevResult.
func (p *Plugin) Del(args *skel.CmdArgs) error {
	inv, closeLog, err := p.start(args)
	if err != nil {
		return err
	}
	defer closeLog()
	store, unlock, err := p.openExistingStore(inv.cfg.DataDir, false)
	if store == nil || err != nil {
		return err
	}
	defer unlock()
	key := inv.key()
	rec, found, err := store.Load(key)
	if err != nil {
		// A corrupt record must not block teardown forever: drop it.
		inv.log.Warn("dropping unreadable state record", "container", args.ContainerID, "ifname", args.IfName, "error", err)
		return asCNIError(stateErr(store.Remove(key)))
	}
	if !found {
		return nil
	}
	p.restore(inv, rec)
	return asCNIError(stateErr(store.Remove(key)))
}

// restore is best effort: the pod is going away, and a DEL that fails keeps
// the runtime retrying a teardown that cannot get better.
func (p *Plugin) restore(inv *invocation, rec state.Record) {
	args := inv.args
	attrs := []any{"container", args.ContainerID, "netns", args.Netns, "ifname", args.IfName,
		"applied", rec.AppliedMAC, "original", rec.OriginalMAC}
	original, err := macaddr.Parse(rec.OriginalMAC)
	if err != nil || macaddr.IsZero(original) {
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
	obs, err := netns.Inspect(args.IfName)
	if err != nil {
		inv.log.Info("DEL: interface gone; nothing to restore", append(attrs, "error", err)...)
		return
	}
	if !macaddr.Equal(obs.MAC, applied) {
		inv.log.Warn("DEL: interface MAC changed since ADD; leaving it", append(attrs, "current", macaddr.String(obs.MAC))...)
		return
	}
	if err := netns.SetMAC(args.IfName, original); err != nil {
		inv.log.Warn("DEL: restoring the original MAC failed", append(attrs, "error", err)...)
		return
	}
	if _, err := netns.SwapLinkLocal(args.IfName, applied, original); err != nil {
		inv.log.Warn("DEL: restoring the link-local address failed", append(attrs, "error", err)...)
	}
	inv.log.Info("DEL: original MAC restored", attrs...)
}

// GC forgets every attachment the runtime no longer lists as valid.
func (p *Plugin) GC(args *skel.CmdArgs) error {
	inv, closeLog, err := p.start(args)
	if err != nil {
		return err
	}
	defer closeLog()
	store, unlock, err := p.openExistingStore(inv.cfg.DataDir, true)
	if store == nil || err != nil {
		return err
	}
	defer unlock()
	valid := make(map[state.Key]bool, len(inv.cfg.ValidAttachments))
	for _, a := range inv.cfg.ValidAttachments {
		valid[state.Key{ContainerID: a.ContainerID, IfName: a.IfName}] = true
	}
	removed, err := store.GC(valid)
	for _, k := range removed {
		inv.log.Info("GC: removed stale state", "container", k.ContainerID, "ifname", k.IfName)
	}
	return asCNIError(stateErr(err))
}

// Status reports readiness. macguard has no daemon or network to wait for;
// a config that does not parse is the one thing that makes it not ready.
func (p *Plugin) Status(args *skel.CmdArgs) error {
	_, closeLog, err := p.start(args)
	if err != nil {
		return err
	}
	closeLog()
	return nil
}
