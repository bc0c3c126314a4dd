"""The ECS containers modules/ecs defines, read from the parsed task definitions: name,
environment and secrets (locals and concat() followed), command text and mounts."""

import functools
import re
from dataclasses import dataclass
from typing import Any

import hcl2

from tests.infra.terraform import OPTIONS, clean, module_config

ECS = module_config("ecs")
LOCAL = re.compile(r"^\$\{local\.([\w-]+)\}$")
CONCAT = re.compile(r"^\$\{concat\((.*)\)\}$", re.S)


def _expression(text: str) -> Any:
    return clean(hcl2.loads(f"x = {text}\n", serialization_options=OPTIONS))["x"]


def resolve(value: Any) -> Any:
    """A list value with ``local.NAME`` and ``concat(...)`` of lists followed."""
    if isinstance(value, str):
        if match := LOCAL.match(value):
            return resolve(ECS.locals[match.group(1)])
        if match := CONCAT.match(value):
            return [item for part in _expression(f"[{match.group(1)}]") for item in resolve(part)]
    return value


def text(value: Any) -> str:
    """A string with ``${local.NAME}`` interpolations followed (for paths)."""
    return re.sub(r"\$\{local\.([\w-]+)\}", lambda m: text(ECS.locals[m.group(1)]), value)


@dataclass(frozen=True)
class Container:
    task: str
    name: str
    environment: dict[str, str]
    secrets: dict[str, str]
    command: str
    mounts: tuple[dict, ...]

    @property
    def provided(self) -> set[str]:
        return set(self.environment) | set(self.secrets)


@functools.cache
def containers() -> tuple[Container, ...]:
    found = []
    for task, body in ECS.of_type("aws_ecs_task_definition").items():
        inner = body["container_definitions"]
        assert inner.startswith("${jsonencode("), task
        assert inner.endswith(")}"), task
        for spec in _expression(inner[len("${jsonencode(") : -2]):
            env = resolve(spec.get("environment", []))
            secrets = resolve(spec.get("secrets", []))
            found.append(
                Container(
                    task=task,
                    name=spec["name"],
                    environment={e["name"]: e["value"] for e in env},
                    secrets={s["name"]: s["valueFrom"] for s in secrets},
                    command=" ".join(str(c) for c in _flatten(spec.get("command", []))),
                    mounts=tuple(resolve(spec.get("mountPoints", []))),
                )
            )
    return tuple(found)


def _flatten(value: Any) -> list:
    if isinstance(value, list):
        return [x for v in value for x in _flatten(v)]
    return [value]


def container(task: str, name: str) -> Container:
    (found,) = [c for c in containers() if c.task == task and c.name == name]
    return found
