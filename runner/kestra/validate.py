"""Offline validation of Kestra flow YAML files against runner/kestra/kestra-tasks.json.

The catalogue was read from the Kestra 1.3.25 and official plugin sources; it lists task and
trigger types (canonical names, deprecated aliases, required/optional properties, enums), the
flow model, the id patterns and what Kestra 2.0 removed. No Kestra server is needed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

CATALOGUE_PATH = Path(__file__).with_name("kestra-tasks.json")

# Roots an expression may name besides inputs/vars/outputs, and the functions it may call.
ALLOWED_ROOTS = {
    "trigger", "flow", "execution", "taskrun", "parent", "parents", "labels",
    "task", "envs", "globals", "inputs", "vars", "outputs", "namespace", "error",
}  # fmt: skip
ALLOWED_FUNCTIONS = {
    "kv", "secret", "read", "render", "renderOnce", "fromJson", "fromIon", "json", "yaml",
    "now", "date", "range", "max", "min", "currentEachOutput", "fileURI", "fileExists",
    "fileSize", "isFileEmpty", "errorLogs", "uuid", "ksuid", "nanoId", "randomInt",
    "randomPort", "encrypt", "decrypt", "tasksWithState", "http", "appLink", "block", "i18n",
    "parent", "printContext",
}  # fmt: skip
KEYWORDS = {"and", "or", "not", "is", "in", "true", "false", "null", "none", "if", "else"}
TASK_LIST_KEYS_FLOW = ("tasks", "errors", "finally", "afterExecution")
# Properties rendered after the task's children ran, so they may name the children's outputs.
AFTER_CHILDREN = {("io.kestra.plugin.core.flow.LoopUntil", "condition")}
SUBFLOW = "io.kestra.plugin.core.flow.Subflow"


@dataclass(frozen=True)
class SubflowCall:
    location: str
    flow: tuple[Any, Any]  # (namespace, id)
    inputs: dict[str, Any]


@dataclass(frozen=True)
class Problem:
    file: str
    location: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.location}: {self.message}"


@dataclass(frozen=True)
class Catalogue:
    raw: dict[str, Any]
    types: dict[str, Any]
    plugin_names: dict[str, Any]
    aliases: dict[str, str]
    removed: dict[str, str | None]
    removed_flow_keys: dict[str, str]
    flow: dict[str, Any]
    flow_id_re: re.Pattern[str]
    namespace_re: re.Pattern[str]
    task_id_re: re.Pattern[str]


def _pattern(text: str) -> re.Pattern[str]:
    # catalogue regexes are "^...*  (length ...)"; keep the pattern, anchor the end.
    return re.compile(text.split("  ")[0].strip().rstrip("$") + r"\Z")


@cache
def load_catalogue(path: Path = CATALOGUE_PATH) -> Catalogue:
    raw = json.loads(path.read_text(encoding="utf-8"))
    aliases = {**raw.get("allAliasesFound", {}), **raw["aliases"]}
    for canonical, spec in raw["types"].items():
        for alias in spec.get("aliases", []):
            aliases.setdefault(alias, canonical)
    removed_flow_keys = {}
    for entry in raw["removedIn_2_0_flowKeys"]:
        key, _, note = entry.partition(" ")
        removed_flow_keys[key] = note.strip(" ()")
    flow = raw["flow"]["flow"]
    return Catalogue(
        raw=raw,
        types=raw["types"],
        plugin_names=raw.get("pluginPropertyNames", {}),
        aliases=aliases,
        removed=raw["removedIn_2_0"],
        removed_flow_keys=removed_flow_keys,
        flow=flow,
        flow_id_re=_pattern(flow["properties"]["id"].get("pattern") or raw["regex"]["flow.id"]),
        namespace_re=_pattern(
            flow["properties"]["namespace"].get("pattern") or raw["regex"]["flow.namespace"]
        ),
        task_id_re=_pattern(raw["regex"]["task.id / trigger.id"]),
    )


def _is_task_schema(schema: dict[str, Any]) -> str | None:
    """'list', 'map' or 'single' when the property holds tasks, else None."""
    if schema.get("type") == "task":
        return "single"
    if schema.get("type") == "array" and schema.get("items", {}).get("type") == "task":
        return "list"
    values = schema.get("values", {})
    if schema.get("type") == "object" and values.get("items", {}).get("type") == "task":
        return "map"
    return None


_EXPR = re.compile(r"\{\{(.*?)\}\}", re.S)
_STRING_LIT = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
_ATTR_OR_FILTER = re.compile(r"[.|]\s*[A-Za-z0-9_-]+")
_TOKEN = re.compile(r"(?<![\w-])(?P<name>[A-Za-z_]\w*)(?P<post>\s*[(=]?)")
_REF = re.compile(
    r"(?<![\w.])(inputs|vars|outputs)\s*(?:\.\s*([A-Za-z0-9_-]+)|\[\s*['\"]([^'\"]+)['\"]\s*\])"
)
_STMT_VARS = re.compile(r"\{%-?\s*(?:set|for)\s+([A-Za-z_]\w*)(?:\s*,\s*([A-Za-z_]\w*))?")


class _FlowChecker:
    def __init__(self, file: str, catalogue: Catalogue) -> None:
        self.file = file
        self.cat = catalogue
        self.problems: list[Problem] = []
        self.inputs: set[str] = set()
        self.variables: set[str] = set()
        self.all_ids: set[str] = set()
        self.seen_ids: set[str] = set()
        self.local_names: set[str] = set()
        self.flow_ref: tuple[Any, Any] = (None, None)
        self.subflow_calls: list[SubflowCall] = []

    def add(self, location: str, message: str) -> None:
        self.problems.append(Problem(self.file, location or "<flow>", message))

    # ---- flow level -------------------------------------------------------------------
    def check_flow(self, flow: Any) -> None:
        if not isinstance(flow, dict):
            self.add("", "a flow must be a YAML mapping")
            return
        props = self.cat.flow["properties"]
        for key in self.cat.flow["required"]:
            if key not in flow:
                self.add(key, f"missing required flow key '{key}'")
        for key in flow:
            if key in self.cat.removed_flow_keys:
                note = self.cat.removed_flow_keys[key]
                self.add(key, f"flow key '{key}' is removed in Kestra 2.0 ({note})")
            elif key not in props:
                self.add(key, f"unknown flow key '{key}'")
            elif props[key].get("deprecated"):
                self.add(key, f"flow key '{key}' is deprecated")
        for key, regex in (("id", self.cat.flow_id_re), ("namespace", self.cat.namespace_re)):
            value = flow.get(key)
            if key in flow and not (isinstance(value, str) and regex.match(value)):
                self.add(key, f"flow {key} {value!r} does not match {regex.pattern}")
        for i, spec in enumerate(flow.get("inputs") or []):
            if isinstance(spec, dict) and (spec.get("id") or spec.get("name")):
                self.inputs.add(str(spec.get("id") or spec.get("name")))
            else:
                self.add(f"inputs[{i}]", "an input needs an id")
        if isinstance(flow.get("variables"), dict):
            self.variables = {str(k) for k in flow["variables"]}
        self.flow_ref = (flow.get("namespace"), flow.get("id"))
        self._collect_ids(flow)
        for key, value in flow.items():
            if key in TASK_LIST_KEYS_FLOW:
                self._task_list(value, key, kinds=("task", "flowable-task"))
            elif key == "triggers":
                self._task_list(value, key, kinds=("trigger",))
            elif key == "outputs":  # evaluated after the run: every task is earlier
                saved, self.seen_ids = self.seen_ids, set(self.all_ids)
                self._strings(value, key)
                self.seen_ids = saved
            else:
                self._strings(value, key)

    def _collect_ids(self, node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("id"), str) and isinstance(node.get("type"), str):
                self.all_ids.add(node["id"])
            for value in node.values():
                self._collect_ids(value)
        elif isinstance(node, list):
            for value in node:
                self._collect_ids(value)

    # ---- tasks and triggers -----------------------------------------------------------
    def _task_list(self, value: Any, location: str, kinds: tuple[str, ...]) -> None:
        if value is None:
            return
        if not isinstance(value, list):
            self.add(location, "must be a list of tasks")
            return
        for i, task in enumerate(value):
            self._task(task, f"{location}[{i}]", kinds)

    def _task(self, task: Any, loc: str, kinds: tuple[str, ...]) -> None:
        if not isinstance(task, dict):
            self.add(loc, "must be a mapping with id and type")
            return
        task_id = task.get("id")
        if task_id is None:
            self.add(f"{loc}.id", "missing required property 'id'")
        elif not (isinstance(task_id, str) and self.cat.task_id_re.match(task_id)):
            self.add(f"{loc}.id", f"id {task_id!r} does not match {self.cat.task_id_re.pattern}")
        elif task_id in self.seen_ids:
            self.add(f"{loc}.id", f"duplicate id '{task_id}'")
        if isinstance(task_id, str):
            self.seen_ids.add(task_id)
        spec = self._resolve_type(task.get("type"), f"{loc}.type", kinds)
        if spec is None:  # unknown type: still walk strings and obvious nested tasks
            for key, value in task.items():
                if key in ("tasks", "then", "else", "errors", "finally"):
                    self._task_list(value, f"{loc}.{key}", ("task", "flowable-task"))
                elif key not in ("id", "type"):
                    self._strings(value, f"{loc}.{key}")
            return
        required, known, props = spec
        for key in required:
            if key not in task:
                self.add(f"{loc}.{key}", f"missing required property '{key}'")
        canonical = self.cat.aliases.get(task["type"], task["type"])
        called = (
            self.flow_ref[0] if _is_self_ref(task.get("namespace"), "namespace") else task.get("namespace"),
            self.flow_ref[1] if _is_self_ref(task.get("flowId"), "id") else task.get("flowId"),
        )
        if canonical == SUBFLOW and called == self.flow_ref:
            self.add(f"{loc}.flowId", "a flow cannot call itself: Kestra refuses to save a recursive Subflow")
        elif canonical == SUBFLOW and isinstance(task.get("inputs", {}), dict):
            self.subflow_calls.append(SubflowCall(f"{loc}.inputs", called, dict(task.get("inputs") or {})))
        for key, value in sorted(task.items(), key=lambda kv: (canonical, kv[0]) in AFTER_CHILDREN):
            at = f"{loc}.{key}"
            if key not in known:
                self.add(at, f"unknown property '{key}' for {task['type']}")
                self._strings(value, at)
                continue
            schema = props.get(key, {}).get("schema", {})
            nested = _is_task_schema(schema)
            if nested == "list":
                self._task_list(value, at, ("task", "flowable-task"))
            elif nested == "single":
                self._task(value, at, ("task", "flowable-task"))
            elif nested == "map" and isinstance(value, dict):
                for case, tasks in value.items():
                    self._task_list(tasks, f"{at}.{case}", ("task", "flowable-task"))
            else:
                self._enum(schema, value, at)
                if key not in ("id", "type"):
                    self._strings(value, at)

    def _resolve_type(
        self, type_name: Any, loc: str, kinds: tuple[str, ...]
    ) -> tuple[list[str], set[str], dict[str, Any]] | None:
        if not isinstance(type_name, str) or not type_name:
            self.add(loc, "missing required property 'type'")
            return None
        cat = self.cat
        if type_name in cat.removed:
            repl = cat.removed[type_name]
            hint = f"; use {repl}" if repl else ""
            self.add(loc, f"type {type_name} is removed in Kestra 2.0{hint}")
        canonical = type_name
        if type_name in cat.aliases:
            canonical = cat.aliases[type_name]
            self.add(loc, f"type {type_name} is a deprecated alias; use {canonical}")
        if canonical in cat.types:
            spec = cat.types[canonical]
            if spec["kind"] not in kinds:
                self.add(loc, f"type {canonical} is a {spec['kind']}, expected {' or '.join(kinds)}")
            if spec.get("deprecated"):
                self.add(loc, f"type {canonical} is deprecated")
            known = (
                set(spec["required"])
                | set(spec["optional"])
                | set(spec.get("hiddenButAccepted", []))
                | set(spec.get("deprecatedProperties", []))
                | set(spec["properties"])
            )
            return list(spec["required"]), known, spec["properties"]
        if canonical in cat.plugin_names:
            names = cat.plugin_names[canonical]
            if names.get("deprecated"):
                self.add(loc, f"type {canonical} is deprecated")
            return list(names["required"]), set(names["properties"]), {}
        if type_name not in cat.removed:
            self.add(loc, f"unknown type {type_name}")
        return None

    def _enum(self, schema: dict[str, Any], value: Any, loc: str) -> None:
        enum = schema.get("enum")
        values = value if schema.get("type") == "array" and isinstance(value, list) else [value]
        if enum is None and schema.get("type") == "array":
            enum = schema.get("items", {}).get("enum")
        if not enum:
            return
        for v in values:
            if isinstance(v, str) and ("{{" in v or "{%" in v):
                continue  # dynamic: rendered at run time
            if not isinstance(v, str) or v not in enum:
                self.add(loc, f"invalid value {v!r}; expected one of {', '.join(enum)}")

    # ---- expressions ------------------------------------------------------------------
    def _strings(self, value: Any, loc: str) -> None:
        if isinstance(value, str):
            self._expression(value, loc)
        elif isinstance(value, dict):
            for k, v in value.items():
                self._strings(v, f"{loc}.{k}")
        elif isinstance(value, list):
            for i, v in enumerate(value):
                self._strings(v, f"{loc}[{i}]")

    def _expression(self, text: str, loc: str) -> None:
        if not _balanced(text):
            self.add(loc, "unbalanced '{{' / '}}' in expression")
            return
        local = set(self.local_names)
        for m in _STMT_VARS.finditer(text):
            local.update(n for n in m.groups() if n)
        for m in _EXPR.finditer(text):
            expr = m.group(1)
            for ref in _REF.finditer(expr):
                root, name = ref.group(1), ref.group(2) or ref.group(3)
                self._reference(root, name, loc)
            self._roots(_STRING_LIT.sub("''", expr), loc, local)

    def _reference(self, root: str, name: str, loc: str) -> None:
        if root == "inputs" and name not in self.inputs:
            self.add(loc, f"inputs.{name} is not a declared input")
        elif root == "vars" and name not in self.variables:
            self.add(loc, f"vars.{name} is not a declared variable")
        elif root == "outputs" and name not in self.seen_ids:
            if name in self.all_ids:
                self.add(loc, f"outputs.{name} refers to a task not defined earlier in the flow")
            else:
                self.add(loc, f"outputs.{name} refers to an unknown task")

    def _roots(self, expr: str, loc: str, local: set[str]) -> None:
        # '@' stands for each attribute or filter, so `trigger.date | dateAdd(-1, 'MONTHS')` reads as
        # `trigger @ @(-1, '')`: a root and a filter's arguments, not a call of trigger().
        for tok in _TOKEN.finditer(_ATTR_OR_FILTER.sub(" @", expr)):
            name, post = tok.group("name"), tok.group("post").strip()
            if name in KEYWORDS or name in local or post == "=":
                continue  # keyword, loop variable or named argument
            if post == "(":
                if name not in ALLOWED_FUNCTIONS:
                    self.add(loc, f"unknown function {name}()")
            elif name not in ALLOWED_ROOTS:
                self.add(loc, f"unknown variable '{name}' in expression")


def _is_self_ref(value: Any, key: str) -> bool:
    """`{{ flow.namespace }}` / `{{ flow.id }}`: the calling flow's own."""
    return isinstance(value, str) and re.fullmatch(r"\{\{\s*flow\." + key + r"\s*\}\}", value) is not None


def _balanced(text: str) -> bool:
    depth = 0
    for tok in re.findall(r"\{\{|\}\}", text):
        depth += 1 if tok == "{{" else -1
        if depth < 0 or depth > 1:
            return False
    return depth == 0


def _check_file(path: Path, catalogue: Catalogue) -> tuple[list[Problem], Any, list[SubflowCall]]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        return [Problem(str(path), "<file>", f"cannot read: {exc}")], None, []
    except yaml.YAMLError as exc:
        return [Problem(str(path), "<file>", f"invalid YAML: {exc}".replace("\n", " "))], None, []
    checker = _FlowChecker(str(path), catalogue)
    checker.check_flow(data)
    return checker.problems, data, checker.subflow_calls


def validate_flow(path: str | Path, catalogue: Catalogue | None = None) -> list[Problem]:
    """Problems found in one flow file (empty list when it is valid)."""
    return _check_file(Path(path), catalogue or load_catalogue())[0]


def _declared_inputs(flow: Any) -> dict[str, bool] | None:
    """A flow's inputs, each with whether a caller must give it (required and no default)."""
    if not isinstance(flow, dict) or not isinstance(flow.get("inputs") or [], list):
        return None
    return {
        str(spec.get("id")): spec.get("required", True) is not False and "defaults" not in spec
        for spec in flow.get("inputs") or []
        if isinstance(spec, dict)
    }


def _check_calls(
    file: Path, calls: list[SubflowCall], flows: dict[tuple[Any, Any], dict[str, bool]]
) -> list[Problem]:
    """Subflow calls against the called flow's inputs, when that flow is among the files checked."""
    problems = []
    for call in calls:
        declared = flows.get(call.flow)
        if declared is None:
            continue  # a flow deployed some other way: nothing to compare with
        name = ".".join(map(str, call.flow))
        for key in call.inputs:
            if key not in declared:
                problems.append(Problem(str(file), call.location, f"'{key}' is not an input of flow {name}"))
        for key, required in declared.items():
            if required and key not in call.inputs:
                problems.append(
                    Problem(str(file), call.location, f"required input '{key}' of flow {name} is missing")
                )
    return problems


def flow_files(paths: list[str | Path]) -> list[Path]:
    """Expand folders into their *.yml/*.yaml files (sorted); raises FileNotFoundError."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.suffix in (".yml", ".yaml") and f.is_file())
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(str(p))
    return files


def validate_paths(paths: list[str | Path]) -> dict[Path, list[Problem]]:
    """Problems per flow file, for files and folders of *.yml/*.yaml; Subflow calls are checked against
    the inputs of the flows they call, when those are among the files."""
    catalogue = load_catalogue()
    checked = {f: _check_file(f, catalogue) for f in flow_files(paths)}
    flows = {
        (data["namespace"], data["id"]): inputs
        for _, data, _ in checked.values()
        if (inputs := _declared_inputs(data)) is not None and "namespace" in data and "id" in data
    }
    return {f: problems + _check_calls(f, calls, flows) for f, (problems, _, calls) in checked.items()}
