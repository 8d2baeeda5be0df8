package testutil

// Routing and traffic between namespaces a test made: a default route, a
// loopback brought up, and a TCP exchange that says whether a reply really
// came back. Nothing here reaches an address outside the test's
// namespaces.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
)

// AddDefaultRoute adds "default via gw" inside n.
func AddDefaultRoute(t testing.TB, n ns.NetNS, gw string) {
	t.Helper()
	InNetns(t, n, func() error {
		ip := net.ParseIP(gw)
		if ip == nil {
			return fmt.Errorf("gateway %q is not an IP address", gw)
		}
		if err := netlink.RouteAdd(&netlink.Route{Gw: ip}); err != nil {
			return fmt.Errorf("adding default via %s: %w", gw, err)
		}
		return nil
	})
}

// LinkUp brings ifName up inside n (a new namespace's lo is down).
func LinkUp(t testing.TB, n ns.NetNS, ifName string) {
	t.Helper()
	InNetns(t, n, func() error {
		l, err := netlinksafe.LinkByName(ifName)
		if err != nil {
			return err
		}
		return netlink.LinkSetUp(l)
	})
}

// TCPExchange listens on listen ("ip:port") inside listenNS, connects to it
// from dialNS with the local address from ("" lets the kernel choose), and
// sends a line that the listener echoes. It returns nil when the echo came
// back within timeout, else what failed (a connect that timed out: the
// SYN-ACK never came back). The listener is closed before it returns.
func TCPExchange(t testing.TB, listenNS ns.NetNS, listen string, dialNS ns.NetNS, from string, timeout time.Duration) error {
	t.Helper()
	var ln net.Listener
	InNetns(t, listenNS, func() (err error) {
		// The socket belongs to the namespace it was created in, whatever
		// thread later accepts on it.
		ln, err = net.Listen("tcp", listen)
		return err
	})
	done := make(chan struct{})
	defer func() {
		_ = ln.Close() // ends the accept loop
		<-done
	}()
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(timeout))
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	var result error
	err := dialNS.Do(func(ns.NetNS) error {
		d := net.Dialer{Timeout: timeout}
		if from != "" {
			d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
		}
		c, err := d.Dial("tcp", listen)
		if err != nil {
			result = fmt.Errorf("connecting from %s to %s: %w", orKernel(from), listen, err)
			return nil
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(timeout))
		if _, err := io.WriteString(c, "ping\n"); err != nil {
			result = fmt.Errorf("writing to %s: %w", listen, err)
			return nil
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || line != "ping\n" {
			result = fmt.Errorf("reading the echo from %s: %q, %v", listen, line, err)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("in netns %s: %v", dialNS.Path(), err)
	}
	return result
}

func orKernel(from string) string {
	if from == "" {
		return "the kernel's choice of address"
	}
	return from
}
