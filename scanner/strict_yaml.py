"""YAML for files people write by hand (inventories, waivers): PyYAML's safe loader,
with a key repeated in one mapping reported as an error instead of the last one
silently winning (a duplicated `trust:` must not quietly replace the first)."""

from __future__ import annotations

from typing import Any

import yaml

from mtls_audit.scanner.model.text import show


class StrictSafeLoader(yaml.SafeLoader):
    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    hash(key)
                except TypeError:
                    continue  # the base class reports unhashable keys
                if key in seen and key != "<<":
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        f"found duplicate key {show(key)}",
                        key_node.start_mark,
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


class StrictSafeLoaderWithoutDates(StrictSafeLoader):
    """Dates stay strings, so a bad one is reported with its entry and field by the
    caller instead of failing inside the YAML library."""


StrictSafeLoaderWithoutDates.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
