// Package jsonscan walks JSON text without decoding it, so that a caller can
// find the few values it needs, and copy the rest, without the allocations
// of encoding/json's reflection and maps.
//
// It reads only as much syntax as it needs to find where values end. It never
// panics or loops on malformed text, but it does not validate it either:
// callers use it on text encoding/json has already accepted, or check its
// answers against encoding/json when the text may be malformed. Where a key
// or string has to be read, it is read exactly as encoding/json reads it, so
// a caller can reproduce encoding/json's decisions (which member a map or a
// struct field gets) byte for byte.
package jsonscan

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// SkipSpace returns the index of the first byte at or after i that is not
// JSON whitespace.
func SkipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// ValueEnd returns the index just past the JSON value that starts at b[i]
// (no leading space), or -1 when b is malformed there.
func ValueEnd(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				if i = stringEnd(b, i); i < 0 {
					return -1
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return -1
	case '}', ']', ',', ':':
		return -1
	}
	// A number or a literal: it runs to the next delimiter.
	j := i
	for j < len(b) && !isDelim(b[j]) {
		j++
	}
	if j == i {
		return -1
	}
	return j
}

func isDelim(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', ',', ':', '[', ']', '{', '}', '"':
		return true
	}
	return false
}

// stringEnd returns the index just past the string literal at b[i].
func stringEnd(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

// Kind is the first byte of a value ('{', '[', '"', 'n' for null, ...), or
// 0 when v holds no value.
func Kind(v []byte) byte {
	if i := SkipSpace(v, 0); i < len(v) {
		return v[i]
	}
	return 0
}

// IsNull reports whether v is the JSON literal null (space around it aside).
func IsNull(v []byte) bool {
	return bytes.Equal(bytes.TrimSpace(v), []byte("null"))
}

// Members iterates over the members of one JSON object.
type Members struct {
	b     []byte
	i     int
	first bool
	bad   bool
}

// Object starts iterating over the object v holds; ok is false when v does
// not hold an object.
func Object(v []byte) (m Members, ok bool) {
	i := SkipSpace(v, 0)
	if i >= len(v) || v[i] != '{' {
		return Members{}, false
	}
	return Members{b: v, i: i + 1, first: true}, true
}

// Next returns the next member: its key as the literal it is written as
// (quotes included; see Unquote, Is and Folds) and its value. ok is false
// at the end of the object or when the text is malformed (see Malformed).
func (m *Members) Next() (key, val []byte, ok bool) {
	if m.bad || m.b == nil {
		return nil, nil, false
	}
	b := m.b
	i := SkipSpace(b, m.i)
	if i < len(b) && b[i] == '}' {
		m.b = nil
		return nil, nil, false
	}
	if !m.first {
		if i >= len(b) || b[i] != ',' {
			return m.fail()
		}
		i = SkipSpace(b, i+1)
	}
	m.first = false
	if i >= len(b) || b[i] != '"' {
		return m.fail()
	}
	k := stringEnd(b, i)
	if k < 0 {
		return m.fail()
	}
	key = b[i:k]
	i = SkipSpace(b, k)
	if i >= len(b) || b[i] != ':' {
		return m.fail()
	}
	i = SkipSpace(b, i+1)
	e := ValueEnd(b, i)
	if e < 0 {
		return m.fail()
	}
	m.i = e
	return key, b[i:e], true
}

func (m *Members) fail() ([]byte, []byte, bool) {
	m.bad = true
	return nil, nil, false
}

// Malformed reports whether iteration stopped on text that is not JSON.
func (m *Members) Malformed() bool { return m.bad }

// Elements iterates over the elements of one JSON array.
type Elements struct {
	b     []byte
	i     int
	first bool
	bad   bool
}

// Array starts iterating over the array v holds; ok is false when v does not
// hold an array.
func Array(v []byte) (e Elements, ok bool) {
	i := SkipSpace(v, 0)
	if i >= len(v) || v[i] != '[' {
		return Elements{}, false
	}
	return Elements{b: v, i: i + 1, first: true}, true
}

// Next returns the next element; ok is false at the end of the array or when
// the text is malformed (see Malformed).
func (e *Elements) Next() (val []byte, ok bool) {
	if e.bad || e.b == nil {
		return nil, false
	}
	b := e.b
	i := SkipSpace(b, e.i)
	if i < len(b) && b[i] == ']' {
		e.b = nil
		return nil, false
	}
	if !e.first {
		if i >= len(b) || b[i] != ',' {
			e.bad = true
			return nil, false
		}
		i = SkipSpace(b, i+1)
	}
	e.first = false
	end := ValueEnd(b, i)
	if end < 0 {
		e.bad = true
		return nil, false
	}
	e.i = end
	return b[i:end], true
}

// Malformed reports whether iteration stopped on text that is not JSON.
func (e *Elements) Malformed() bool { return e.bad }

// Unquote returns the text of the string literal lit as encoding/json decodes
// it. The common literal, without escapes and in valid UTF-8, is returned as
// a slice of lit itself; any other is handed to encoding/json, which also
// replaces invalid UTF-8 the way it always does. ok is false when lit is not
// a string literal.
func Unquote(lit []byte) (s []byte, ok bool) {
	if len(lit) < 2 || lit[0] != '"' || lit[len(lit)-1] != '"' {
		return nil, false
	}
	if in := lit[1 : len(lit)-1]; plainText(in) {
		return in, true
	}
	var str string
	if err := json.Unmarshal(lit, &str); err != nil {
		return nil, false
	}
	return []byte(str), true
}

// plainText reports whether encoding/json would read the body of a string
// literal as it stands: no escapes, no control characters, valid UTF-8.
func plainText(in []byte) bool {
	for _, c := range in {
		if c == '\\' || c == '"' || c < ' ' {
			return false
		}
	}
	return utf8.Valid(in)
}

// Is reports whether the key literal names key exactly, as keys of a decoded
// map are matched.
func Is(lit []byte, key string) bool {
	s, ok := Unquote(lit)
	return ok && string(s) == key
}

// Folds reports whether the key literal selects the struct field whose JSON
// name is name: encoding/json matches field names case-insensitively, with
// Unicode simple folding (so "ſandbox" selects "sandbox"), exactly as
// bytes.EqualFold compares. Only a struct where no other field's name folds
// to the same text can rely on this alone, which is every struct here.
func Folds(lit []byte, name string) bool {
	s, ok := Unquote(lit)
	return ok && bytes.EqualFold(s, []byte(name))
}

// WriteString writes s as encoding/json encodes a string (json.Marshal, so
// with <, > and & escaped). Text that needs no escaping is written as it
// stands; any other is handed to encoding/json.
func WriteString[T ~string | ~[]byte](buf *bytes.Buffer, s T) {
	if plainOutput(s) {
		buf.WriteByte('"')
		buf.WriteString(string(s))
		buf.WriteByte('"')
		return
	}
	enc, _ := json.Marshal(string(s)) // a string always encodes
	buf.Write(enc)
}

// plainOutput reports whether json.Marshal writes s between quotes as it
// stands: printable ASCII other than the quote, the backslash and the three
// characters it escapes for HTML.
func plainOutput[T ~string | ~[]byte](s T) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < ' ' || c >= utf8.RuneSelf, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}

// HTMLEscape returns b with <, >, & and U+2028/U+2029 escaped the way
// json.Marshal escapes them inside strings; b itself when it has none.
// Outside strings JSON has none of these characters, so the whole text can
// be escaped at once.
func HTMLEscape(b []byte) []byte {
	need := false
	for i, c := range b {
		if c == '<' || c == '>' || c == '&' || (c == 0xE2 && i+2 < len(b) && b[i+1] == 0x80 && b[i+2]&^1 == 0xA8) {
			need = true
			break
		}
	}
	if !need {
		return b
	}
	var out bytes.Buffer
	json.HTMLEscape(&out, b)
	return out.Bytes()
}
