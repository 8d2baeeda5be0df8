package install

// The checks a runtime makes when it loads a network configuration, written
// out here instead of calling libcni: the installer is the plugin binary,
// and libcni would link pkg/invoke and os/exec into every CNI invocation of
// a plugin that must never start a program. The rules are those of libcni
// v1.3.0 (NetworkConfFromBytes and NetworkPluginConfFromBytes in
// libcni/conf.go); the tests in cniconf_test.go run libcni over the same
// inputs and fail on any disagreement, so an upgrade that changes the rules
// is noticed.

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
)

// validateList accepts exactly the configuration lists libcni's
// ConfListFromBytes accepts.
func validateList(data []byte) error {
	// Decoded into a map as libcni does, so that the JSON errors are the
	// same ones: syntax, data after the value, a number no float64 holds
	// anywhere in the file. Of duplicate keys the last one counts (the
	// installer refuses those separately, in parseObject).
	var top map[string]any
	if err := json.Unmarshal(data, &top); err != nil {
		return jsonError(err)
	}
	raw, ok := top["name"]
	if !ok {
		return errors.New(`"name" is missing`)
	}
	if _, ok := raw.(string); !ok {
		return fmt.Errorf(`"name" is %s; it must be a string`, kind(raw))
	}
	cniVersion := ""
	if raw, ok := top["cniVersion"]; ok {
		s, ok := raw.(string)
		if !ok {
			return fmt.Errorf(`"cniVersion" is %s; it must be a string`, kind(raw))
		}
		cniVersion = s
	}
	if raw, ok := top["cniVersions"]; ok {
		vs, ok := raw.([]any)
		if !ok {
			return fmt.Errorf(`"cniVersions" is %s; it must be an array of version strings`, kind(raw))
		}
		for i, v := range vs {
			s, ok := v.(string)
			if !ok {
				return fmt.Errorf(`"cniVersions"[%d] is %s; it must be a version string`, i, kind(v))
			}
			if _, _, _, err := version.ParseVersion(s); err != nil {
				return fmt.Errorf(`"cniVersions"[%d]: %w`, i, err)
			}
		}
		// libcni picks the highest of cniVersions and cniVersion, so it
		// parses cniVersion only when cniVersions is present; alone, any
		// string passes here and the plugins judge it.
		if cniVersion != "" {
			if _, _, _, err := version.ParseVersion(cniVersion); err != nil {
				return fmt.Errorf(`"cniVersion" (with "cniVersions"): %w`, err)
			}
		}
	}
	var inlinedOnly bool
	for _, key := range []string{"disableCheck", "disableGC", "loadOnlyInlinedPlugins"} {
		b, err := readBool(top, key)
		if err != nil {
			return err
		}
		inlinedOnly = inlinedOnly || (key == "loadOnlyInlinedPlugins" && b)
	}
	raw, ok = top["plugins"]
	if !ok {
		if inlinedOnly {
			return errors.New(`"loadOnlyInlinedPlugins" is true but there is no "plugins" list`)
		}
		// Valid for libcni, which then loads the plugins from files in
		// a directory named after the network; parseList refuses it.
		return nil
	}
	plugins, ok := raw.([]any)
	if !ok {
		return fmt.Errorf(`"plugins" is %s; it must be an array`, kind(raw))
	}
	if len(plugins) == 0 {
		return errors.New(`"plugins" is empty; a list needs at least one plugin`)
	}
	for i, p := range plugins {
		// libcni checks a re-encoded copy of each entry, whose keys
		// json.Marshal sorted; the order matters where two keys match
		// the same field ("type" and "Type", see validatePlugin).
		b, err := json.Marshal(p)
		if err != nil {
			return fmt.Errorf(`"plugins"[%d]: %w`, i, err)
		}
		if err := validatePlugin(b); err != nil {
			return fmt.Errorf(`"plugins"[%d]: %w`, i, err)
		}
	}
	return nil
}

// validatePlugin accepts exactly the single-plugin configurations libcni's
// ConfFromBytes accepts: JSON that decodes into the spec's PluginConf, with a
// "type". The decode is the check: it refuses a "name", "cniVersion",
// "ipam", "dns", "capabilities", "prevResult" or
// "cni.dev/valid-attachments" of the wrong type, and, as any encoding/json
// struct decode, matches those keys case-insensitively.
func validatePlugin(data []byte) error {
	if err := mustBeObject(data); err != nil {
		return err
	}
	var p types.PluginConf
	if err := json.Unmarshal(data, &p); err != nil {
		return jsonError(err)
	}
	if p.Type == "" {
		return errors.New(`"type" is missing or empty`)
	}
	return nil
}

// mustBeObject refuses valid JSON that is neither an object nor null (libcni
// decodes null into an empty configuration, which then has no "type"), with
// a clearer message than the struct decode's. Invalid JSON is left to the
// decode, which reports where it breaks.
func mustBeObject(data []byte) error {
	var v any
	if json.Unmarshal(data, &v) != nil {
		return nil
	}
	switch v.(type) {
	case map[string]any, nil:
		return nil
	}
	return fmt.Errorf("it is %s, not a JSON object", kind(v))
}

// readBool reads one of the list's flags the way libcni does: absent is
// false, and a string "true" or "false" in any case counts as the boolean.
func readBool(top map[string]any, key string) (bool, error) {
	raw, ok := top[key]
	if !ok {
		return false, nil
	}
	switch v := raw.(type) {
	case bool:
		return v, nil
	case string:
		// strings.ToLower, not EqualFold: "falſe" folds to "false" but
		// libcni refuses it.
		switch strings.ToLower(v) {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
		return false, fmt.Errorf(`%q is %q; it must be true or false`, key, v)
	}
	return false, fmt.Errorf(`%q is %s; it must be true or false`, key, kind(raw))
}

// jsonError says in words what a decode error means; the decoder's own
// message (with the offset or the field) is kept.
func jsonError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Errorf("not valid JSON: %w", err)
	case !errors.As(err, &typ):
		return err
	case strings.HasPrefix(typ.Value, "number "):
		// A number outside float64's range, such as 1e400: valid JSON,
		// but the runtime's decoder refuses it wherever it stands.
		return fmt.Errorf("a number too large for the runtime: %w", err)
	case typ.Field != "":
		return fmt.Errorf("%q has the wrong type: %w", typ.Field, err)
	}
	return fmt.Errorf("not a JSON object: %w", err)
}

// kind names the JSON type of a decoded value, for messages.
func kind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case float64:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}
