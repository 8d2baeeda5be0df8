// Package policy decides what MAC a pod interface must have. Decide is a
// pure function of the configuration and what was observed on the link, so
// every rule is tested without a kernel and ADD and CHECK cannot disagree.
package policy

import (
	"fmt"
	"net"

	"github.com/macguard-cni/macguard/pkg/config"
	"github.com/macguard-cni/macguard/pkg/link"
	"github.com/macguard-cni/macguard/pkg/macaddr"
)

// Action is what the plugin should do with the interface.
type Action int

// Actions.
const (
	// Keep: the interface is as it should be; nothing to change.
	Keep Action = iota
	// Set: give the interface Decision.MAC.
	Set
	// Unsupported: the interface should get Decision.MAC but the device
	// cannot carry one; onUnsupported decides between failing and skipping.
	Unsupported
)

func (a Action) String() string {
	switch a {
	case Keep:
		return "keep"
	case Set:
		return "set"
	case Unsupported:
		return "unsupported"
	}
	return fmt.Sprintf("action(%d)", int(a))
}

// Input is everything a decision depends on.
type Input struct {
	Assign    config.Assign
	Requested *config.Requested
	// Derived is the stable MAC for this workload and interface, and
	// Identity says whose it is (for the reason text).
	Derived  net.HardwareAddr
	Identity string
	Link     link.Observed
}

// Decision is the outcome: what to do, the MAC it concerns and why, in words
// that go into the log line and into error messages.
type Decision struct {
	Action Action
	MAC    net.HardwareAddr
	Reason string
}

// Decide applies the rules in order: a requested MAC always wins; otherwise
// "assign" says whether the derived MAC is wanted; devices without a link
// layer are left alone unless a MAC was explicitly requested for them.
func Decide(in Input) Decision {
	cur := in.Link.MAC
	if r := in.Requested; r != nil {
		if macaddr.Equal(cur, r.MAC) {
			return Decision{Action: Keep, MAC: r.MAC, Reason: fmt.Sprintf("already has the MAC requested via %s", r.Source)}
		}
		reason := fmt.Sprintf("requested via %s", r.Source)
		if why := WhyUnsupported(in.Link); why != "" {
			return Decision{Action: Unsupported, MAC: r.MAC, Reason: reason + "; " + why}
		}
		return Decision{Action: Set, MAC: r.MAC, Reason: reason}
	}
	if in.Assign == config.AssignNever {
		return Decision{Action: Keep, MAC: cur, Reason: `no MAC requested and assign is "never"`}
	}
	if !in.Link.HasLinkLayer() {
		return Decision{Action: Keep, MAC: cur, Reason: fmt.Sprintf("device has no Ethernet address (link type %q); left alone", in.Link.EncapType)}
	}
	var reason string
	switch in.Assign {
	case config.AssignAlways:
		if macaddr.Equal(cur, in.Derived) {
			return Decision{Action: Keep, MAC: cur, Reason: "already has the stable MAC of " + in.Identity}
		}
		reason = `assign is "always": stable MAC of ` + in.Identity
	default: // config.AssignZero; config validation admits nothing else
		if !macaddr.IsZero(cur) {
			return Decision{Action: Keep, MAC: cur, Reason: "interface already has a MAC"}
		}
		reason = "interface has no MAC (empty or all zeros): stable MAC of " + in.Identity
	}
	if why := WhyUnsupported(in.Link); why != "" {
		return Decision{Action: Unsupported, MAC: in.Derived, Reason: reason + "; " + why}
	}
	return Decision{Action: Set, MAC: in.Derived, Reason: reason}
}

// WhyUnsupported explains why the device cannot take any MAC of its own, or
// returns "" when it can (as far as can be known before trying). Decide asks
// it before every change; macguardctl doctor asks it about the interfaces
// it finds, so the two cannot disagree about a device.
func WhyUnsupported(o link.Observed) string {
	if why := CannotCarry(o); why != "" {
		return why
	}
	if !o.HasLinkLayer() {
		return fmt.Sprintf("%s has no Ethernet address at all (link type %q), so it cannot carry a MAC", o.Name, o.EncapType)
	}
	return ""
}

// CannotCarry is the part of WhyUnsupported that the device's kind decides,
// whatever address it shows: netkit in L3 mode has no link layer, and an
// ipvlan or ipvtap slave shares its parent's MAC. It returns "" for every
// other device. (A device without a link layer of another kind, a tun or
// wireguard, has no MAC anyone expects; the doctor speaks of it only when
// a MAC was requested for it.)
func CannotCarry(o link.Observed) string {
	switch {
	case o.Kind == link.KindNetkit && o.NetkitMode == link.NetkitL3:
		return link.NetkitL3Remedy(o.Name)
	case o.Kind == link.KindIPVlan || o.Kind == link.KindIPVtap:
		return link.IPVlanRemedy(o.Name)
	}
	return ""
}
