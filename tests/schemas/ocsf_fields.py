#!/usr/bin/env python3
"""Build the compact OCSF field list used as test data (tests/schemas/ocsf-<version>.json).

Usage:
    python3 tests/schemas/ocsf_fields.py SCHEMA_DIR > tests/schemas/ocsf-1.8.0.json
    python3 tests/schemas/ocsf_fields.py SCHEMA_DIR --profiles security_control,host \\
        --classes detection_finding > other.json

SCHEMA_DIR is a checkout of the OCSF schema repository (the directory holding
dictionary.json, categories.json, version.json, objects/, events/, profiles/).
Python 3 standard library only. Platform extensions (extensions/) are not read.

Defaults: classes detection_finding, process_activity, file_activity,
network_activity; profiles security_control, host, container, datetime.

Output (keys sorted; one attribute per line):
  {"version": "1.8.0",
   "profiles": [selected profile names],
   "classes": {name: {"class_uid": int, "category_uid": int,
                      "attributes": {attr: ATTR}, "constraints"?: C, "deprecated"?: "x.y.z"}},
   "objects": {name: {"attributes": {attr: ATTR}, "constraints"?: C, "deprecated"?: "x.y.z"}}}
  ATTR = {"type": dictionary type ("string_t", "integer_t", "timestamp_t", "object_t", ...),
          "req": "required" | "recommended" | "optional",
          "array"?: true, "object"?: object name (when type is "object_t"),
          "enum"?: [allowed values: ints for integer types, else strings],
          "profiles"?: [profile names the attribute comes from],
          "deprecated"?: "version it was deprecated in"}
  C = {"at_least_one"?: [attr names], "just_one"?: [attr names]}
Only objects reachable from the selected classes are written. No captions or
descriptions are written: names, types, requirement levels and enum values only.

How the schema files are combined (our reading of the schema layout):
  1. per file: "attributes.$include" lists profile files (their attributes are
     tagged with the profile) or plain snippets; the item's own attribute details
     win; an attribute-level "$include" pulls in a snippet (e.g. an enum);
     "profile": null on an attribute means it is always present;
  2. "extends": the child's attribute details are merged over the parent's,
     other keys (constraints, ...) replace the parent's;
  3. the dictionary.json entry of each attribute is merged under the item's
     details (so enums are the union of both);
  4. datetime profile: each timestamp_t attribute X gets an optional datetime_t
     sibling X_dt;
  5. class_uid = category_uid * 1000 + class uid; type_uid = class_uid * 100 +
     activity_id (plus class_uid * 100 for Unknown);
  6. observable.type_id values are collected from every "observable" number in
     the dictionary, objects and classes (plus 0 and 99).
Attributes that belong only to profiles that are not selected are left out.
"""
import argparse
import copy
import glob
import json
import os
import sys

DEFAULT_CLASSES = "detection_finding,process_activity,file_activity,network_activity"
DEFAULT_PROFILES = "security_control,host,container,datetime"
INTEGER_TYPES = {"integer_t", "long_t", "port_t", "timestamp_t"}


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def merge(dst, src):
    """Merge src into dst recursively (src wins); returns dst."""
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            merge(dst[k], v)
        else:
            dst[k] = copy.deepcopy(v)
    return dst


def with_includes(root, item):
    attrs = item.setdefault("attributes", {})
    includes = attrs.pop("$include", [])
    if isinstance(includes, str):
        includes = [includes]
    out = {}
    for rel in includes:
        inc = load(os.path.join(root, rel))
        for name, a in copy.deepcopy(inc.get("attributes", {})).items():
            if inc.get("meta") == "profile":
                a["profiles"] = [inc["name"]]
            for k, v in inc.get("annotations", {}).items():
                a.setdefault(k, v)
            out[name] = merge(out.get(name, {}), a)
    for name, a in attrs.items():
        a = dict(a)
        if "profile" in a:
            p = a.pop("profile")
            a["profiles"] = None if p is None else [p]
        if "$include" in a:
            a = merge(load(os.path.join(root, a.pop("$include"))), a)
        out[name] = merge(out.get(name, {}), a)
    item["attributes"] = out
    return item


def with_parents(items, name, done):
    item = items[name]
    if name in done:
        return item
    parent = item.get("extends")
    if parent and parent in items:
        base = copy.deepcopy(with_parents(items, parent, done))
        for k, v in item.items():
            if k == "attributes":
                battrs = base.setdefault("attributes", {})
                for n, a in v.items():
                    battrs[n] = merge(battrs.get(n, {}), a)
            elif k == "profiles":
                base["profiles"] = sorted(set(base.get("profiles") or []) | set(v or []))
            else:
                base[k] = v
        items[name] = item = base
    done.add(name)
    return item


def enum_values(type_name, enum):
    if type_name in INTEGER_TYPES:
        return sorted(int(k) for k in enum)
    return sorted(str(k) for k in enum)


def since(dep):
    return str(dep.get("since", "")) if isinstance(dep, dict) else ""


def attributes(item, dictionary, objects, selected):
    out = {}
    for name, a in item.get("attributes", {}).items():
        a = merge(copy.deepcopy(dictionary.get(name, {})), a)
        profs = a.get("profiles")
        if profs and not set(profs) & selected:
            continue
        t = a.get("type")
        rec = {"type": t, "req": a.get("requirement", "optional")}
        if t in objects:                 # the schema files name the object as the type
            rec["type"], rec["object"] = "object_t", t
        if a.get("is_array"):
            rec["array"] = True
        if "enum" in a:
            rec["enum"] = enum_values(t, a["enum"])
        if profs:
            rec["profiles"] = sorted(profs)
        if "@deprecated" in a:
            rec["deprecated"] = since(a["@deprecated"])
        out[name] = rec
        if t == "timestamp_t" and "datetime" in selected:
            out.setdefault(name + "_dt", {"type": "datetime_t", "req": "optional",
                                          "profiles": ["datetime"]})
    return out


def constraints(item):
    c = item.get("constraints") or {}
    return {k: sorted(c[k]) for k in ("at_least_one", "just_one") if c.get(k)}


def observable_types(root, dictionary_file):
    found = {0, 99}
    markers = list(dictionary_file["types"]["attributes"].values())
    markers += list(dictionary_file["attributes"].values())
    for p in glob.glob(os.path.join(root, "objects", "*.json")) + \
            glob.glob(os.path.join(root, "events", "**", "*.json"), recursive=True):
        it = load(p)
        markers.append(it)
        markers += [v for v in it.get("attributes", {}).values() if isinstance(v, dict)]
        found.update((it.get("observables") or {}).values())
    found.update(m["observable"] for m in markers if "observable" in m)
    return sorted(found)


def build(root, class_names, selected):
    dictionary_file = load(os.path.join(root, "dictionary.json"))
    dictionary = dictionary_file["attributes"]
    categories = load(os.path.join(root, "categories.json"))["attributes"]

    objects = {}
    for p in glob.glob(os.path.join(root, "objects", "*.json")):
        o = with_includes(root, load(p))
        objects[o["name"]] = o
    for n in list(objects):
        with_parents(objects, n, set())

    classes = {}
    for p in glob.glob(os.path.join(root, "events", "**", "*.json"), recursive=True):
        c = with_includes(root, load(p))
        classes[c["name"]] = c
    for n in list(classes):
        with_parents(classes, n, set())

    res = {"version": load(os.path.join(root, "version.json"))["version"],
           "profiles": sorted(selected), "classes": {}, "objects": {}}
    todo = []
    for n in class_names:
        c = classes[n]
        if "uid" not in c or c.get("category") not in categories:
            sys.exit(f"{n}: not a concrete event class")
        cat_uid = categories[c["category"]]["uid"]
        cls_uid = cat_uid * 1000 + c["uid"]
        attrs = attributes(c, dictionary, objects, selected)
        attrs["class_uid"]["enum"] = [cls_uid]
        attrs["category_uid"]["enum"] = [cat_uid]
        acts = attrs["activity_id"].get("enum", [])
        attrs["type_uid"]["enum"] = sorted({cls_uid * 100 + a for a in acts} | {cls_uid * 100})
        entry = {"class_uid": cls_uid, "category_uid": cat_uid, "attributes": attrs}
        if constraints(c):
            entry["constraints"] = constraints(c)
        if "@deprecated" in c:
            entry["deprecated"] = since(c["@deprecated"])
        res["classes"][n] = entry
        todo += [a["object"] for a in attrs.values() if "object" in a]

    obs = None
    while todo:
        n = todo.pop()
        if n in res["objects"]:
            continue
        o = objects[n]
        attrs = attributes(o, dictionary, objects, selected)
        if n == "observable" and "type_id" in attrs:
            obs = obs or observable_types(root, dictionary_file)
            attrs["type_id"]["enum"] = obs
        entry = {"attributes": attrs}
        if constraints(o):
            entry["constraints"] = constraints(o)
        if "@deprecated" in o:
            entry["deprecated"] = since(o["@deprecated"])
        res["objects"][n] = entry
        todo += [a["object"] for a in attrs.values() if "object" in a]
    return res


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
    ap = argparse.ArgumentParser(description="compact OCSF field list (test data)")
    ap.add_argument("schema", help="OCSF schema checkout directory")
    ap.add_argument("--profiles", default=DEFAULT_PROFILES, help="comma list")
    ap.add_argument("--classes", default=DEFAULT_CLASSES, help="comma list of class names")
    args = ap.parse_args()
    selected = set(filter(None, args.profiles.split(",")))
    class_names = [c for c in args.classes.split(",") if c]
    res = build(args.schema, class_names, selected)
    write(res, 4, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
