// Package linktest provides an in-memory link.Netns for tests of the layers
// above it, for devices this host's kernel cannot create (netkit, ipvlan)
// and for failures a kernel will not produce on demand.
package linktest

import (
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"

	"github.com/macguard-cni/macguard/pkg/link"
	"github.com/macguard-cni/macguard/pkg/macaddr"
)

// Fake is one fake namespace. It mimics the kernel rules that matter to
// macguard: netkit in L3 mode and ipvlan refuse a MAC, devices without a link
// layer have none, and a changed MAC keeps the old EUI-64 link-local address
// until someone swaps it.
type Fake struct {
	mu sync.Mutex
	// NetnsPath is what Path returns.
	NetnsPath string
	// Links by name.
	Links map[string]*link.Observed
	// linkLocal holds each link's IPv6 link-local addresses: the EUI-64
	// one of its MAC when created, as the kernel gives an up interface.
	linkLocal map[string][]net.IP
	// SetErr, SwapErr, AnnounceErr and NotifyErr (AnnounceOnChange), when
	// set, are returned by the next call of that method (and every later
	// one).
	SetErr, SwapErr, AnnounceErr, NotifyErr error
	// notify holds the interfaces whose MAC changes the kernel would
	// announce (AnnounceOnChange called and not yet restored).
	notify map[string]bool
	// RestoreErr is returned by the functions AnnounceOnChange hands out.
	RestoreErr error
	// IgnoreSet makes SetMAC succeed without changing anything, like a
	// driver that silently keeps its address.
	IgnoreSet bool
	// Entered counts the calls of Do, the entries into the namespace.
	Entered int
	// Outside counts method calls made while no Do is running: on the
	// kernel each would enter the namespace once more.
	Outside int
	inside  bool
	// Calls records method calls in order, e.g. "SetMAC eth0 0a:58:...".
	Calls []string
}

// New returns a fake namespace at path holding links.
func New(path string, links ...link.Observed) *Fake {
	f := &Fake{NetnsPath: path, Links: map[string]*link.Observed{}, linkLocal: map[string][]net.IP{}}
	for i := range links {
		l := links[i]
		f.Links[l.Name] = &l
		if ll := macaddr.LinkLocal(l.MAC); ll != nil && l.HasLinkLayer() {
			f.linkLocal[l.Name] = []net.IP{ll}
		}
	}
	return f
}

// Opener returns a link.Opener that hands out f for its path and fails for
// any other, like a missing namespace.
func (f *Fake) Opener() link.Opener {
	return func(path string) (link.Netns, error) {
		if path != f.NetnsPath {
			return nil, fmt.Errorf("CNI_NETNS %q does not exist: %w", path, link.ErrNetns)
		}
		return f, nil
	}
}

func (f *Fake) record(format string, a ...any) { f.Calls = append(f.Calls, fmt.Sprintf(format, a...)) }

// Path implements link.Netns.
func (f *Fake) Path() string { return f.NetnsPath }

// Close implements link.Netns.
func (f *Fake) Close() error { return nil }

// Do implements link.Netns; it counts the entry in Entered but does not
// record it in Calls.
func (f *Fake) Do(fn func() error) error {
	f.mu.Lock()
	f.Entered++
	nested := f.inside
	f.inside = true
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.inside = nested
		f.mu.Unlock()
	}()
	return fn()
}

// enter notes a method call; f.mu is held.
func (f *Fake) enter() {
	if !f.inside {
		f.Outside++
	}
}

// Inspect implements link.Netns.
func (f *Fake) Inspect(ifName string) (link.Observed, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.enter()
	l, ok := f.Links[ifName]
	if !ok {
		var names []string
		for n := range f.Links {
			names = append(names, n)
		}
		sort.Strings(names)
		return link.Observed{}, fmt.Errorf("interface %q not found in netns %s (it has: %s): %w", ifName, f.NetnsPath, strings.Join(names, ", "), link.ErrNotFound)
	}
	o := *l
	o.MAC = append(net.HardwareAddr(nil), l.MAC...)
	// Like the kernel implementation, Inspect does not ask ethtool.
	o.Driver, o.PermMAC = "", nil
	return o, nil
}

// Identify implements link.Netns: it reports the Driver and PermMAC the
// link was created with. Like Inspect it is a read, so it is not recorded
// in Calls.
func (f *Fake) Identify(o *link.Observed) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.enter()
	if l, ok := f.Links[o.Name]; ok {
		o.Driver, o.PermMAC = l.Driver, l.PermMAC
	}
}

// AnnounceOnChange implements link.Netns. While it is in effect, a MAC
// change records "KernelAnnounce IF MAC", as the kernel would send one.
func (f *Fake) AnnounceOnChange(ifName string) (func() error, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.enter()
	f.record("AnnounceOnChange %s", ifName)
	if f.NotifyErr != nil {
		return nil, f.NotifyErr
	}
	if f.notify == nil {
		f.notify = map[string]bool{}
	}
	f.notify[ifName] = true
	return func() error {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.enter()
		f.record("RestoreAnnounce %s", ifName)
		delete(f.notify, ifName)
		return f.RestoreErr
	}, nil
}

// SetMAC implements link.Netns.
func (f *Fake) SetMAC(ifName string, mac net.HardwareAddr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.enter()
	f.record("SetMAC %s %s", ifName, mac)
	if f.SetErr != nil {
		return f.SetErr
	}
	l, ok := f.Links[ifName]
	if !ok {
		return fmt.Errorf("setting MAC on %q: %w", ifName, link.ErrNotFound)
	}
	switch {
	case l.Kind == link.KindNetkit && l.NetkitMode == link.NetkitL3:
		return fmt.Errorf("cannot set MAC %s on %q: %s: %w", mac, ifName, link.NetkitL3Remedy(ifName), link.ErrNotSupported)
	case l.Kind == link.KindIPVlan, !l.HasLinkLayer():
		return fmt.Errorf("cannot set MAC %s on %q: %w", mac, ifName, link.ErrNotSupported)
	case macaddr.IsZero(mac):
		return fmt.Errorf("cannot set MAC %s on %q: %w", mac, ifName, link.ErrRefused)
	}
	if !f.IgnoreSet {
		l.MAC = append(net.HardwareAddr(nil), mac...)
		if f.notify[ifName] {
			f.record("KernelAnnounce %s %s", ifName, mac)
		}
	}
	return nil
}

// SwapLinkLocal implements link.Netns.
func (f *Fake) SwapLinkLocal(ifName string, from, to net.HardwareAddr) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.enter()
	f.record("SwapLinkLocal %s %s %s", ifName, from, to)
	if f.SwapErr != nil {
		return false, f.SwapErr
	}
	oldLL, newLL := macaddr.LinkLocal(from), macaddr.LinkLocal(to)
	for i, ip := range f.linkLocal[ifName] {
		if ip.Equal(oldLL) {
			f.linkLocal[ifName][i] = newLL
			return true, nil
		}
	}
	return false, nil
}

// Announce implements link.Netns.
func (f *Fake) Announce(ifName string, mac net.HardwareAddr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.enter()
	f.record("Announce %s %s", ifName, mac)
	return f.AnnounceErr
}

// LinkLocal returns a link's IPv6 link-local addresses now.
func (f *Fake) LinkLocal(ifName string) []net.IP {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]net.IP(nil), f.linkLocal[ifName]...)
}

// MAC returns a link's current MAC as a string ("" when it has none).
func (f *Fake) MAC(ifName string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return macaddr.String(f.Links[ifName].MAC)
}
