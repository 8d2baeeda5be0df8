package install

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/containernetworking/cni/libcni"

	"github.com/macguard-cni/macguard/pkg/config"
	"github.com/macguard-cni/macguard/pkg/ctl/cniconf"
)

// PluginType is the "type" of macguard's entry in a conflist; it is also the
// name of the binary in the CNI bin directory.
const PluginType = cniconf.PluginType

// DefaultPluginConfig is the entry chained into a conflist when no
// --plugin-config is given: every option at the plugin's default.
const DefaultPluginConfig = `{"type":"macguard"}`

// member is one key of a JSON object with its value exactly as it was
// written, so numbers, escapes and nested objects survive a rewrite
// unchanged (a round trip through map[string]any would turn 1e3 into 1000
// and lose key order).
type member struct {
	key   string
	value json.RawMessage
}

// object is a JSON object whose members keep their order.
type object []member

// parseObject decodes one JSON object and nothing after it. Duplicate keys
// are refused: encoding/json (and so libcni) silently keeps the last one,
// and an installer that edited the other one would change nothing the
// runtime sees.
func parseObject(data []byte) (object, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("not valid JSON: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("not a JSON object")
	}
	var o object
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("not valid JSON: %w", err)
		}
		key, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("not valid JSON: object key %v is not a string", tok)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("not valid JSON: value of %q: %w", key, err)
		}
		if seen[key] {
			return nil, fmt.Errorf("key %q appears twice", key)
		}
		seen[key] = true
		o = append(o, member{key, v})
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, fmt.Errorf("not valid JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("not valid JSON: data after the top-level object")
	}
	return o, nil
}

func (o object) get(key string) (json.RawMessage, bool) {
	for _, m := range o {
		if m.key == key {
			return m.value, true
		}
	}
	return nil, false
}

// with returns a copy of o with key set to value, in place if the key
// exists and appended otherwise.
func (o object) with(key string, value json.RawMessage) object {
	out := make(object, 0, len(o)+1)
	found := false
	for _, m := range o {
		if m.key == key {
			m.value, found = value, true
		}
		out = append(out, m)
	}
	if !found {
		out = append(out, member{key, value})
	}
	return out
}

// compact encodes o on one line; values are copied as they were written.
func (o object) compact() json.RawMessage {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(m.key) // a string always marshals
		b.Write(k)
		b.WriteByte(':')
		// Compact cannot fail on a value the decoder accepted.
		_ = json.Compact(&b, m.value)
	}
	b.WriteByte('}')
	return b.Bytes()
}

// render is how every file this package writes is laid out: two-space
// indentation and a final newline, like the files Cilium and Calico write.
func render(raw json.RawMessage) []byte {
	var b bytes.Buffer
	// Indent cannot fail on JSON this package assembled from parsed parts.
	_ = json.Indent(&b, raw, "", "  ")
	b.WriteByte('\n')
	return b.Bytes()
}

// canonical is a form of a JSON value in which two values with the same
// meaning are byte-equal: object keys sorted, insignificant space dropped,
// numbers kept as written.
func canonical(raw json.RawMessage) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

// sameJSON reports whether a and b mean the same JSON value.
func sameJSON(a, b json.RawMessage) bool {
	ca, errA := canonical(a)
	cb, errB := canonical(b)
	return errA == nil && errB == nil && bytes.Equal(ca, cb)
}

// Entry validates a --plugin-config value and returns the entry that will be
// chained into conflists. A missing "type" is filled in; any other type is
// refused. The options are checked with the plugin's own parser, so the
// installer never writes an entry every ADD would then reject.
func Entry(pluginConfig string) (json.RawMessage, error) {
	if pluginConfig == "" {
		pluginConfig = DefaultPluginConfig
	}
	o, err := parseObject([]byte(pluginConfig))
	if err != nil {
		return nil, fmt.Errorf("--plugin-config: %w", err)
	}
	typ, ok := o.get("type")
	switch {
	case !ok:
		o = append(object{{"type", json.RawMessage(`"macguard"`)}}, o...)
	case !isMacguard(o.compact()):
		return nil, fmt.Errorf(`--plugin-config: "type" is %s; it must be %q (or left out)`, typ, PluginType)
	}
	if _, ok := o.get("prevResult"); ok {
		return nil, errors.New(`--plugin-config: "prevResult" is filled in by the runtime; leave it out`)
	}
	entry := o.compact()
	// The plugin ignores members it does not know (runtimes add their
	// own); here an operator typed the options, so "asign" is a typo to
	// report, not a field to carry into every node's conflist.
	strict := json.NewDecoder(bytes.NewReader(entry))
	strict.DisallowUnknownFields()
	if err := strict.Decode(new(config.NetConf)); err != nil {
		return nil, fmt.Errorf("--plugin-config: %w", err)
	}
	if _, err := cniconf.CheckEntry(entry); err != nil {
		return nil, fmt.Errorf("--plugin-config: %w", err)
	}
	return entry, nil
}

// isMacguard reports whether a plugin entry is macguard's.
func isMacguard(entry json.RawMessage) bool { return cniconf.EntryType(entry) == PluginType }

// listDoc is a parsed conflist: the top-level object and its plugins as
// written, and the chain the runtime reads from them (entry i of chain is
// plugins[i]).
type listDoc struct {
	top     object
	plugins []json.RawMessage
	chain   *cniconf.Chain
}

// readList reads a configuration list exactly as the runtime does
// (cniconf.ReadList: libcni's own parser, the one containerd, CRI-O and
// Multus load configurations with), and refuses what it would refuse.
func readList(data []byte) (*cniconf.Chain, error) {
	ch, err := cniconf.ReadList(data)
	if err != nil {
		return nil, fmt.Errorf("the runtime would refuse it: %w", err)
	}
	return ch, nil
}

// validatePlugin is readList for a single plugin's configuration (a
// .conf), and returns what libcni decoded.
func validatePlugin(data []byte) (*libcni.PluginConfig, error) {
	conf, err := libcni.NetworkPluginConfFromBytes(data)
	if err != nil {
		return nil, fmt.Errorf("the runtime would refuse it: %w", err)
	}
	return conf, nil
}

// parseList reads a conflist as the runtime will (readList) and then
// keeps its parts exactly as written. It refuses anything macguard could
// not chain into without guessing.
func parseList(data []byte) (*listDoc, error) {
	ch, err := readList(data)
	if err != nil {
		return nil, err
	}
	top, err := parseObject(data)
	if err != nil {
		return nil, err
	}
	raw, ok := top.get("plugins")
	if !ok {
		return nil, errors.New(`it has no inline "plugins" list to chain into`)
	}
	var plugins []json.RawMessage
	if err := json.Unmarshal(raw, &plugins); err != nil {
		return nil, fmt.Errorf(`"plugins": %w`, err)
	}
	if len(plugins) != len(ch.Entries) {
		return nil, fmt.Errorf("internal error: %d plugins as written, %d as the runtime reads them", len(plugins), len(ch.Entries))
	}
	return &listDoc{top: top, plugins: plugins, chain: ch}, nil
}

func (d *listDoc) bytes() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, p := range d.plugins {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(p)
	}
	b.WriteByte(']')
	out := render(d.top.with("plugins", b.Bytes()).compact())
	// The same check the input passed: never hand the runtime a file it
	// would refuse.
	if _, err := readList(out); err != nil {
		return nil, fmt.Errorf("internal error: the rewritten conflist does not pass the runtime's checks: %w", err)
	}
	return out, nil
}

// isList reports whether data is a configuration list rather than a single
// plugin's configuration (a .conf): lists have "plugins", single
// configurations have "type".
func isList(data []byte) bool {
	var probe map[string]json.RawMessage
	if json.Unmarshal(data, &probe) != nil {
		return true // let parseList report the error
	}
	_, hasPlugins := probe["plugins"]
	_, hasType := probe["type"]
	return hasPlugins || !hasType
}

// Change says what chainList or unchainList did to a conflist.
type Change string

// The changes a conflist can undergo.
const (
	Unchanged Change = "unchanged"
	Appended  Change = "appended"
	Updated   Change = "updated"
	Removed   Change = "removed"
	Converted Change = "converted"
)

// chainList puts entry into the conflist data: the first existing macguard
// entry is replaced where it stands (an operator may have moved it), later
// duplicates are dropped, and when there is none the entry is appended, so
// it runs after the main plugin and sees its result. Every other member and
// plugin keeps its value. When the file already holds exactly this entry
// the input bytes are returned with Unchanged, so nothing is written.
func chainList(data []byte, entry json.RawMessage) ([]byte, Change, error) {
	d, err := parseList(data)
	if err != nil {
		return nil, "", err
	}
	var kept []json.RawMessage
	found, same := false, false
	for i, p := range d.plugins {
		if d.chain.Entries[i].Type != PluginType {
			kept = append(kept, p)
			continue
		}
		if found {
			continue // a duplicate: dropped, so the file changes
		}
		found = true
		same = sameJSON(p, entry)
		kept = append(kept, entry)
	}
	if found && same && len(kept) == len(d.plugins) {
		return data, Unchanged, nil
	}
	change := Updated
	if !found {
		kept = append(kept, entry)
		change = Appended
	}
	d.plugins = kept
	out, err := d.bytes()
	if err != nil {
		return nil, "", err
	}
	return out, change, nil
}

// unchainList removes every macguard entry from the conflist data. A list
// that holds nothing but macguard is refused: an empty "plugins" list is
// invalid, and deleting someone else's file is not the installer's call.
func unchainList(data []byte) ([]byte, Change, error) {
	d, err := parseList(data)
	if err != nil {
		return nil, "", err
	}
	var kept []json.RawMessage
	for i, p := range d.plugins {
		if d.chain.Entries[i].Type != PluginType {
			kept = append(kept, p)
		}
	}
	if len(kept) == len(d.plugins) {
		return data, Unchanged, nil
	}
	if len(kept) == 0 {
		return nil, "", errors.New("macguard is its only plugin; removing it would leave an empty plugin list (delete the file yourself if it is no longer wanted)")
	}
	d.plugins = kept
	out, err := d.bytes()
	if err != nil {
		return nil, "", err
	}
	return out, Removed, nil
}

// convertConf turns a single-plugin configuration (a .conf file) into a
// conflist whose plugins are that plugin and macguard: what libcni's
// ConfListFromConf makes of a .conf when the runtime loads one (the list
// takes the plugin's "name" and "cniVersion"), except that the plugin is
// kept exactly as written, where ConfListFromConf re-encodes it (numbers
// through float64, keys sorted).
func convertConf(data []byte, entry json.RawMessage) ([]byte, error) {
	conf, err := validatePlugin(data)
	if err != nil {
		return nil, err
	}
	plugin, err := parseObject(data)
	if err != nil {
		return nil, err
	}
	if conf.Network.Name == "" {
		return nil, errors.New(`it has no "name"; a conflist needs one`)
	}
	if conf.Network.Type == PluginType {
		return nil, errors.New("it configures macguard alone; there is no main plugin to chain after")
	}
	var top object
	if v := conf.Network.CNIVersion; v != "" {
		top = append(top, member{"cniVersion", jsonString(v)})
	}
	top = append(top, member{"name", jsonString(conf.Network.Name)})
	d := &listDoc{top: top, plugins: []json.RawMessage{plugin.compact(), entry}}
	return d.bytes()
}

// jsonString encodes s as a JSON string.
func jsonString(s string) json.RawMessage {
	b, _ := json.Marshal(s) // a string always marshals
	return b
}
