package doctor

import (
	"fmt"
	"path/filepath"

	"github.com/macguard-cni/macguard/pkg/config"
	"github.com/macguard-cni/macguard/pkg/identity"
	"github.com/macguard-cni/macguard/pkg/link"
	"github.com/macguard-cni/macguard/pkg/macaddr"
	"github.com/macguard-cni/macguard/pkg/policy"
)

// ifaceCheck is one pod interface with everything the per-interface rules
// read about it.
type ifaceCheck struct {
	pod *Pod
	ifc Interface
	// link is ifc as the plugin's policy sees it (link.MAC its address).
	link link.Observed
	// cached is its entry in libcni's cache, rec macguard's record of it;
	// either may be nil.
	cached *cachedAttachment
	rec    *Record
	// reqMAC is the MAC requested for it (by whatever means, whether or
	// not macguard saw it) and reqSource how.
	reqMAC, reqSource string
}

func newIfaceCheck(p *Pod, ifc Interface, ca *cachedAttachment, rec *Record) *ifaceCheck {
	c := &ifaceCheck{pod: p, ifc: ifc, link: ifc.observed(), cached: ca, rec: rec}
	c.reqMAC, c.reqSource = ca.requested()
	return c
}

// observed is the interface as pkg/link reports it to the plugin, so that
// the doctor asks pkg/policy the plugin's own questions.
func (ifc Interface) observed() link.Observed {
	return link.Observed{Name: ifc.Name, Kind: ifc.Kind, NetkitMode: ifc.NetkitMode, EncapType: ifc.Encap, MAC: parseMAC(ifc.MAC), Up: ifc.Up}
}

func (c *ifaceCheck) finding(sev Severity, code, remedy, format string, args ...any) Finding {
	return Finding{Severity: sev, Code: code, Remedy: remedy, Message: fmt.Sprintf(format, args...),
		Section: SectionPods, Pod: c.pod.Name, Interface: c.ifc.Name, MAC: c.ifc.MAC}
}

// ifaceRule is one check of a pod interface: the findings it makes, and
// whether the rules after it have nothing to add (the interface cannot
// carry a MAC, or has none).
type ifaceRule func(c *ifaceCheck) (fs []Finding, done bool)

// ifaceRules are the per-interface checks in the order they run.
var ifaceRules = []ifaceRule{
	cannotCarryRule,
	noLinkLayerRule,
	missingRule,
	multicastRule,
	driftRule,
	resultDiffersRule,
	requestIgnoredRule,
	notDerivedRule,
}

// checkInterface applies ifaceRules to one interface.
func checkInterface(c *ifaceCheck) []Finding {
	var out []Finding
	for _, rule := range ifaceRules {
		fs, done := rule(c)
		out = append(out, fs...)
		if done {
			break
		}
	}
	return out
}

// deviceWords names, for messages, why a device policy.WhyUnsupported
// refuses cannot carry a MAC.
func deviceWords(o link.Observed) string {
	switch {
	case o.Kind == link.KindNetkit && o.NetkitMode == link.NetkitL3:
		return "netkit in L3 mode"
	case o.Kind == link.KindIPVlan || o.Kind == link.KindIPVtap:
		return "ipvlan"
	}
	return fmt.Sprintf("a device without a link layer (link type %q)", o.EncapType)
}

// cannotCarryRule: the plugin's policy says the device cannot carry a MAC
// of its own (policy.CannotCarry; for a MAC that was requested,
// policy.WhyUnsupported, which also refuses a device without a link
// layer). Harmless for a pod, fatal for a VM behind it, an error where a
// MAC was requested.
func cannotCarryRule(c *ifaceCheck) ([]Finding, bool) {
	why := policy.CannotCarry(c.link)
	if why == "" && c.reqMAC != "" {
		why = policy.WhyUnsupported(c.link)
	}
	if why == "" {
		return nil, false
	}
	kind := deviceWords(c.link)
	switch {
	case c.pod.VM != "":
		return []Finding{c.finding(Error, "vm-cannot-start", why,
			"virt-launcher pod of VM %s: %s is %s and cannot carry a MAC, so the VM will not start (KubeVirt: unable to parse mac address '')", c.pod.VM, c.ifc.Name, kind)}, true
	case c.reqMAC != "":
		return []Finding{c.finding(Error, "mac-unsupported", why,
			"MAC %s was requested via %s, but %s is %s and cannot carry a MAC of its own", c.reqMAC, c.reqSource, c.ifc.Name, kind)}, true
	}
	return []Finding{c.finding(Info, "mac-unsupported-device", "",
		"%s is %s: it has no MAC of its own, which is fine for pods but not for a VM", c.ifc.Name, kind)}, true
}

// noLinkLayerRule: a device without a link layer (tunnels, wireguard, tun)
// for which no MAC was requested has no MAC to speak of.
func noLinkLayerRule(c *ifaceCheck) ([]Finding, bool) {
	return nil, !c.link.HasLinkLayer() && c.link.Kind != link.KindNetkit
}

// missingRule: an Ethernet device without a MAC.
func missingRule(c *ifaceCheck) ([]Finding, bool) {
	if !macaddr.IsZero(c.link.MAC) {
		return nil, false
	}
	remedy := "chain macguard after the main plugin (assign \"zero\", the default, gives such an interface the stable MAC of its pod or VM)"
	if ca := c.cached; ca.chained() {
		remedy = "something cleared it after macguard's ADD; recreate the pod, and find what else touches this interface"
		if ca.cfg != nil && policy.Decide(policy.Input{Assign: ca.cfg.Assign, Requested: ca.req, Link: c.link}).Action == policy.Keep {
			// The plugin leaves it so by design (assign "never").
			remedy = fmt.Sprintf("macguard's entry in network %q has assign %q, so ADD leaves an interface without a MAC as it is: remove \"assign\" (the default, \"zero\", gives it the stable MAC of its pod or VM), or request a MAC", ca.entry.Network, ca.cfg.Assign)
		}
	}
	return []Finding{c.finding(Warning, "mac-missing", remedy, "%s has no MAC (empty or all zeros)", c.ifc.Name)}, true
}

// multicastRule: a multicast MAC, which no peer answers.
func multicastRule(c *ifaceCheck) ([]Finding, bool) {
	if !macaddr.IsMulticast(c.link.MAC) {
		return nil, false
	}
	return []Finding{c.finding(Error, "mac-multicast", "give it a unicast MAC: a requested MAC must be unicast, and macguard's derived MACs always are",
		"%s has the multicast MAC %s, which no peer will answer", c.ifc.Name, c.ifc.MAC)}, false
}

// driftRule: the MAC is no longer the one macguard's record says it set.
func driftRule(c *ifaceCheck) ([]Finding, bool) {
	rec := c.rec
	if rec == nil || rec.AppliedMAC == "" || macaddr.Equal(c.link.MAC, parseMAC(rec.AppliedMAC)) {
		return nil, false
	}
	return []Finding{c.finding(Warning, "mac-drift",
		"find what else sets MACs on this network (tuning, the main plugin's \"mac\", an agent in the pod) and leave one owner; DEL will not restore the original MAC, because it only undoes a MAC it set",
		"%s has %s, but macguard applied %s (record %s): something changed it after ADD", c.ifc.Name, c.ifc.MAC, rec.AppliedMAC, filepath.Base(rec.File))}, false
}

// resultDiffersRule: the cached CNI result, which the runtime and Multus
// report, names another MAC.
func resultDiffersRule(c *ifaceCheck) ([]Finding, bool) {
	if c.cached == nil {
		return nil, false
	}
	var out []Finding
	for _, ri := range c.cached.entry.Result {
		if ri.Name != c.ifc.Name || ri.Sandbox == "" || ri.MAC == "" {
			continue
		}
		if rm := parseMAC(ri.MAC); rm != nil && !macaddr.Equal(rm, c.link.MAC) {
			out = append(out, c.finding(Warning, "mac-differs-from-result",
				"the runtime and Multus's network-status report the cached MAC; recreate the pod so that they match, and leave one owner of the MAC (see the record and the chain)",
				"%s has %s, but the cached CNI result of network %q reports %s", c.ifc.Name, c.ifc.MAC, c.cached.entry.Network, ri.MAC))
		}
	}
	return out, false
}

// requestIgnoredRule: a MAC was requested, and the plugin's policy, asked
// with it, would change the interface: the request did not stick.
func requestIgnoredRule(c *ifaceCheck) ([]Finding, bool) {
	ca := c.cached
	if ca == nil || c.reqMAC == "" {
		return nil, false
	}
	rm := parseMAC(c.reqMAC)
	if rm == nil {
		return nil, false
	}
	d := policy.Decide(policy.Input{Requested: &config.Requested{MAC: rm, Source: c.reqSource}, Link: c.link})
	if d.Action == policy.Keep {
		return nil, false
	}
	chained := ca.chained()
	remedy := "recreate the pod; if it happens again, look for a second owner of the MAC in the chain"
	switch {
	case chained && ca.req == nil && c.reqSource == config.SourceRuntimeConfig && !ca.chain.Macguard().MACCapability:
		// libcni hands runtimeConfig.mac only to plugins that declare
		// the capability: macguard never saw it.
		remedy = fmt.Sprintf("add \"capabilities\": {\"mac\": true} to macguard's entry in network %q, so that the requested MAC (runtimeConfig.mac) reaches it", ca.entry.Network)
	case !chained && (ca.chain == nil || !ca.chain.HasType("tuning")):
		remedy = fmt.Sprintf("chain macguard with \"capabilities\": {\"mac\": true} into network %q: its main plugin ignores a requested MAC", ca.entry.Network)
	}
	return []Finding{c.finding(Error, "mac-request-ignored", remedy,
		"%s has %s, not the MAC %s requested via %s: the request did not stick", c.ifc.Name, c.ifc.MAC, c.reqMAC, c.reqSource)}, false
}

// notDerivedRule: where macguard derives the MAC (no request, assign not
// "never"), the interface has another one that the plugin's policy would
// replace (assign "always"), or one that is not locally administered where
// macguard derived it (no derived MAC is universal).
func notDerivedRule(c *ifaceCheck) ([]Finding, bool) {
	ca := c.cached
	if ca == nil || ca.cfg == nil || ca.req != nil || ca.cfg.Assign == config.AssignNever {
		return nil, false
	}
	id, err := identity.Resolve(ca.cfg.Identity, ca.cfg.Pod, ca.entry.ContainerID)
	if err != nil {
		return nil, false
	}
	derived := macaddr.Derive(macaddr.Input{Kind: id.Kind, Key: id.Key, IfName: c.ifc.Name, Salt: ca.cfg.Salt, Prefix: ca.cfg.Prefix})
	d := policy.Decide(policy.Input{Assign: ca.cfg.Assign, Derived: derived, Identity: id.String(), Link: c.link})
	derives := ca.cfg.Assign == config.AssignAlways || (c.rec != nil && macaddr.Equal(parseMAC(c.rec.AppliedMAC), derived))
	switch {
	case derives && !macaddr.IsLocal(c.link.MAC):
		return []Finding{c.finding(Warning, "mac-not-local", "recreate the pod so that macguard derives its MAC again, and find what set this one",
			"%s has %s, which is not locally administered, where macguard derives the stable MAC %s of %s", c.ifc.Name, c.ifc.MAC, derived, id)}, false
	case d.Action == policy.Set:
		// Only "always" replaces a MAC the interface has (missingRule
		// took the empty one).
		return []Finding{c.finding(Warning, "mac-not-derived", "recreate the pod so that macguard derives its MAC again, and find what set this one",
			"assign is \"always\", but %s has %s instead of the stable MAC %s of %s", c.ifc.Name, c.ifc.MAC, derived, id)}, false
	}
	return nil, false
}
