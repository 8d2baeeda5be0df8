// Package result validates a chained plugin's prevResult and corrects the MAC
// of the sandbox interface in it.
//
// Correction works on the JSON itself rather than on the typed result, so
// every field macguard does not own (including fields newer or older than
// the types in libcni, or a main plugin's extensions) survives as it was.
//
// The JSON is read with jsonscan rather than decoded into maps: macguard runs
// once per pod interface, in the pod's start-up path, and only needs three
// fields of each interface entry. The output is still exactly what
// json.Marshal of the decoded maps gives (keys sorted, last of a repeated
// key kept, compact, HTML-escaped), because that is what runtimes have seen
// from macguard so far; TestOutputBytes pins it.
package result

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/containernetworking/cni/pkg/types"
	types040 "github.com/containernetworking/cni/pkg/types/040"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/macguard-cni/macguard/pkg/internal/jsonscan"
)

// Result is a validated prevResult in the config's cniVersion.
type Result struct {
	// Raw is the result as the runtime sent it when it already had the
	// config's version, or converted to it otherwise.
	Raw json.RawMessage
	// doc is Raw as Parse validated it (a caller replacing Raw does not
	// change what WithMAC reads); ifs is the value of its top-level
	// "interfaces" member, nil when there is none or it is null.
	doc []byte
	ifs []byte
}

// Parse validates raw (the prevResult) and brings it to cniVersion. An IP
// whose "interface" index points outside "interfaces" is rejected: correcting
// such a result would publish an IP on the wrong interface.
func Parse(raw json.RawMessage, cniVersion string) (*Result, error) {
	prevVersion, scanned := docVersion(raw, cniVersion)
	if !scanned {
		v, err := decodeVersion(raw)
		if err != nil {
			return nil, err
		}
		prevVersion = v
	}
	if prevVersion == "" {
		prevVersion = cniVersion
	}
	// libcni's typed decode stays the judge of what a valid result is, for
	// the version it claims, whether or not it needs converting.
	typed, err := version.NewResult(prevVersion, raw)
	if err != nil {
		// docVersion does not validate: on text that is not JSON, the
		// error encoding/json gives for the cniVersion comes first, as it
		// did when the version was decoded with it.
		if scanned {
			if _, verr := decodeVersion(raw); verr != nil {
				return nil, verr
			}
		}
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
	// From here on raw is JSON encoding/json has accepted (an object, or
	// null for the pre-0.3 versions, whose types accept it), so scanning it
	// cannot go wrong. Members are looked up as in a decoded map: by exact
	// key, the last of a repeated one winning.
	r := &Result{Raw: raw, doc: raw}
	var ips []byte
	top, _ := jsonscan.Object(raw)
	for key, val, ok := top.Next(); ok; key, val, ok = top.Next() {
		switch {
		case jsonscan.Is(key, "interfaces"):
			r.ifs = val
		case jsonscan.Is(key, "ips"):
			ips = val
		}
	}
	if r.ifs != nil && jsonscan.IsNull(r.ifs) {
		r.ifs = nil
	}
	n := 0
	if r.ifs != nil {
		var ok bool
		if n, ok = countInterfaces(r.ifs); !ok {
			return nil, fmt.Errorf("prevResult \"interfaces\" is not a list of interfaces: %w", decodeError(r.ifs, &[]iface{}))
		}
	}
	if ips != nil && !jsonscan.IsNull(ips) {
		at, index, ok := checkIPs(ips, n)
		if !ok {
			return nil, fmt.Errorf("prevResult \"ips\" is not a list of IP configs: %w", decodeError(ips, &[]ipConfig{}))
		}
		if at >= 0 {
			return nil, fmt.Errorf("prevResult ips[%d].interface is %d but \"interfaces\" has %d entries", at, index, n)
		}
	}
	return r, nil
}

// decodeVersion reads the prevResult's cniVersion with encoding/json, which
// is also what tells a prevResult that is not a JSON object apart.
func decodeVersion(raw []byte) (string, error) {
	var head struct {
		CNIVersion string `json:"cniVersion"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return "", fmt.Errorf("prevResult is not a JSON object: %w", err)
	}
	return head.CNIVersion, nil
}

// docVersion reads the cniVersion of an object as decodeVersion would, when
// raw is JSON: the last member whose key folds to it, null leaving it unset.
// ok is false for anything unusual (not an object, not a string, text that
// stops making sense), for decodeVersion to settle. The result is want
// itself when it has that value, so the common case allocates nothing.
func docVersion(raw []byte, want string) (v string, ok bool) {
	var found []byte
	top, isObject := jsonscan.Object(raw)
	if !isObject {
		return "", false
	}
	for key, val, more := top.Next(); more; key, val, more = top.Next() {
		if !jsonscan.Folds(key, "cniVersion") {
			continue
		}
		switch jsonscan.Kind(val) {
		case 'n':
			if !jsonscan.IsNull(val) {
				return "", false
			}
		case '"':
			s, isString := jsonscan.Unquote(val)
			if !isString {
				return "", false
			}
			found = s
		default:
			return "", false
		}
	}
	if top.Malformed() {
		return "", false
	}
	if string(found) == want {
		return want, true
	}
	return string(found), true
}

// iface and ipConfig are how encoding/json reads an interface entry and an IP
// entry for macguard; the scans below follow them, and they produce the
// error message when a scan finds something they would refuse.
type iface struct {
	Name    string `json:"name"`
	MAC     string `json:"mac"`
	Sandbox string `json:"sandbox"`
}

// ipConfig is anonymous, as it always was, because encoding/json names the
// type in its messages.
type ipConfig = struct {
	Interface *int `json:"interface"`
}

// decodeError is encoding/json's complaint about v. It is only asked when a
// scan has found something it refuses; should it accept it after all, the
// scan and encoding/json disagree, and the result is refused rather than
// corrected on a misreading.
func decodeError(v []byte, into any) error {
	if err := json.Unmarshal(v, into); err != nil {
		return err
	}
	return errors.New("it cannot be read")
}

// entry is one interface entry as iface reads it; a null entry reads as the
// zero entry.
type entry struct{ name, mac, sandbox []byte }

// readEntry reads one element of "interfaces" the way encoding/json decodes
// it into iface: fields matched case-insensitively, the last one winning,
// null leaving a field as it was. ok is false where encoding/json would
// report an error.
func readEntry(v []byte) (e entry, ok bool) {
	if jsonscan.Kind(v) == 'n' {
		return e, jsonscan.IsNull(v)
	}
	m, ok := jsonscan.Object(v)
	if !ok {
		return e, false
	}
	for key, val, ok := m.Next(); ok; key, val, ok = m.Next() {
		var field *[]byte
		switch {
		case jsonscan.Folds(key, "name"):
			field = &e.name
		case jsonscan.Folds(key, "mac"):
			field = &e.mac
		case jsonscan.Folds(key, "sandbox"):
			field = &e.sandbox
		default:
			continue
		}
		switch jsonscan.Kind(val) {
		case '"':
			s, ok := jsonscan.Unquote(val)
			if !ok {
				return e, false
			}
			*field = s
		case 'n':
		default:
			return e, false
		}
	}
	return e, !m.Malformed()
}

// countInterfaces is the number of entries in "interfaces", ok being false
// when encoding/json could not decode it into []iface.
func countInterfaces(ifs []byte) (n int, ok bool) {
	list, ok := jsonscan.Array(ifs)
	if !ok {
		return 0, false
	}
	for v, ok := list.Next(); ok; v, ok = list.Next() {
		if _, ok := readEntry(v); !ok {
			return 0, false
		}
		n++
	}
	return n, !list.Malformed()
}

// checkIPs reads "ips" as encoding/json decodes it into []ipConfig (ok false
// where it would fail) and finds the first IP whose interface index is not
// one of the n interfaces (at is -1 when there is none).
func checkIPs(ips []byte, n int) (at, index int, ok bool) {
	list, ok := jsonscan.Array(ips)
	if !ok {
		return -1, 0, false
	}
	at = -1
	for i := 0; ; i++ {
		v, more := list.Next()
		if !more {
			break
		}
		if jsonscan.Kind(v) == 'n' {
			if !jsonscan.IsNull(v) {
				return -1, 0, false
			}
			continue
		}
		m, ok := jsonscan.Object(v)
		if !ok {
			return -1, 0, false
		}
		set, idx := false, 0
		for key, val, ok := m.Next(); ok; key, val, ok = m.Next() {
			if !jsonscan.Folds(key, "interface") {
				continue
			}
			switch c := jsonscan.Kind(val); {
			case c == 'n':
				if !jsonscan.IsNull(val) {
					return -1, 0, false
				}
				set = false // null sets a pointer field back to nil
			case c == '-' || ('0' <= c && c <= '9'):
				// encoding/json reads an int with ParseInt, so 1.0 or
				// 1e2 or an overflow is an error, not an index.
				x, err := strconv.ParseInt(string(val), 10, 64)
				if err != nil || int64(int(x)) != x {
					return -1, 0, false
				}
				set, idx = true, int(x)
			default:
				return -1, 0, false
			}
		}
		if m.Malformed() {
			return -1, 0, false
		}
		if set && (idx < 0 || idx >= n) && at < 0 {
			at, index = i, idx
		}
	}
	return at, index, !list.Malformed()
}

// Find returns the index and reported MAC of the interface entry for ifName
// inside the sandbox. Host-side entries (no sandbox) never match, unlike the
// reference tuning plugin which matches on the name alone and would rewrite a
// host veth that happens to share the pod interface's name.
func (r *Result) Find(ifName string, inSandbox func(sandbox string) bool) (index int, mac string, ok bool) {
	i, e, ok := r.find(ifName, inSandbox)
	if !ok {
		return -1, "", false
	}
	return i, string(e.mac), true
}

func (r *Result) find(ifName string, inSandbox func(string) bool) (int, entry, bool) {
	list, _ := jsonscan.Array(r.ifs)
	for i := 0; ; i++ {
		v, ok := list.Next()
		if !ok {
			break
		}
		// Parse has checked that every entry reads.
		e, _ := readEntry(v)
		if string(e.name) == ifName && len(e.sandbox) > 0 && inSandbox(string(e.sandbox)) {
			return i, e, true
		}
	}
	return -1, entry{}, false
}

// WithMAC returns the result with the sandbox interface's "mac" set to mac.
// When the result has no entry for it, one is appended ({name, mac,
// sandbox}); IP "interface" indexes stay valid because appending shifts
// nothing.
func (r *Result) WithMAC(ifName, sandbox string, inSandbox func(string) bool, mac string) (json.RawMessage, error) {
	at, _, found := r.find(ifName, inSandbox)
	var buf bytes.Buffer
	buf.Grow(len(r.doc) + len(ifName) + len(sandbox) + len(mac) + 64)

	var topArr [16]member
	top, ok := members(topArr[:0], r.doc)
	if !ok {
		return nil, errors.New("encoding corrected result: prevResult cannot be read")
	}
	top = sortMembers(append(top, member{key: keyInterfaces, special: true}))
	buf.WriteByte('{')
	for i, m := range top {
		if i > 0 {
			buf.WriteByte(',')
		}
		jsonscan.WriteString(&buf, m.key)
		buf.WriteByte(':')
		if !m.special {
			if err := json.Compact(&buf, m.val); err != nil {
				return nil, fmt.Errorf("encoding corrected result: %w", err)
			}
			continue
		}

		buf.WriteByte('[')
		list, _ := jsonscan.Array(r.ifs)
		n := 0
		for v, ok := list.Next(); ok; v, ok = list.Next() {
			if n > 0 {
				buf.WriteByte(',')
			}
			if err := writeEntry(&buf, v, n == at && found, mac); err != nil {
				return nil, fmt.Errorf("encoding corrected interfaces: %w", err)
			}
			n++
		}
		if !found {
			if n > 0 {
				buf.WriteByte(',')
			}
			buf.WriteString(`{"mac":`)
			jsonscan.WriteString(&buf, mac)
			buf.WriteString(`,"name":`)
			jsonscan.WriteString(&buf, ifName)
			buf.WriteString(`,"sandbox":`)
			jsonscan.WriteString(&buf, sandbox)
			buf.WriteByte('}')
		}
		buf.WriteByte(']')
	}
	buf.WriteByte('}')
	return jsonscan.HTMLEscape(buf.Bytes()), nil
}

var (
	keyInterfaces = []byte("interfaces")
	keyMAC        = []byte("mac")
)

// member is one member of an object being re-encoded: its key as decoded,
// and its value as written (special: macguard writes it).
type member struct {
	key, val []byte
	special  bool
}

// members appends the members of the object v (none for null).
func members(dst []member, v []byte) ([]member, bool) {
	m, ok := jsonscan.Object(v)
	if !ok {
		return dst, jsonscan.IsNull(v)
	}
	for key, val, ok := m.Next(); ok; key, val, ok = m.Next() {
		k, ok := jsonscan.Unquote(key)
		if !ok {
			return dst, false
		}
		dst = append(dst, member{key: k, val: val})
	}
	return dst, !m.Malformed()
}

// sortMembers puts ms in the order json.Marshal writes a map and keeps the
// last of each repeated key, which is the one a map decode keeps.
func sortMembers(ms []member) []member {
	slices.SortStableFunc(ms, func(a, b member) int { return bytes.Compare(a.key, b.key) })
	out := ms[:0]
	for i, m := range ms {
		if i+1 < len(ms) && bytes.Equal(m.key, ms[i+1].key) {
			continue
		}
		out = append(out, m)
	}
	return out
}

// writeEntry writes one interface entry as json.Marshal writes the map it
// decodes to, with "mac" set to mac when setMAC.
func writeEntry(buf *bytes.Buffer, v []byte, setMAC bool, mac string) error {
	if jsonscan.IsNull(v) {
		buf.WriteString("null")
		return nil
	}
	var arr [16]member
	ms, ok := members(arr[:0], v)
	if !ok {
		return errors.New("an entry cannot be read")
	}
	if setMAC {
		ms = append(ms, member{key: keyMAC, special: true})
	}
	ms = sortMembers(ms)
	buf.WriteByte('{')
	for i, m := range ms {
		if i > 0 {
			buf.WriteByte(',')
		}
		jsonscan.WriteString(buf, m.key)
		buf.WriteByte(':')
		if m.special {
			jsonscan.WriteString(buf, mac)
			continue
		}
		if err := json.Compact(buf, m.val); err != nil {
			return err
		}
	}
	buf.WriteByte('}')
	return nil
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
