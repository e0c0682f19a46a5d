"""The version is defined once and is the same everywhere.

include/voxtile.h's VT_VERSION_MAJOR/_MINOR/_PATCH define it. This checks that
these agree with it, in the build tree:
  * `voxtile --version` (the CLI; the library's vt_version_string);
  * voxtile.__version__ (the Python package with this build's library);
  * `pkg-config --modversion voxtile` (the .pc file `meson install` installs);
  * the meson project version (meson introspect), which meson-python writes
    into the wheel's metadata (tests/test_wheel.py checks a built wheel's).

Arguments: the header, the built voxtile, the built libvoxtile, the build
folder. Environment: PYTHONPATH naming the checkout's python/.
"""
import json
import os
import re
import shutil
import subprocess
import sys


def header_version(path):
    text = open(path).read()
    parts = []
    for field in ("MAJOR", "MINOR", "PATCH"):
        m = re.findall(r"^#define VT_VERSION_%s\s+(\d+)\s*$" % field, text, re.M)
        assert len(m) == 1, f"{path}: {len(m)} definitions of VT_VERSION_{field}"
        parts.append(m[0])
    return ".".join(parts)


def main():
    header, exe, lib, builddir = sys.argv[1:5]
    want = header_version(header)
    got = {}

    out = subprocess.run([exe, "--version"], check=True, capture_output=True, text=True).stdout
    m = re.match(r"^voxtile (\S+) \(format \d+\)$", out.strip())
    assert m, f"voxtile --version printed {out!r}"
    got["voxtile --version"] = m.group(1)

    env = dict(os.environ, VOXTILE_LIB=lib)
    got["voxtile.__version__"] = subprocess.run(
        [sys.executable, "-c", "import voxtile; print(voxtile.__version__)"],
        check=True, capture_output=True, text=True, env=env).stdout.strip()

    pkg_config = shutil.which("pkg-config")
    assert pkg_config, "pkg-config not found (apt-get install pkg-config)"
    env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(builddir, "meson-private"))
    got["pkg-config --modversion voxtile"] = subprocess.run(
        [pkg_config, "--modversion", "voxtile"], check=True, capture_output=True, text=True, env=env).stdout.strip()

    info = os.path.join(builddir, "meson-info", "intro-projectinfo.json")
    got["meson project version (the wheel's)"] = json.load(open(info))["version"]

    bad = {k: v for k, v in got.items() if v != want}
    for k, v in got.items():
        print(f"{k}: {v}")
    if bad:
        print(f"FAIL: {header} says {want}; these differ: {bad}", file=sys.stderr)
        sys.exit(1)
    print(f"all agree with {os.path.basename(header)}: {want}")


if __name__ == "__main__":
    main()
