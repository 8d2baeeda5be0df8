package jsonscan

import (
	"bytes"
	"encoding/json"
	"testing"
)

var seeds = []string{
	`{"a":1,"b":[1,{"c":"d"}],"a":"x","\u0061":null,"e\\\"":{}}`,
	` { "k" : "v" , "n" : -1.5e3 , "t" : true , "f" : false } `,
	`[null,{"x":"<&>"},"\u2028",[],{}]`,
	`{"ſandbox":"/x","NAME":"eth0","k\xff":"\xfe"}`,
	`{"a":`, `{"a" 1}`, `[1 2]`, `"unterminated`, `{,}`, `[,]`, ``,
}

// FuzzObject: on any JSON object, Members sees what a map decode sees (a
// repeated key keeping its last value), and on any text at all it neither
// panics nor loops.
func FuzzObject(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, isObject := Object(b)
		got := map[string]string{}
		for key, val, ok := m.Next(); ok; key, val, ok = m.Next() {
			k, ok := Unquote(key)
			if !ok {
				if json.Valid(b) {
					t.Fatalf("key %s of valid JSON does not unquote", key)
				}
				return
			}
			got[string(k)] = string(val)
		}
		var want map[string]json.RawMessage
		if err := json.Unmarshal(b, &want); err != nil || want == nil {
			return
		}
		if !isObject || m.Malformed() || len(got) != len(want) {
			t.Fatalf("object %q: scanned %v (malformed %v), decoded %v", b, got, m.Malformed(), want)
		}
		for k, v := range want {
			if got[k] != string(v) {
				t.Fatalf("object %q, key %q: scanned %q, decoded %q", b, k, got[k], v)
			}
		}
	})
}

// FuzzArray: on any JSON array, Elements sees the elements a decode sees.
func FuzzArray(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, isArray := Array(b)
		var got []string
		for v, ok := e.Next(); ok; v, ok = e.Next() {
			got = append(got, string(v))
		}
		var want []json.RawMessage
		if err := json.Unmarshal(b, &want); err != nil || want == nil {
			return
		}
		if !isArray || e.Malformed() || len(got) != len(want) {
			t.Fatalf("array %q: scanned %q (malformed %v), decoded %q", b, got, e.Malformed(), want)
		}
		for i := range want {
			if got[i] != string(want[i]) {
				t.Fatalf("array %q, element %d: scanned %q, decoded %q", b, i, got[i], want[i])
			}
		}
	})
}

// FuzzStrings: Unquote reads a string literal as encoding/json does, Folds
// and Is match keys as it does, and WriteString and HTMLEscape write what
// json.Marshal writes.
func FuzzStrings(f *testing.F) {
	for _, s := range []string{`"eth0"`, `"e\u0074h0"`, `"\xff"`, `"\ud800"`, `"ſandbox"`, `"<&>` + "\u2028" + `"`, `"a\"b\\"`, `"\t"`, `""`, `"x`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, lit []byte) {
		var want string
		if err := json.Unmarshal(lit, &want); err == nil && Kind(lit) == '"' {
			got, ok := Unquote(bytes.TrimSpace(lit))
			if !ok || string(got) != want {
				t.Fatalf("Unquote(%q) = %q %v, encoding/json reads %q", lit, got, ok, want)
			}
			var field struct {
				Sandbox string `json:"sandbox"`
			}
			obj := append(append([]byte(`{`), bytes.TrimSpace(lit)...), `:"x"}`...)
			if err := json.Unmarshal(obj, &field); err == nil {
				if folds := Folds(bytes.TrimSpace(lit), "sandbox"); folds != (field.Sandbox == "x") {
					t.Fatalf("Folds(%q, sandbox) = %v, encoding/json disagrees", lit, folds)
				}
			}
			if Is(bytes.TrimSpace(lit), "sandbox") != (want == "sandbox") {
				t.Fatalf("Is(%q, sandbox) wrong", lit)
			}
		}
		s := string(lit)
		wantEnc, _ := json.Marshal(s)
		var buf bytes.Buffer
		WriteString(&buf, s)
		if !bytes.Equal(buf.Bytes(), wantEnc) {
			t.Fatalf("WriteString(%q) = %s, json.Marshal = %s", s, buf.Bytes(), wantEnc)
		}
		var plain bytes.Buffer
		enc := json.NewEncoder(&plain)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(s)
		unescaped := bytes.TrimSuffix(plain.Bytes(), []byte("\n"))
		if got := HTMLEscape(unescaped); !bytes.Equal(got, wantEnc) {
			t.Fatalf("HTMLEscape(%s) = %s, want %s", unescaped, got, wantEnc)
		}
	})
}

func TestValueEndMalformed(t *testing.T) {
	for _, s := range []string{``, `}`, `,`, `"ab`, `[1,2`, `{"a":"}`, `"\`} {
		if end := ValueEnd([]byte(s), 0); end != -1 {
			t.Errorf("ValueEnd(%q) = %d, want -1", s, end)
		}
	}
}
