"""YAML read safely, with duplicate keys refused and the line and column of every mapping kept.

So that a problem in a policy file can be reported at ``file:line:column``,
including inside a multi-line CEL expression.
"""

from __future__ import annotations

import yaml


class Marked(dict):
    """A mapping that remembers where it starts and where each of its values starts."""

    nodes: dict  # key -> value node (start_mark, style, value)
    mark: object  # the mapping's own start


class PositionLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and keeps positions."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _construct_marked_mapping(loader, node):
    # PyYAML builds mappings in two steps (yield, then fill) so that recursive
    # structures work; positions must be attached to the object it yields.
    data = Marked()
    data.nodes, data.mark = {}, node.start_mark
    yield data
    data.update(loader.construct_mapping(node, deep=True))
    data.nodes = {loader.construct_object(k, deep=True): v for k, v in node.value}


PositionLoader.add_constructor("tag:yaml.org,2002:map", _construct_marked_mapping)


def mark_of(mapping, key=None):
    """Return the 1-based (line, column) of ``mapping[key]`` (or of the mapping)."""
    if not isinstance(mapping, Marked):
        return None, None
    node = mapping.nodes.get(key) if key is not None else None
    mark = node.start_mark if node is not None else mapping.mark
    return mark.line + 1, mark.column + 1


def position_in_value(source: str, node, offset: int):
    """Map an offset inside a scalar's value to the file's 1-based (line, column).

    One-line plain and quoted scalars map directly; for block scalars (``|``,
    ``>``) and multi-line ones, each line of the value is found again in the
    source lines that hold the scalar.
    """
    mark = node.start_mark
    value = node.value
    if node.style in (None, "'", '"') and "\n" not in value and mark.line == node.end_mark.line:
        return mark.line + 1, mark.column + (1 if node.style else 0) + offset + 1
    lines = source.splitlines()
    first = mark.line + (1 if node.style in ("|", ">") else 0)
    cursor = 0
    for number in range(first, min(node.end_mark.line + 1, len(lines))):
        text = lines[number]
        piece = text.strip() if number > mark.line or node.style in ("|", ">") else text[mark.column:].strip()
        if not piece:
            continue
        found = value.find(piece, cursor)
        if found < 0:
            continue
        if found <= offset < found + len(piece) or offset == found + len(piece):
            return number + 1, text.index(piece) + (offset - found) + 1
        cursor = found + len(piece)
    return mark.line + 1, mark.column + 1
