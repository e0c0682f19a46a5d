"""Every VT_API function of the public header has a doc comment right before it
that names each of its parameters with @param and, unless it returns void,
says what it returns with @return (issue 2: "documents every function: what it
does, each parameter ...").  Usage: check_header_docs.py include/voxtile.h"""
import re
import sys


def problems(src):
    out = []
    for m in re.finditer(r"(/\*\*(?:(?!\*/).)*?\*/)\s*VT_API\s+([^;]*?)\(([^)]*)\)\s*;", src, re.S):
        doc, head, params = m.group(1), m.group(2), m.group(3)
        name = head.split()[-1].lstrip("*")
        names = []
        for p in params.split(","):
            p = p.strip()
            if p in ("", "void"):
                continue
            pm = re.search(r"\(\s*\*\s*(\w+)\s*\)|(\w+)\s*(\[[^\]]*\])?$", p)
            names.append(pm.group(1) or pm.group(2))
        missing = [n for n in names if not re.search(r"@param(\[\w+\])?\s+%s\b" % n, doc)]
        if missing:
            out.append(f"{name}: no @param for {', '.join(missing)}")
        if not head.startswith("void") and "@return" not in doc:
            out.append(f"{name}: no @return")
    decls = re.findall(r"(?m)^VT_API\s+[^;(]*?(\w+)\s*\(", src)
    documented = re.findall(r"\*/\s*VT_API\s+[^;(]*?(\w+)\s*\(", src)
    out += [f"{d}: no doc comment right before it" for d in sorted(set(decls) - set(documented))]
    if not decls:
        out.append("no VT_API declarations found")
    return out


if __name__ == "__main__":
    found = problems(open(sys.argv[1]).read())
    for line in found:
        print(line)
    print(f"{len(found)} problem(s)")
    sys.exit(1 if found else 0)
