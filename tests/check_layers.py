"""The library's layers call one way (docs/architecture.md, src/meson.build).

Arguments: for each layer, "NAME=BELOW1,BELOW2" (the layers it may call) and
its static library. Every internal symbol (vt_..., vt__...) a layer's objects
leave undefined must be defined in that layer or in one it may call; a layer
that does not list "importers" or "conversion" below it must not call zlib
either (only importers and conversion may: a program that only reads stores
needs neither zlib nor the importers). Prints each call that breaks the rule, naming the object file,
the symbol and where it is defined; exits 1 if there is one.

The per-layer link checks (libvt_layer_check_*.so, -Wl,--no-undefined) make
such a call a link error already; this test says which call it is.
"""
import os
import re
import shutil
import subprocess
import sys

ZLIB = re.compile(r"^(gz|inflate|deflate|compress|uncompress|crc32|adler32|zlib)")
ZLIB_LAYERS = ("importers", "conversion")  # the layers that read or write gzip


def symbols(archive):
    """{member: (defined symbols, undefined symbols)} of a static library."""
    nm = os.environ.get("NM") or shutil.which("nm")
    if nm is None:
        print("nm not found: cannot check the layers", file=sys.stderr)
        sys.exit(77)  # skipped
    out = subprocess.run([nm, "-A", "-P", archive], check=True, capture_output=True, text=True).stdout
    members = {}
    for line in out.splitlines():
        m = re.match(r"^.*?\[(.*?)\]: (\S+) (\S)", line)
        if not m:
            continue
        member, sym, kind = os.path.basename(m.group(1)), m.group(2), m.group(3)
        d, u = members.setdefault(member, (set(), set()))
        (u if kind == "U" else d).add(sym)
    return members


def main(argv):
    if not argv or len(argv) % 2:
        print("usage: check_layers.py NAME=BELOW,... LIBRARY ...", file=sys.stderr)
        return 2
    layers = []  # (name, below, members), bottom first
    it = iter(argv)
    for spec in it:
        name, _, below = spec.partition("=")
        layers.append((name, [b for b in below.split(",") if b], symbols(next(it))))
    home = {}  # internal symbol -> layer defining it
    for name, _, members in layers:
        for d, _ in members.values():
            for s in d:
                if s.startswith("vt_"):
                    home[s] = name
    bad = []
    for name, below, members in layers:
        for member, (_, undef) in sorted(members.items()):
            for s in sorted(undef):
                if s.startswith("vt_"):
                    where = home.get(s)
                    if where is None:
                        bad.append(f"{name}: {member} calls {s}, which no layer defines")
                    elif where != name and where not in below:
                        bad.append(f"{name}: {member} calls {s} of layer {where}, not below it "
                                   f"(it may call {', '.join(below) or 'no other layer'})")
                elif ZLIB.match(s) and name not in ZLIB_LAYERS:
                    bad.append(f"{name}: {member} calls zlib's {s}: only importers and conversion may")
    for b in bad:
        print(b)
    checked = sum(len(m) for _, _, m in layers)
    print(f"{len(layers)} layers, {checked} objects, {len(home)} internal symbols: "
          f"{'%d call%s break%s the layering' % (len(bad), 's' * (len(bad) > 1), 's' * (len(bad) == 1)) if bad else 'every call goes down'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
