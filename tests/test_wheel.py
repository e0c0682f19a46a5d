"""pip install voxtile: the wheel, the sdist, a venv, and nothing left behind.

What README.md promises a Python user (`pip install .` into any virtual
environment, then `import voxtile` and the `voxtile` command from any folder),
checked offline (--no-build-isolation, --no-index) on a copy of this checkout:

1. `pip install .` of the copy into a fresh `python3 -m venv
   --system-site-packages` (numpy, nibabel come from Debian).
2. `python3 -m build` of the copy: an sdist, then a wheel built from that
   sdist; their contents and metadata are checked (the version is
   include/voxtile.h's), then the wheel is installed into the same venv.

After each install, from a folder that is neither the checkout nor the copy,
with PYTHONPATH and VOXTILE_LIB unset: `import voxtile` is the venv's package;
the libvoxtile it loaded (its _path and the process's /proc/self/maps) is the
one inside that package, and no other libvoxtile is mapped; voxtile.convert of
the bundled CT and a padded patch read equal nibabel's voxels; the `voxtile`
found on the venv's PATH is the venv's, needs no libvoxtile (linked with it
statically), every library it needs resolves, and its `--version`, `info
--json` and `verify` work; voxtile.__version__ and `voxtile --version` are the
header's version. After each `pip uninstall`, the venv holds exactly the files
and folders it held before the install (Python's own caches of pip aside) and
nothing named voxtile.

Run: /usr/bin/python3 tests/test_wheel.py (VT_TEST_DATA: the tests/data folder;
VT_WHEEL_KEEP=1 keeps the temporary folder and prints it).
"""
import email.parser
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)
DATA = os.environ.get("VT_TEST_DATA") or os.path.join(HERE, "data")
CT = os.path.join(DATA, "example_ct_sm.nii.gz")

sys.path.insert(0, HERE)
from check_version import header_version  # noqa: E402

VERSION = header_version(os.path.join(SRC, "include", "voxtile.h"))
# every module of the checkout's package (one missing from meson.build's install list fails here)
PY_FILES = sorted(f for f in os.listdir(os.path.join(SRC, "python", "voxtile")) if f.endswith(".py"))


def step(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def clean_env(home):
    """The environment of a user who has not set anything up for voxtile."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MESON", "VOXTILE", "PIP_", "PYTHON", "VIRTUAL_ENV", "NINJA", "LD_"))}
    # meson test puts the build folder on PATH (and LD_LIBRARY_PATH): nothing of the checkout stays
    path = [p for p in env.get("PATH", "").split(os.pathsep)
            if p and not os.path.realpath(p).startswith(os.path.realpath(SRC) + os.sep)]
    env.update(HOME=home, PATH=os.pathsep.join(path), PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_CACHE_DIR="1",
               PYTHONNOUSERSITE="1")
    return env


def run(cmd, env, cwd, **kw):
    r = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} (in {cwd}) exited {r.returncode}:\n"
                             f"{r.stdout[-4000:]}\n{r.stderr[-4000:]}")
    return r.stdout


def copy_checkout(dest, env):
    """The checkout's files as they are now (tracked, and new ones not ignored) in a fresh git
    repository: meson dist, behind the sdist, takes the committed files of a git repository."""
    files = run(["git", "-C", SRC, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                env, SRC).split("\0")
    n = 0
    for f in files:
        src = os.path.join(SRC, f)
        if not f or not os.path.isfile(src):  # deleted in the working tree, or a submodule
            continue
        os.makedirs(os.path.dirname(os.path.join(dest, f)), exist_ok=True)
        shutil.copy2(src, os.path.join(dest, f))
        n += 1
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@invalid", "-c", "init.defaultBranch=main"]
    run(git + ["init", "-q"], env, dest)
    run(git + ["add", "-A"], env, dest)
    run(git + ["commit", "-q", "-m", "copy"], env, dest)
    return n


def snapshot(venv):
    """Every file and folder in the venv, relative to it."""
    out = set()
    for root, dirs, files in os.walk(venv):
        for name in dirs + files:
            out.add(os.path.relpath(os.path.join(root, name), venv))
    return out


def pip_cache(path):
    """Python's bytecode caches of pip itself, written when pip runs."""
    parts = path.split(os.sep)
    return "__pycache__" in parts and any(p == "pip" or p.startswith("pip-") for p in parts)


def site_packages(venv):
    found = [os.path.join(root, d) for root, dirs, _ in os.walk(os.path.join(venv, "lib")) for d in dirs
             if d == "site-packages"]
    assert len(found) == 1, f"site-packages of {venv}: {found}"
    return found[0]


CHECK = r"""
import json, os, sys
import numpy as np, nibabel as nib
import voxtile

ct, out = sys.argv[1:3]
lib = os.path.realpath(voxtile._lib._path)
mapped = set()
with open("/proc/self/maps") as f:
    for line in f:
        p = line.split(None, 5)[-1].strip()
        if "libvoxtile" in os.path.basename(p):
            mapped.add(os.path.realpath(p))
voxtile.convert(ct, out, threads=2)
ref = np.asarray(nib.load(ct).dataobj).transpose(2, 1, 0)[None]   # (x, y, z) -> (1, z, y, x)
with voxtile.open(out) as st:
    img = st["image"]
    assert img.shape == ref.shape, (img.shape, ref.shape)
    assert np.array_equal(img[...], ref)
    start, size = (0, -3, 10, 90), (1, 16, 32, 48)                   # partly outside: zero-padded
    patch = img.read(start, size, dtype="float32")
    want = np.zeros(size, np.float32)
    want[:, 3:, :, :32] = ref[:, 0:13, 10:42, 90:122]
    assert np.array_equal(patch, want)
print(json.dumps({"file": os.path.realpath(voxtile.__file__), "lib": lib, "mapped": sorted(mapped),
                  "version": voxtile.__version__, "shape": list(ref.shape)}))
"""


def check_install(venv, work, env, label):
    """The installed package and executable, used from `work` (not the checkout)."""
    sp = os.path.realpath(site_packages(venv))
    bindir = os.path.join(venv, "bin")
    env = dict(env, PATH=bindir + os.pathsep + env.get("PATH", ""), VIRTUAL_ENV=venv)
    os.makedirs(work)
    store = os.path.join(work, "ct.vxt")

    step(f"{label}: import voxtile, convert the CT, read a patch, against nibabel")
    got = json.loads(run([os.path.join(bindir, "python"), "-c", CHECK, CT, store], env, work).splitlines()[-1])
    pkg = os.path.join(sp, "voxtile")
    own = os.path.join(pkg, "_lib", "libvoxtile.so")
    assert got["file"] == os.path.join(pkg, "__init__.py"), f"{label}: imported {got['file']}, not the venv's"
    assert got["lib"] == own, f"{label}: loaded {got['lib']}, not the wheel's {own}"
    assert got["mapped"] == [own], f"{label}: libvoxtile mapped from {got['mapped']}, not only {own}"
    assert got["version"] == VERSION, f"{label}: voxtile.__version__ {got['version']}, header {VERSION}"

    step(f"{label}: the voxtile command on the venv's PATH")
    exe = shutil.which("voxtile", path=env["PATH"])
    assert exe == os.path.join(bindir, "voxtile"), f"{label}: voxtile on PATH is {exe}"
    ldd = run(["ldd", exe], env, work)
    assert "not found" not in ldd, f"{label}: {exe} needs libraries that are not there:\n{ldd}"
    assert "libvoxtile" not in ldd, f"{label}: {exe} loads a libvoxtile:\n{ldd}"
    out = run(["voxtile", "--version"], env, work).strip()
    assert re.fullmatch(r"voxtile %s \(format \d+\)" % re.escape(VERSION), out), f"{label}: --version {out!r}"
    info = json.loads(run(["voxtile", "info", store, "--json"], env, work))
    arrays = {a["name"]: a["shape"] for a in info["arrays"]}
    assert arrays == {"image": got["shape"]}, f"{label}: info --json arrays {arrays}"
    major, minor, patch = map(int, VERSION.split("."))
    assert info["writer_version"] == major * 10000 + minor * 100 + patch, info["writer_version"]
    run(["voxtile", "verify", store], env, work)
    for name in os.listdir(work):
        os.unlink(os.path.join(work, name))
    os.rmdir(work)


def uninstall(venv, before, env, cwd, label):
    step(f"{label}: pip uninstall")
    run([os.path.join(venv, "bin", "pip"), "uninstall", "-y", "voxtile"], env, cwd)
    after = snapshot(venv)
    ignored = sorted(p for p in after - before if pip_cache(p))
    if ignored:
        print(f"  (pip's own bytecode caches, new since the venv was made: {len(ignored)}, e.g. {ignored[0]})")
    added = sorted(p for p in after - before if not pip_cache(p))
    removed = sorted(before - after)
    named = sorted(p for p in after if "voxtile" in p.lower())
    assert not added and not removed and not named, (
        f"{label}: after uninstall the venv differs: added {added[:20]}, removed {removed[:20]}, "
        f"named voxtile {named[:20]}")


def check_sdist(sdist):
    """The sdist: the meson project, the package metadata, LICENSE, and the files the URLs name."""
    base = f"voxtile-{VERSION}/"
    with tarfile.open(sdist) as t:
        names = set(t.getnames())
        for f in ("PKG-INFO", "pyproject.toml", "meson.build", "meson_options.txt", "LICENSE", "README.md",
                  "include/voxtile.h", "scripts/version.sh", "python/voxtile/__init__.py"):
            assert base + f in names, f"{sdist}: no {f}"
        meta = email.parser.Parser().parsestr(t.extractfile(base + "PKG-INFO").read().decode())
    assert meta["Version"] == VERSION, f"{sdist}: PKG-INFO Version {meta['Version']}, header {VERSION}"
    for url in meta.get_all("Project-URL") or []:
        label, target = [s.strip() for s in url.split(",", 1)]
        assert base + target in names, f"{sdist}: Project-URL {label} names {target}, not in the sdist"


def check_wheel(whl):
    """Its files (library inside the package, the executable in scripts) and its metadata."""
    name = os.path.basename(whl)
    assert re.fullmatch(r"voxtile-%s-py3-none-linux_[a-z0-9_]+\.whl" % re.escape(VERSION), name), name
    data, info = f"voxtile-{VERSION}.data", f"voxtile-{VERSION}.dist-info"
    want = {f"{data}/scripts/voxtile", f"{data}/purelib/voxtile/_lib/libvoxtile.so",
            f"{data}/purelib/voxtile/LICENSE", f"{info}/METADATA", f"{info}/WHEEL", f"{info}/RECORD"}
    want |= {f"{data}/purelib/voxtile/{f}" for f in PY_FILES}
    with zipfile.ZipFile(whl) as z:
        names = set(z.namelist())
        assert names == want, f"{name}: unexpected {sorted(names - want)}, missing {sorted(want - names)}"
        meta = email.parser.Parser().parsestr(z.read(f"{info}/METADATA").decode())
        readme = open(os.path.join(SRC, "README.md")).read()
    assert meta["Name"] == "voxtile" and meta["Version"] == VERSION, (meta["Name"], meta["Version"])
    assert meta["License"] == "Apache-2.0" and meta["Requires-Python"], (meta["License"], meta["Requires-Python"])
    assert meta["Summary"], "no Summary"
    requires = meta.get_all("Requires-Dist")
    assert "numpy" in requires, requires
    assert any(r.startswith("torch") and 'extra == "torch"' in r for r in requires), requires
    assert any(r.startswith("dask") and 'extra == "dask"' in r for r in requires), requires
    assert sorted(meta.get_all("Provides-Extra")) == ["dask", "torch"], meta.get_all("Provides-Extra")
    assert meta["Description-Content-Type"] == "text/markdown"
    assert meta.get_payload().strip() == readme.strip(), "the long description is not README.md"
    for url in meta.get_all("Project-URL"):
        target = url.split(",", 1)[1].strip()
        assert os.path.isfile(os.path.join(SRC, target)), f"Project-URL {url}: no such file in the checkout"


def main():
    python = sys.executable
    tmp = tempfile.mkdtemp(prefix="voxtile-wheel.")
    t0 = time.monotonic()
    try:
        home = os.path.join(tmp, "home")
        os.makedirs(home)
        env = clean_env(home)
        src = os.path.join(tmp, "src")
        elsewhere = os.path.join(tmp, "elsewhere")
        os.makedirs(elsewhere)
        step(f"copy of the checkout: {copy_checkout(src, env)} files in {src}")

        venv = os.path.join(tmp, "venv")
        run([python, "-m", "venv", "--system-site-packages", venv], env, elsewhere)
        before = snapshot(venv)
        pip = os.path.join(venv, "bin", "pip")

        step("pip install . (--no-build-isolation --no-index)")
        run([pip, "install", "--no-build-isolation", "--no-index", "."], env, src)
        check_install(venv, os.path.join(elsewhere, "work"), env, "pip install .")
        uninstall(venv, before, env, elsewhere, "pip install .")

        step("python3 -m build --no-isolation: the sdist, then a wheel built from it")
        dist = os.path.join(tmp, "dist")
        run([python, "-m", "build", "--no-isolation", "--outdir", dist, src], env, elsewhere)
        sdists = [f for f in os.listdir(dist) if f.endswith(".tar.gz")]
        wheels = [f for f in os.listdir(dist) if f.endswith(".whl")]
        assert sdists == [f"voxtile-{VERSION}.tar.gz"] and len(wheels) == 1, os.listdir(dist)
        check_sdist(os.path.join(dist, sdists[0]))
        check_wheel(os.path.join(dist, wheels[0]))
        step(f"the wheel from the sdist: {wheels[0]}")
        run([pip, "install", "--no-index", os.path.join(dist, wheels[0])], env, elsewhere)
        check_install(venv, os.path.join(elsewhere, "work"), env, "sdist wheel")
        uninstall(venv, before, env, elsewhere, "sdist wheel")
        step(f"all good ({time.monotonic() - t0:.0f} s)")
    finally:
        if os.environ.get("VT_WHEEL_KEEP"):
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
