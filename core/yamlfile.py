"""YAML loading that remembers where every key and list item came from.

Installers edit YAML by hand, so every config error must name the file and the
line. The loader builds ordinary dicts and lists (subclasses carrying line
numbers) so validation code stays plain; `locate()` maps a validation error's
path back to a line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import yaml

from smartanom.errors import ConfigError, ConfigIssue


class LineDict(dict):
    line: int = 0
    key_lines: dict


class LineList(list):
    line: int = 0
    item_lines: list


class _Loader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    result = LineDict()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise ConfigError(
                [ConfigIssue(loader.name, key_node.start_mark.line + 1, "", "a mapping key must be a plain value")]
            ) from None
        if key in result:
            raise ConfigError(
                [
                    ConfigIssue(
                        loader.name,
                        key_node.start_mark.line + 1,
                        str(key),
                        f"duplicate key (first given on line {result.key_lines[key]})",
                    )
                ]
            )
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
    return result


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> LineList:
    result = LineList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def load_yaml(text: str, filename: str) -> Any:
    """Parse YAML text; syntax errors become a ConfigError at the offending line."""
    loader = _Loader(text)
    loader.name = filename
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        column = f" (column {mark.column + 1})" if mark else ""
        raise ConfigError([ConfigIssue(filename, line, "", f"YAML syntax error{column}: {problem}{_hint(problem)}")]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigIssue(filename, 0, "", f"YAML error: {exc}")]) from None
    finally:
        loader.dispose()


def _hint(problem: str) -> str:
    # PyYAML's wording is about its parser; say what to change in the file.
    if "'\\t'" in problem:
        return ". YAML indentation must use spaces, not tabs: replace the tab with spaces"
    if "mapping values are not allowed" in problem:
        return ". Check that the line above reads 'key: value' (a space after the colon) and that this line is indented like its neighbours"
    if "expected <block end>" in problem:
        return ". Check this line's indentation against the lines above it (keys of one mapping line up; list items start with '- ')"
    if "could not find expected ':'" in problem:
        return ". A key needs ': ' after it (a space after the colon)"
    if "found unexpected end of stream" in problem or "found unexpected end" in problem:
        return ". A quote or bracket is not closed"
    return ""


def load_yaml_file(path: str | Path) -> Any:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigIssue(str(path), 0, "", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigIssue(str(path), 0, "", f"cannot read the file: {exc}")]) from None
    return load_yaml(text, str(path))


def locate(root: Any, loc: Sequence[Any]) -> int:
    """The line of the deepest node of `loc` that exists in the YAML tree."""
    node, line = root, getattr(root, "line", 0)
    for part in loc:
        if isinstance(node, LineDict) and part in node:
            line, node = node.key_lines[part], node[part]
        elif isinstance(node, LineList) and isinstance(part, int) and 0 <= part < len(node):
            line, node = node.item_lines[part], node[part]
        elif isinstance(part, str) and not isinstance(node, (LineDict, LineList)):
            continue  # pydantic adds tags such as 'function-after[...]'
        else:
            break
    return line


def format_path(loc: Sequence[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out
