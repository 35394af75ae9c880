"""Validates OCSF events, one JSON document per line, against the OCSF 1.3.0 schema.

Usage: ocsf_check.py EVENTS.jsonl   (exit 0 and "N events valid", or exit 1 with the errors)

The schema comes from a package, offline: PyPI `pydantic-ocsf` ships OCSF's schema exports
(`ocsf/schemas/v1_3_0.json`) and Pydantic models generated from them. Each event is checked
twice:

1. By pydantic-ocsf's model of its class (`ocsf.v1_3_0.events.ApiActivity` /
   `DetectionFinding` / `BaseEvent`): required attributes, types, enums and sibling captions
   of the attributes it models.
2. By a strict walk of the same schema file: every attribute must be defined for its class or
   object (the models allow extras), required ones present, `at_least_one`/`just_one`
   constraints met, values of the right type (with the type's regex, `max_len` and `range`),
   `*_id` values in their enum, and `type_uid = class_uid * 100 + activity_id`.

Three gaps of the shipped file are filled from the OCSF 1.3.0 spec text (see siem.md): it keeps
the `$include` directives of `base_event` unresolved, so the classification and occurrence
attributes are listed here; likewise the `host` profile that `finding` includes
(`profiles/host.json` of OCSF 1.3.0: `actor` optional, `device` recommended), whose `actor`
Detection Findings use for the principal; and pydantic-ocsf's API Activity enum lost
`0 Unknown`, which OCSF defines for every class (the dictionary's `activity_id` has it), so the
model check sees 99 where the event says 0.

Events that declare 1.8.0 (option `ocsf_ai_operation`) are checked against 1.3.0, which 1.8 only
adds to for the attributes Calltrail uses, without the `ai_operation` profile's `ai_model` and
`message_context`, whose shape is checked from the 1.8 spec text.
"""

import copy
import importlib.metadata
import json
import re
import sys

from ocsf.v1_3_0 import objects as ocsf_objects
from pydantic import SerializeAsAny
from ocsf.v1_3_0.events import ApiActivity, BaseEvent, DetectionFinding

# `$include`d by base_event in OCSF 1.3.0 (includes/classification.json, occurrence.json).
INCLUDED = {
    "activity_id": "required",
    "activity_name": "optional",
    "category_name": "optional",
    "category_uid": "required",
    "class_name": "optional",
    "class_uid": "required",
    "type_name": "optional",
    "type_uid": "required",
    "count": "optional",
    "duration": "optional",
    "end_time": "optional",
    "start_time": "optional",
    "time": "required",
    "timezone_offset": "recommended",
}
# `$include`d by finding in OCSF 1.3.0 (profiles/host.json).
INCLUDED_BY = {"finding": {"actor": "optional", "device": "recommended"}}
# The classes Calltrail emits: class_uid -> (class name, category_uid).
CLASSES = {6003: ("api_activity", 6), 2004: ("detection_finding", 2), 0: ("base_event", 0)}
INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)


def load_schema():
    for f in importlib.metadata.files("pydantic-ocsf"):
        if str(f).endswith("ocsf/schemas/v1_3_0.json"):
            with open(f.locate()) as fh:
                return json.load(fh)
    raise SystemExit("pydantic-ocsf does not ship ocsf/schemas/v1_3_0.json")


SCHEMA = load_schema()
assert SCHEMA["version"] == "1.3.0", SCHEMA["version"]
DICT = SCHEMA["dictionary"]["attributes"]
TYPES = SCHEMA["dictionary"]["types"]["attributes"]

# pydantic-ocsf leaves BaseEvent's forward references unresolved until something else has
# loaded them; resolve them here so the check does not depend on import order.
BaseEvent.model_rebuild(
    _types_namespace={
        "SerializeAsAny": SerializeAsAny,
        "Enrichment": ocsf_objects.Enrichment,
        "Observable": ocsf_objects.Observable,
        "Metadata": ocsf_objects.Metadata,
        "Object": ocsf_objects.Object,
    }
)


def merged(table, name):
    """Attributes and constraints of an event class or object, parents first."""
    item = table[name]
    attrs, constraints = {}, {}
    parent = item.get("extends")
    if parent and parent in table:
        attrs, constraints = merged(table, parent)
        attrs = copy.deepcopy(attrs)
    if name == "base_event":
        for a, req in INCLUDED.items():
            attrs[a] = {"requirement": req}
    for a, req in INCLUDED_BY.get(name, {}).items():
        attrs.setdefault(a, {})["requirement"] = req
    for a, spec in item.get("attributes", {}).items():
        if a == "$include":
            continue
        attrs.setdefault(a, {}).update({k: v for k, v in spec.items() if v is not None})
    constraints = dict(constraints)
    constraints.update(item.get("constraints", {}))
    return attrs, constraints


def attr_type(name, spec):
    return spec.get("type") or DICT.get(name, {}).get("type")


def enum_of(name, spec):
    values = set(DICT.get(name, {}).get("enum", {}))
    values |= set(spec.get("enum", {}))
    return values


def check_primitive(path, type_name, value, errors):
    """Checks a value of a dictionary type (and the types it is based on)."""
    t = TYPES.get(type_name)
    if t is None:
        errors.append(f"{path}: unknown type {type_name}")
        return
    base = t.get("type")
    if base:
        check_primitive(path, base, value, errors)
    if type_name == "string_t" and not isinstance(value, str):
        errors.append(f"{path}: {value!r} is not a string")
    elif type_name in ("integer_t", "long_t"):
        lo, hi = INT32 if type_name == "integer_t" else INT64
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            errors.append(f"{path}: {value!r} is not a {type_name}")
    elif type_name == "float_t" and (not isinstance(value, (int, float)) or isinstance(value, bool)):
        errors.append(f"{path}: {value!r} is not a float")
    elif type_name == "boolean_t" and not isinstance(value, bool):
        errors.append(f"{path}: {value!r} is not a boolean")
    if isinstance(value, str):
        if "max_len" in t and len(value) > t["max_len"]:
            errors.append(f"{path}: longer than {t['max_len']} ({type_name})")
        if "regex" in t and not re.search(t["regex"], value):
            errors.append(f"{path}: {value!r} does not match {type_name}")
    if "range" in t and isinstance(value, int):
        lo, hi = t["range"]
        if not lo <= value <= hi:
            errors.append(f"{path}: {value} out of {type_name} range")


def check_value(path, name, spec, value, errors):
    is_array = spec.get("is_array", DICT.get(name, {}).get("is_array", False))
    if is_array:
        if not isinstance(value, list):
            errors.append(f"{path}: not an array")
            return
        for i, v in enumerate(value):
            check_scalar(f"{path}[{i}]", name, spec, v, errors)
    else:
        check_scalar(path, name, spec, value, errors)


def check_scalar(path, name, spec, value, errors):
    t = attr_type(name, spec)
    if t is None:
        errors.append(f"{path}: no type in the dictionary")
    elif t in ("object", "json_t"):
        if t == "object" and not isinstance(value, dict):
            errors.append(f"{path}: not an object")
    elif t in SCHEMA["objects"]:
        if not isinstance(value, dict):
            errors.append(f"{path}: not an object ({t})")
        else:
            check_object(path, SCHEMA["objects"], t, value, errors)
    else:
        check_primitive(path, t, value, errors)
    values = enum_of(name, spec)
    if values and name.endswith("_id") and str(value) not in values:
        errors.append(f"{path}: {value!r} not in enum {sorted(values, key=int)}")


def check_object(path, table, name, value, errors):
    attrs, constraints = merged(table, name)
    for a, v in value.items():
        if a not in attrs:
            errors.append(f"{path}.{a}: not an attribute of {name}")
            continue
        check_value(f"{path}.{a}", a, attrs[a], v, errors)
    for a, spec in attrs.items():
        if spec.get("requirement") == "required" and a not in value:
            errors.append(f"{path}.{a}: required by {name}, missing")
    at_least_one = constraints.get("at_least_one")
    if at_least_one and not any(k in value for k in at_least_one):
        errors.append(f"{path}: {name} needs one of {at_least_one}")
    if "just_one" in constraints and sum(k in value for k in constraints["just_one"]) != 1:
        errors.append(f"{path}: {name} needs exactly one of {constraints['just_one']}")


AI_MODEL = {"name": str, "ai_provider": str, "version": str, "uid": str}
MESSAGE_CONTEXT = {
    "ai_role_id": int,
    "ai_role": str,
    "prompt_tokens": int,
    "completion_tokens": int,
    "total_tokens": int,
    "uid": str,
    "name": str,
    "service": dict,
}


def check_ai_operation(event, errors):
    """Takes the 1.8 profile's attributes out of `event`, checking them from the spec text."""
    md = event.get("metadata", {})
    if md.get("version") != "1.8.0":
        return
    # 1.8 only adds to what Calltrail uses of 1.3: the rest is checked against 1.3.0.
    md["version"] = "1.3.0"
    if "ai_operation" not in md.pop("profiles", []):
        if "ai_model" in event or "message_context" in event:
            errors.append("ai_operation attributes without the ai_operation profile")
        return
    for attr, shape, required in (
        ("ai_model", AI_MODEL, ("name", "ai_provider")),
        ("message_context", MESSAGE_CONTEXT, ()),
    ):
        obj = event.pop(attr, None)
        if obj is None:
            continue
        for k, v in obj.items():
            if k not in shape or not isinstance(v, shape[k]) or isinstance(v, bool):
                errors.append(f"{attr}.{k}: {v!r} not allowed")
        for k in required:
            if k not in obj:
                errors.append(f"{attr}.{k}: required, missing")


def check(event):
    errors = []
    event = copy.deepcopy(event)
    check_ai_operation(event, errors)
    class_uid = event.get("class_uid")
    if class_uid not in CLASSES:
        return errors + [f"class_uid {class_uid!r} is not one Calltrail emits"]
    name, category_uid = CLASSES[class_uid]
    if event.get("category_uid") != category_uid:
        errors.append(f"category_uid {event.get('category_uid')} for class {class_uid}")
    if event.get("type_uid") != class_uid * 100 + event.get("activity_id", -1):
        errors.append(f"type_uid {event.get('type_uid')} != class_uid * 100 + activity_id")
    if event.get("metadata", {}).get("version") != "1.3.0":
        errors.append(f"metadata.version {event.get('metadata', {}).get('version')!r}")
    check_object("", SCHEMA["events"], name, event, errors)
    model = {6003: ApiActivity, 2004: DetectionFinding}.get(class_uid, BaseEvent)
    as_model = copy.deepcopy(event)
    if as_model.get("activity_id") == 0:
        # pydantic-ocsf's API Activity enum lost 0 Unknown (see the module doc).
        as_model["activity_id"], as_model["activity_name"] = 99, "Other"
        as_model["type_uid"] = class_uid * 100 + 99
    try:
        model.model_validate(as_model)
    except Exception as e:  # pydantic.ValidationError, and model build errors
        errors.append(f"pydantic-ocsf {model.__name__}: {e}")
    return errors


def main(path):
    failures = 0
    n = 0
    with open(path, encoding="utf-8", newline="") as fh:
        for lineno, line in enumerate(fh.read().split("\n"), 1):
            if not line:
                continue
            n += 1
            for error in check(json.loads(line)):
                failures += 1
                print(f"line {lineno}: {error}")
    if failures:
        sys.exit(1)
    print(f"{n} events valid")


if __name__ == "__main__":
    main(sys.argv[1])
