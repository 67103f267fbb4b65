"""Extract what the tests need of OCSF from a checkout of ocsf/ocsf-schema.

For each event class our SIEM writer emits, write one JSON file with the class's
attributes and those of the objects our events contain: each attribute's type, whether
it is an array, its requirement, its enum (id -> caption) and, for attributes that come
from a profile, the profile's name (those are only in force when the event applies the
profile). Classes and objects follow their ``extends`` chain; ``$include`` files are
merged; each attribute is the dictionary's definition with the class's or object's
definition merged over it (enums merged key by key), as the OCSF server compiles them.

    python tests/schemas/extract_ocsf.py OCSF_SCHEMA_CHECKOUT tests/schemas/ocsf-1.8.0
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

CLASSES = {
    "compliance_finding": [
        "metadata",
        "product",
        "finding_info",
        "analytic",
        "compliance",
        "resource_details",
        "remediation",
    ],
    "scan_activity": ["metadata", "product", "scan"],
}


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class Schema:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.dictionary = json.loads((root / "dictionary.json").read_text())
        self.types = self.dictionary["types"]["attributes"]
        self.categories = json.loads((root / "categories.json").read_text())["attributes"]
        self.events = {d["name"]: d for d in self._load_all("events")}
        self.objects = {d["name"]: d for d in self._load_all("objects")}

    def _load_all(self, folder: str) -> list[dict[str, Any]]:
        return [json.loads(path.read_text()) for path in sorted((self.root / folder).rglob("*.json"))]

    def _attributes(self, definition: dict[str, Any], kinds: dict[str, dict[str, Any]]) -> dict[str, Any]:
        parent = definition.get("extends")
        attributes: dict[str, Any] = {}
        if parent and parent != "object":
            attributes = self._attributes(kinds[parent], kinds)
        own = dict(definition.get("attributes", {}))
        for include in own.pop("$include", []):
            included = json.loads((self.root / include).read_text())
            profile = included.get("name") if include.startswith("profiles/") else None
            for name, attribute in included.get("attributes", {}).items():
                attribute = dict(attribute)
                if profile:
                    attribute.setdefault("profile", profile)
                attributes[name] = _merge(attributes.get(name, {}), attribute)
        for name, attribute in own.items():
            attributes[name] = _merge(attributes.get(name, {}), attribute)
        return attributes

    def _resolve(self, attributes: dict[str, Any]) -> dict[str, Any]:
        resolved = {}
        for name, attribute in sorted(attributes.items()):
            full = _merge(self.dictionary["attributes"].get(name, {}), attribute)
            kind = full.get("type", "object_t")
            entry: dict[str, Any] = {
                "type": kind,
                "base_type": self.types.get(kind, {}).get("type", kind) if kind in self.types else kind,
                "is_array": bool(full.get("is_array", False)),
                "requirement": full.get("requirement", "optional"),
            }
            if "enum" in full:
                entry["enum"] = {
                    key: value.get("caption", "")
                    for key, value in sorted(full["enum"].items(), key=lambda kv: int(kv[0]))
                }
            if full.get("sibling"):
                entry["sibling"] = full["sibling"]
            if full.get("profile"):
                entry["profile"] = full["profile"]
            if full.get("@deprecated"):
                entry["deprecated"] = True
            resolved[name] = entry
        return resolved

    def event_class(self, name: str) -> dict[str, Any]:
        definition = self.events[name]
        chain = [definition]
        while chain[-1].get("extends"):
            chain.append(self.events[chain[-1]["extends"]])
        category = next(d["category"] for d in chain if d.get("category"))
        category_uid = self.categories[category]["uid"]
        return {
            "name": name,
            "caption": definition["caption"],
            "uid": category_uid * 1000 + definition["uid"],
            "category_uid": category_uid,
            "category_name": self.categories[category]["caption"],
            "attributes": self._resolve(self._attributes(definition, self.events)),
        }

    def object(self, name: str) -> dict[str, Any]:
        definition = self.objects[name]
        return {
            "name": name,
            "caption": definition["caption"],
            "attributes": self._resolve(self._attributes(definition, self.objects)),
        }


def main(checkout: str, output: str) -> None:
    schema = Schema(Path(checkout))
    version = json.loads((Path(checkout) / "version.json").read_text())["version"]
    target = Path(output)
    target.mkdir(parents=True, exist_ok=True)
    for class_name, objects in CLASSES.items():
        document = {
            "ocsf_version": version,
            "class": schema.event_class(class_name),
            "objects": {name: schema.object(name) for name in objects},
        }
        (target / f"{class_name}.json").write_text(json.dumps(document, indent=1, sort_keys=False) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:3])
