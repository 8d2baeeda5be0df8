// Package result validates a chained plugin's prevResult and corrects the MAC
// of the sandbox interface in it.
//
// Correction works on the JSON itself rather than on the typed result, so
// every field macguard does not own (including fields newer or older than
// the types in libcni, or a main plugin's extensions) survives as it was.
// The corrected result is json.Marshal of the prevResult decoded into maps of
// json.RawMessage (its top level and each "interfaces" entry), which is what
// runtimes have seen from macguard so far: keys sorted, the last of a
// repeated key kept, compact, HTML-escaped. TestOutputBytes pins it.
package result

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/containernetworking/cni/pkg/types"
	types040 "github.com/containernetworking/cni/pkg/types/040"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
)

// Result is a validated prevResult in the config's cniVersion.
type Result struct {
	// Raw is the result as the runtime sent it when it already had the
	// config's version, or converted to it otherwise.
	Raw json.RawMessage
	// top is Raw's members as Parse decoded them, so a caller replacing
	// Raw does not change what WithMAC writes; ifs is its "interfaces".
	top map[string]json.RawMessage
	ifs []iface
}

// iface is what macguard reads of an interface entry; everything else in
// the entry is passed through by WithMAC.
type iface struct {
	Name    string `json:"name"`
	MAC     string `json:"mac"`
	Sandbox string `json:"sandbox"`
}

// ipConfig is what macguard reads of an IP entry. It is anonymous because
// encoding/json names the type in its error messages, which users see.
type ipConfig = struct {
	Interface *int `json:"interface"`
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
	prevVersion := cmp.Or(head.CNIVersion, cniVersion)
	// libcni's typed decode is the judge of what a valid result is, for
	// the version it claims, whether or not it needs converting.
	typed, err := version.NewResult(prevVersion, raw)
	if err != nil {
		return nil, fmt.Errorf("prevResult (cniVersion %q) cannot be decoded: %w", prevVersion, err)
	}
	if prevVersion != cniVersion {
		if where := nullEntry(typed); where != "" {
			return nil, fmt.Errorf("prevResult %s is null; a list entry must be an object", where)
		}
		conv, err := convert(typed, cniVersion)
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

	// raw is an object here, or null for the pre-0.3 versions whose types
	// accept it (top is then empty). Null lists decode as empty ones.
	r := &Result{Raw: raw}
	if err := json.Unmarshal(raw, &r.top); err != nil {
		return nil, fmt.Errorf("prevResult is not a JSON object: %w", err)
	}
	if ifs, ok := r.top["interfaces"]; ok {
		if err := json.Unmarshal(ifs, &r.ifs); err != nil {
			return nil, fmt.Errorf("prevResult \"interfaces\" is not a list of interfaces: %w", err)
		}
	}
	if ips, ok := r.top["ips"]; ok {
		var list []ipConfig
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
	// A null entry decodes as a nil map and is written back as null.
	var entries []map[string]json.RawMessage
	if ifs, ok := r.top["interfaces"]; ok {
		if err := json.Unmarshal(ifs, &entries); err != nil {
			return nil, fmt.Errorf("prevResult \"interfaces\": %w", err)
		}
	}
	if i, _, ok := r.Find(ifName, inSandbox); ok {
		entries[i]["mac"] = jsonString(mac)
	} else {
		entries = append(entries, map[string]json.RawMessage{
			"name": jsonString(ifName), "mac": jsonString(mac), "sandbox": jsonString(sandbox),
		})
	}
	ifs, err := json.Marshal(entries)
	if err != nil {
		return nil, fmt.Errorf("encoding corrected interfaces: %w", err)
	}
	// A copy, so that r stays the prevResult Parse read.
	top := maps.Clone(r.top)
	if top == nil {
		top = map[string]json.RawMessage{}
	}
	top["interfaces"] = ifs
	out, err := json.Marshal(top)
	if err != nil {
		return nil, fmt.Errorf("encoding corrected result: %w", err)
	}
	return out, nil
}

// jsonString is s as a JSON string. Marshalling a string cannot fail.
func jsonString(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}

// nullEntry names the first null entry of a result's lists ("interfaces",
// "ips", "routes"), which decode as nil pointers that libcni's converters
// dereference.
func nullEntry(r types.Result) string {
	switch r := r.(type) {
	case *types100.Result:
		return cmp.Or(firstNil("interfaces", r.Interfaces), firstNil("ips", r.IPs), firstNil("routes", r.Routes))
	case *types040.Result:
		return cmp.Or(firstNil("interfaces", r.Interfaces), firstNil("ips", r.IPs), firstNil("routes", r.Routes))
	}
	return ""
}

func firstNil[T any](name string, list []*T) string {
	if i := slices.Index(list, nil); i >= 0 {
		return fmt.Sprintf("%q[%d]", name, i)
	}
	return ""
}

// convert is libcni's GetAsVersion with a panic turned into an error: its
// converters trust what they decoded, and a prevResult libcni accepts but
// cannot convert must get a CNI error, not kill the plugin.
func convert(r types.Result, to string) (conv types.Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			conv, err = nil, fmt.Errorf("libcni failed converting it: %v", p)
		}
	}()
	return r.GetAsVersion(to)
}
