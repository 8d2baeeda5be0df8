// Package link inspects and changes the pod interface inside its network
// namespace and turns kernel refusals into errors a user can act on.
//
// The plugin talks to it through the Netns interface so the decision and
// rollback logic can be exercised with a fake where this host's kernel lacks
// a device (netkit, ipvlan), while the real implementation runs in real
// namespaces in the integration and VM suites.
package link

import (
	"errors"
	"net"
)

// Device kinds with special MAC rules (netlink's link kind strings).
const (
	KindNetkit = "netkit"
	KindIPVlan = "ipvlan"
	KindIPVtap = "ipvtap"
)

// Netkit modes as reported in Observed.NetkitMode.
const (
	NetkitL2 = "l2"
	NetkitL3 = "l3"
)

// Sentinel errors; the plugin maps them to CNI error codes.
var (
	// ErrNotFound: no interface with that name in the namespace.
	ErrNotFound = errors.New("interface not found")
	// ErrNotSupported: the device cannot carry the MAC (netkit L3, ipvlan,
	// no link layer), so no retry or other value will help.
	ErrNotSupported = errors.New("device cannot take a MAC address")
	// ErrAddrInUse: another device on the same lower device already uses it.
	ErrAddrInUse = errors.New("MAC address already in use")
	// ErrRefused: the kernel refused the change for another reason, or the
	// read-back did not show the new address.
	ErrRefused = errors.New("MAC address change refused")
	// ErrNetns: the network namespace could not be opened or entered.
	ErrNetns = errors.New("network namespace unusable")
)

// Observed is what macguard knows about an interface at one moment.
type Observed struct {
	Name  string
	Index int
	// Kind is netlink's link kind ("veth", "macvlan", "netkit", ...), or
	// "device" for physical and other kind-less devices.
	Kind string
	// NetkitMode is NetkitL2 or NetkitL3 for netkit devices.
	NetkitMode string
	// EncapType is netlink's name for the ARPHRD type; only "ether"
	// devices have a MAC macguard may set.
	EncapType string
	// Driver and PermMAC come from ethtool where the driver answers; they
	// make log lines and errors name a VF driver or netkit.
	Driver  string
	PermMAC net.HardwareAddr
	// MAC is empty when the kernel reports no address (netkit L3).
	MAC net.HardwareAddr
	Up  bool
	// NoARP mirrors IFF_NOARP: announcing with ARP there is pointless.
	NoARP bool
}

// HasLinkLayer is false for devices without an Ethernet address at all
// (ARPHRD_NONE such as tun in L3 mode or wireguard, IP tunnels, ...).
func (o Observed) HasLinkLayer() bool { return o.EncapType == "ether" }

// Describe names the device for messages: kind, mode and driver.
func (o Observed) Describe() string {
	d := o.Kind
	if d == "" {
		d = "device"
	}
	if o.NetkitMode != "" {
		d += " (" + o.NetkitMode + " mode)"
	}
	if o.Driver != "" && o.Driver != o.Kind {
		d += ", driver " + o.Driver
	}
	return d
}

// Netns is an open network namespace in which macguard works on links.
type Netns interface {
	// Path is the namespace path, as given by the runtime.
	Path() string
	// Do runs f inside the namespace. Every method f calls (from its own
	// goroutine) uses that one entry instead of entering again, so a
	// command that does all its link work in one Do switches namespaces
	// twice (in and out) however many steps it takes. A Netns is not for
	// concurrent use.
	Do(f func() error) error
	// Inspect reads the interface; ErrNotFound names the interfaces that
	// do exist. It leaves Driver and PermMAC empty (see Identify) and reads
	// no addresses: nothing decides on them, and only a change needs them
	// (SwapLinkLocal, Announce), which reads them itself.
	Inspect(ifName string) (Observed, error)
	// Identify fills in o.Driver and o.PermMAC from ethtool, best effort.
	// It is separate from Inspect because both ethtool ioctls take RTNL,
	// the lock every pod start on the node queues for, and only log lines
	// and error messages use the answer.
	Identify(o *Observed)
	// SetMAC sets the address; errors wrap ErrNotSupported, ErrAddrInUse or
	// ErrRefused.
	SetMAC(ifName string, mac net.HardwareAddr) error
	// SwapLinkLocal replaces the EUI-64 link-local address derived from
	// from by the one derived from to, if the interface has the former. It
	// reports whether it changed anything.
	SwapLinkLocal(ifName string, from, to net.HardwareAddr) (bool, error)
	// AnnounceOnChange makes the kernel itself announce the interface's
	// addresses when its MAC next changes (arp_notify and ndisc_notify:
	// gratuitous ARP, unsolicited NA with the Override flag), and returns
	// a function that puts the previous settings back. When it fails,
	// nothing was changed and Announce is the fallback.
	AnnounceOnChange(ifName string) (restore func() error, err error)
	// Announce sends gratuitous ARP and unsolicited neighbour
	// advertisements for the interface's addresses from mac.
	Announce(ifName string, mac net.HardwareAddr) error
	// Close releases the namespace handle.
	Close() error
}

// Opener opens a namespace by path; the plugin takes one so tests can
// substitute a fake or wrap the real one to inject faults.
type Opener func(path string) (Netns, error)
