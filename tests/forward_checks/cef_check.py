"""Parses CEF lines with PyPI `pycef` and checks that each carries the expected values.

Usage: cef_check.py EVENTS.cef EXPECTED.json   (exit 0 and "N lines parsed", or 1 with errors)

EXPECTED.json is a list with one object per line: pycef's key (header fields as pycef names
them, extension keys, or a custom field's label) -> the exact original value. pycef splits
the line but does not unescape, so the CEF escapes are undone here: `\\|` in the header,
`\\\\`, `\\=`, `\\n`, `\\r` in extension values.
"""

import json
import sys

import pycef

HEADER = {"CEFVersion", "DeviceVendor", "DeviceProduct", "DeviceVersion",
          "DeviceEventClassID", "Name", "DeviceName", "Severity", "DeviceSeverity"}


def unescape(value, header):
    out, i = [], 0
    while i < len(value):
        c = value[i]
        if c == "\\" and i + 1 < len(value):
            n = value[i + 1]
            if header:
                out.append(n)
            else:
                out.append({"n": "\n", "r": "\r"}.get(n, n))
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def main(events_path, expected_path):
    with open(events_path, encoding="utf-8", newline="") as fh:
        lines = [line for line in fh.read().split("\n") if line]
    with open(expected_path, encoding="utf-8") as fh:
        expected = json.load(fh)
    if len(lines) != len(expected):
        sys.exit(f"{len(lines)} lines but {len(expected)} expectations")
    errors = 0
    for n, (line, want) in enumerate(zip(lines, expected), 1):
        parsed = pycef.parse(line)
        if not parsed:
            print(f"line {n}: pycef could not parse {line!r}")
            errors += 1
            continue
        got = {k: unescape(v, k in HEADER) for k, v in parsed.items()}
        for key, value in want.items():
            if got.get(key) != value:
                print(f"line {n}: {key}: expected {value!r}, pycef read {got.get(key)!r}")
                errors += 1
    if errors:
        sys.exit(1)
    print(f"{len(lines)} lines parsed")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
