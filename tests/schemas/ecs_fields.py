#!/usr/bin/env python3
"""Build the compact ECS field list used as test data (tests/schemas/ecs-<version>.json).

Usage:
    python3 tests/schemas/ecs_fields.py ECS_DIR > tests/schemas/ecs-9.4.0.json
    python3 tests/schemas/ecs_fields.py path/to/ecs_flat.yml --version 9.4.0 > out.json

ECS_DIR is a checkout of the ECS repository: generated/ecs/ecs_flat.yml is read,
and the version from the file `version` at its top (or --version). Needs PyYAML.

Output (keys sorted; one field per line):
  {"version": "9.4.0",
   "fields": {"dotted.name": {
       "type": ECS field type ("keyword", "long", "date", "object", "flattened", "nested", ...),
       "level": "core" | "extended" | "custom",
       "array"?: true                  (normalize: [array]),
       "required"?: true,
       "allowed"?: [values]            (allowed_values names),
       "expected"?: [values]           (expected_values),
       "object_type"?: type of the values under an "object" field (e.g. "keyword"),
       "expected_event_types"?: {category: [event.type values]}  (event.category only)}}}
Every field of ecs_flat.yml is written, without descriptions or examples.
Fields typed "object" or "flattened" may carry keys that are not listed (e.g.
labels.*, container.labels.*); "nested" fields hold arrays of objects whose
keys are listed as their own dotted fields. Multi-fields (e.g. "user.name.text")
are index mappings only and are not written.
"""
import argparse
import json
import os
import sys

import yaml


def build(flat, version):
    fields = {}
    for name, f in flat.items():
        rec = {"type": f["type"], "level": f["level"]}
        if "array" in (f.get("normalize") or []):
            rec["array"] = True
        if f.get("required"):
            rec["required"] = True
        if "allowed_values" in f:
            rec["allowed"] = sorted(v["name"] for v in f["allowed_values"])
            types = {v["name"]: sorted(v["expected_event_types"])
                     for v in f["allowed_values"] if "expected_event_types" in v}
            if types:
                rec["expected_event_types"] = types
        if "expected_values" in f:
            rec["expected"] = sorted(f["expected_values"])
        if "object_type" in f:
            rec["object_type"] = f["object_type"]
        fields[name] = rec
    return {"version": version, "fields": fields}


def write(obj, levels, out, indent=0):
    """JSON with sorted keys: dicts open over `levels` levels, deeper values on one line."""
    if levels == 0 or not isinstance(obj, dict) or not obj:
        out.write(json.dumps(obj, sort_keys=True, separators=(",", ":")))
        return
    pad = " " * (indent + 1)
    out.write("{\n")
    for i, k in enumerate(sorted(obj)):
        out.write(pad + json.dumps(k) + ":")
        write(obj[k], levels - 1, out, indent + 1)
        out.write(",\n" if i < len(obj) - 1 else "\n")
    out.write(" " * indent + "}")


def main():
    ap = argparse.ArgumentParser(description="compact ECS field list (test data)")
    ap.add_argument("source", help="ECS checkout directory, or an ecs_flat.yml file")
    ap.add_argument("--version", help="ECS version (default: the checkout's version file)")
    args = ap.parse_args()
    if os.path.isdir(args.source):
        path = os.path.join(args.source, "generated", "ecs", "ecs_flat.yml")
        version = args.version
        if version is None:
            with open(os.path.join(args.source, "version"), encoding="utf-8") as f:
                version = f.read().strip()
    else:
        path, version = args.source, args.version
        if version is None:
            sys.exit("--version is needed when an ecs_flat.yml file is given")
    with open(path, encoding="utf-8") as f:
        flat = yaml.safe_load(f)
    write(build(flat, version), 2, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
