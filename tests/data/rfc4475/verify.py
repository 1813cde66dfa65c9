"""Check the RFC 4475 corpus in this directory; optionally diff it against the RFC itself.

    python tests/data/rfc4475/verify.py                  # manifest and framing invariants
    python tests/data/rfc4475/verify.py --rfc rfc4475.txt  # also compare with Appendix A

The second form decodes the base64 gzip tar archive that RFC 4475 Appendix A carries between
"-- BEGIN MESSAGE ARCHIVE --" markers (the RFC's own Perl recipe keeps the lines that are a
single whitespace-free token) and compares every archived message with the file here.
Exit status 0 means everything matched.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import re
import sys
import tarfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXPECTED = re.compile(r"^(parse|parse-error|parse, then respond [1-6]\d\d)$")
CONTENT_LENGTH = re.compile(rb"(?im)^(?:content-length|l)[ \t]*:[ \t]*(\S*)")
# Messages whose declared Content-Length is deliberately not the length of what follows.
FRAMING_TORTURE = {"dblreq", "clerr", "ncl", "mcl01", "inv2543"}
# The archive also holds test.dat, which no section of the RFC describes; it is not kept here.
UNREFERENCED = {"test.dat"}


def check_corpus() -> list[str]:
    problems: list[str] = []
    manifest = json.loads((HERE / "manifest.json").read_text(encoding="utf-8"))
    listed = {entry["file"] for entry in manifest}
    present = {path.name for path in HERE.glob("*.dat")}
    problems += [f"listed but missing: {name}" for name in sorted(listed - present)]
    problems += [f"present but not listed: {name}" for name in sorted(present - listed)]
    sections = [entry["section"] for entry in manifest]
    if len(set(sections)) != len(sections):
        problems.append("duplicate sections in manifest")
    for entry in manifest:
        name = entry["file"]
        if name != f"{entry['section']}-{entry['name']}.dat":
            problems.append(f"{name}: file name does not match section and name")
        if entry["syntax"] not in ("valid", "invalid"):
            problems.append(f"{name}: syntax must be valid or invalid")
        if not EXPECTED.match(entry["expected"]):
            problems.append(f"{name}: bad expected {entry['expected']!r}")
        if (entry["expected"] == "parse-error") != ("status" in entry):
            problems.append(f"{name}: status belongs to parse-error entries only")
        if name in present:
            problems += check_message(entry["name"], (HERE / name).read_bytes())
    return problems


def check_message(name: str, data: bytes) -> list[str]:
    problems = []
    end = data.find(b"\r\n\r\n")
    head = data if end < 0 else data[: end + 4]
    body = b"" if end < 0 else data[end + 4 :]
    # Bodies may hold arbitrary octets (mpart01); the header section must use CRLF only.
    if re.search(rb"\r(?!\n)|(?<!\r)\n", head):
        problems.append(f"{name}: header section has a bare CR or LF")
    if name in FRAMING_TORTURE:
        return problems
    lengths = CONTENT_LENGTH.findall(head)
    if len(lengths) != 1 or int(lengths[0]) != len(body):
        problems.append(f"{name}: Content-Length {lengths} but body has {len(body)} octets")
    return problems


def compare_with_rfc(rfc_text: Path) -> list[str]:
    archive_lines, inside = [], False
    for line in rfc_text.read_text(encoding="latin-1").splitlines():
        if "-- BEGIN MESSAGE ARCHIVE --" in line:
            inside, archive_lines = True, []
        elif "-- END MESSAGE ARCHIVE --" in line:
            inside = False
        elif inside and re.fullmatch(r"\s*\S+\s*", line):
            archive_lines.append(line.strip())
    raw = base64.b64decode("".join(archive_lines))
    ours = {path.name.split("-", 1)[1]: path.read_bytes() for path in HERE.glob("*.dat")}
    problems = []
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:gz") as archive:
        for member in archive.getmembers():
            if not member.isfile():
                continue
            short = Path(member.name).name
            theirs = archive.extractfile(member).read()  # type: ignore[union-attr]
            if short in UNREFERENCED:
                continue
            if short not in ours:
                problems.append(f"in the archive only: {short}")
            elif ours[short] != theirs:
                problems.append(f"differs from the archive: {short}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rfc", type=Path, help="path to the text of RFC 4475")
    args = parser.parse_args()
    problems = check_corpus()
    if args.rfc:
        problems += compare_with_rfc(args.rfc)
    for problem in problems:
        print(problem)
    print("ok" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
