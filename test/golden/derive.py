#!/usr/bin/env python3
"""An independent implementation of macguard's MAC derivation, written from
the README's description ("The stable MAC (a contract)": Hash, and
"VM interfaces in the spec": Hash), not from the Go code,
that recomputes every golden vector of pkg/macaddr/derive_test.go.

The derivation: SHA-256 over the tag and the fields kind, key, interface
name and salt, in that order, each preceded by its length in bytes as a
big-endian unsigned 32-bit integer; the first six bytes of the digest; the
locally administered bit (0x02 of the first octet) set and the multicast bit
(0x01) cleared; then the prefix octets laid over the start.

The tags: the plugin's pod-interface MACs (macaddr.Derive) use
"macguard/mac/v1", the admission webhook's VM-spec MACs
(macaddr.DeriveVMInterface) "macguard/kubevirt-interface/v1".

Usage: derive.py pkg/macaddr/derive_test.go
Exit 0 when every vector agrees, 1 when one does not (each is named), 2 when
the file cannot be read as the golden tables it expects (a line it does not
understand is an error, never skipped).
"""

import hashlib
import re
import struct
import sys

# Which derivation each golden table of derive_test.go pins. A golden table
# not named here is an error: a new derivation needs its tag here too.
TABLES = {
    "TestDeriveGolden": "macguard/mac/v1",
    "TestDeriveVMInterfaceGolden": "macguard/kubevirt-interface/v1",
}

FIELDS = ("Kind", "Key", "IfName", "Salt")


def derive(tag, kind="", key="", ifname="", salt="", prefix=b""):
    """The MAC for one input, as six bytes."""
    encoded = b"".join(
        struct.pack(">I", len(raw)) + raw
        for raw in (s.encode("utf-8") for s in (tag, kind, key, ifname, salt))
    )
    mac = bytearray(hashlib.sha256(encoded).digest()[:6])
    mac[0] = (mac[0] | 0x02) & ~0x01 & 0xFF
    mac[: len(prefix)] = prefix
    return bytes(mac)


def mac_string(mac):
    return ":".join("%02x" % b for b in mac)


class TableError(Exception):
    pass


VECTOR = re.compile(r'^\{Input\{(?P<fields>.*)\}, "(?P<mac>[^"]*)"\},$')
FIELD = re.compile(r'(?P<name>\w+): (?:"(?P<str>[^"\\]*)"|Prefix\{(?P<prefix>[^}]*)\})')


def parse_input(text, where):
    """The keyword arguments of derive() for a Go Input{...} literal body."""
    args, pos = {}, 0
    while pos < len(text):
        m = FIELD.match(text, pos)
        if not m:
            raise TableError("%s: cannot read the input field at %r" % (where, text[pos:]))
        name = m.group("name")
        if name in args or (name not in FIELDS and name != "Prefix"):
            raise TableError("%s: unexpected field %s" % (where, name))
        if name == "Prefix":
            octets = [o.strip() for o in m.group("prefix").split(",")]
            if not all(re.fullmatch(r"0x[0-9a-fA-F]{2}", o) for o in octets):
                raise TableError("%s: prefix %r is not a list of 0xNN octets" % (where, m.group("prefix")))
            args["prefix"] = bytes(int(o, 16) for o in octets)
        else:
            args[name.lower()] = m.group("str")
        pos = m.end()
        if text.startswith(", ", pos):
            pos += 2
    return args


def tables(source):
    """Yields (table, line number, input, MAC) for every golden vector."""
    lines = source.split("\n")
    found = set()
    for i, line in enumerate(lines):
        m = re.match(r"^func (Test\w*Golden)\(", line)
        if not m:
            continue
        name = m.group(1)
        if name not in TABLES:
            raise TableError("line %d: golden table %s has no tag in derive.py" % (i + 1, name))
        found.add(name)
        # The literal runs from the line closing the struct type ("\t}{")
        # to the first line that is only "\t}".
        j = i + 1
        while j < len(lines) and lines[j] != "\t}{":
            j += 1
        if j == len(lines):
            raise TableError("%s: no golden table literal after line %d" % (name, i + 1))
        count = 0
        for k in range(j + 1, len(lines)):
            text = lines[k].strip()
            if lines[k] == "\t}":
                break
            if text == "" or text.startswith("//"):
                continue
            v = VECTOR.match(text)
            if not v:
                raise TableError("line %d: not a golden vector: %s" % (k + 1, text))
            yield name, k + 1, parse_input(v.group("fields"), "line %d" % (k + 1)), v.group("mac")
            count += 1
        else:
            raise TableError("%s: the table literal does not end" % name)
        if count == 0:
            raise TableError("%s: the table has no vectors" % name)
    missing = sorted(set(TABLES) - found)
    if missing:
        raise TableError("no golden table %s in the file" % ", ".join(missing))


def main(argv):
    if len(argv) != 2:
        print("usage: derive.py pkg/macaddr/derive_test.go", file=sys.stderr)
        return 2
    path = argv[1]
    with open(path, encoding="utf-8") as f:
        source = f.read()
    counts, bad = {}, 0
    try:
        for table, line, args, want in tables(source):
            got = mac_string(derive(TABLES[table], **args))
            counts[table] = counts.get(table, 0) + 1
            if got != want:
                bad += 1
                print("%s:%d: %s %s: the table says %s, the derivation gives %s"
                      % (path, line, table, args, want, got))
    except TableError as e:
        print("%s: %s" % (path, e), file=sys.stderr)
        return 2
    summary = ", ".join("%s %d" % kv for kv in sorted(counts.items()))
    if bad:
        print("%d of %d golden vectors disagree with the independent implementation (%s)"
              % (bad, sum(counts.values()), summary))
        return 1
    print("%d golden vectors agree with the independent implementation (%s)"
          % (sum(counts.values()), summary))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
