// Package result validates a chained plugin's prevResult and corrects the MAC
// of the sandbox interface in it.
//
// Correction works on the JSON itself rather than on the typed result, so
// every field macguard does not own (including fields newer or older than
// the types in libcni, or a main plugin's extensions) survives as it was.
package result

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/containernetworking/cni/pkg/version"
)

// Result is a validated prevResult in the config's cniVersion.
type Result struct {
	// Raw is the result as the runtime sent it when it already had the
	// config's version, or converted to it otherwise.
	Raw json.RawMessage
	top map[string]json.RawMessage
	ifs []iface
}

type iface struct {
	Name    string `json:"name"`
	MAC     string `json:"mac"`
	Sandbox string `json:"sandbox"`
}

// Parse validates raw (the prevResult) and brings it to cniVersion. An IP
// whose "interface" index points outside "interfaces" is rejected: correcting
// such a result would publish an IP on the wrong interface.
func Parse(raw json.RawMessage, cniVersion string) (*Result, error) {
	var head struct {
		CNIVersion string `json:"cniVersion"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return nil, fmt.Errorf("prevResult is not a JSON object: %w", err)
	}
	prevVersion := head.CNIVersion
	if prevVersion == "" {
		prevVersion = cniVersion
	}
	typed, err := version.NewResult(prevVersion, raw)
	if err != nil {
		return nil, fmt.Errorf("prevResult (cniVersion %q) cannot be decoded: %w", prevVersion, err)
	}
	if prevVersion != cniVersion {
		conv, err := typed.GetAsVersion(cniVersion)
		if err != nil {
			return nil, fmt.Errorf("prevResult cniVersion %q cannot be converted to the config's %q: %w", prevVersion, cniVersion, err)
		}
		if raw, err = json.Marshal(conv); err != nil {
			return nil, fmt.Errorf("re-encoding prevResult as cniVersion %q: %w", cniVersion, err)
		}
		// libcni encodes what it decoded without validating it (an IP
		// without an address becomes "<nil>"): check that the runtime will
		// be able to read what macguard prints.
		if _, err := version.NewResult(cniVersion, raw); err != nil {
			return nil, fmt.Errorf("prevResult cniVersion %q converted to the config's %q is not a valid result: %w", prevVersion, cniVersion, err)
		}
	}
	r := &Result{Raw: raw}
	if err := json.Unmarshal(raw, &r.top); err != nil {
		return nil, fmt.Errorf("prevResult is not a JSON object: %w", err)
	}
	if ifs, ok := r.top["interfaces"]; ok && !isNull(ifs) {
		if err := json.Unmarshal(ifs, &r.ifs); err != nil {
			return nil, fmt.Errorf("prevResult \"interfaces\" is not a list of interfaces: %w", err)
		}
	}
	if ips, ok := r.top["ips"]; ok && !isNull(ips) {
		var list []struct {
			Interface *int `json:"interface"`
		}
		if err := json.Unmarshal(ips, &list); err != nil {
			return nil, fmt.Errorf("prevResult \"ips\" is not a list of IP configs: %w", err)
		}
		for i, ip := range list {
			if ip.Interface != nil && (*ip.Interface < 0 || *ip.Interface >= len(r.ifs)) {
				return nil, fmt.Errorf("prevResult ips[%d].interface is %d but \"interfaces\" has %d entries", i, *ip.Interface, len(r.ifs))
			}
		}
	}
	return r, nil
}

func isNull(m json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(m), []byte("null")) }

// Find returns the index and reported MAC of the interface entry for ifName
// inside the sandbox. Host-side entries (no sandbox) never match, unlike the
// reference tuning plugin which matches on the name alone and would rewrite a
// host veth that happens to share the pod interface's name.
func (r *Result) Find(ifName string, inSandbox func(sandbox string) bool) (index int, mac string, ok bool) {
	for i, f := range r.ifs {
		if f.Name == ifName && f.Sandbox != "" && inSandbox(f.Sandbox) {
			return i, f.MAC, true
		}
	}
	return -1, "", false
}

// WithMAC returns the result with the sandbox interface's "mac" set to mac.
// When the result has no entry for it, one is appended ({name, mac,
// sandbox}); IP "interface" indexes stay valid because appending shifts
// nothing.
func (r *Result) WithMAC(ifName, sandbox string, inSandbox func(string) bool, mac string) (json.RawMessage, error) {
	var entries []map[string]json.RawMessage
	if ifs, ok := r.top["interfaces"]; ok && !isNull(ifs) {
		if err := json.Unmarshal(ifs, &entries); err != nil {
			return nil, fmt.Errorf("prevResult \"interfaces\": %w", err)
		}
	}
	macJSON, _ := json.Marshal(mac)
	if i, _, ok := r.Find(ifName, inSandbox); ok {
		entries[i]["mac"] = macJSON
	} else {
		nameJSON, _ := json.Marshal(ifName)
		sandboxJSON, _ := json.Marshal(sandbox)
		entries = append(entries, map[string]json.RawMessage{"name": nameJSON, "mac": macJSON, "sandbox": sandboxJSON})
	}
	ifsJSON, err := json.Marshal(entries)
	if err != nil {
		return nil, fmt.Errorf("encoding corrected interfaces: %w", err)
	}
	top := make(map[string]json.RawMessage, len(r.top)+1)
	for k, v := range r.top {
		top[k] = v
	}
	top["interfaces"] = ifsJSON
	out, err := json.Marshal(top)
	if err != nil {
		return nil, fmt.Errorf("encoding corrected result: %w", err)
	}
	return out, nil
}
