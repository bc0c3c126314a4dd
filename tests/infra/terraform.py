"""terraform/ as parsed HCL: one ``Config`` per directory of .tf files, and the small
amount of expression reading the tests need (references, literal lists, locals)."""

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2
from hcl2.utils import SerializationOptions

REPO = Path(__file__).resolve().parents[2]
TERRAFORM = REPO / "terraform"
WORKFLOWS = REPO / ".github" / "workflows"
OPTIONS = SerializationOptions(strip_string_quotes=True)
META = ("__is_block__", "__comments__", "__inline_comments__")


def tf_files() -> list[Path]:
    return sorted(p for p in TERRAFORM.rglob("*.tf") if ".terraform" not in p.parts)


@functools.cache
def parse(path: Path) -> dict[str, Any]:
    with path.open() as handle:
        return hcl2.load(handle, serialization_options=OPTIONS)


def clean(value: Any) -> Any:
    """Drops the parser's metadata keys, recursively."""
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items() if k not in META}
    if isinstance(value, list):
        return [clean(v) for v in value]
    return value


@dataclass
class Config:
    """Every block of the .tf files of one directory (a root or a module)."""

    path: Path
    variables: dict[str, dict] = field(default_factory=dict)
    outputs: dict[str, dict] = field(default_factory=dict)
    locals: dict[str, Any] = field(default_factory=dict)
    resources: dict[tuple[str, str], dict] = field(default_factory=dict)
    data: dict[tuple[str, str], dict] = field(default_factory=dict)
    modules: dict[str, dict] = field(default_factory=dict)
    terraform: list[dict] = field(default_factory=list)
    providers: list[dict] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.path.relative_to(TERRAFORM))

    def of_type(self, kind: str) -> dict[str, dict]:
        return {name: body for (t, name), body in self.resources.items() if t == kind}

    def data_of_type(self, kind: str) -> dict[str, dict]:
        return {name: body for (t, name), body in self.data.items() if t == kind}

    def module_source(self, call: str) -> "Config":
        return config((self.path / self.modules[call]["source"]).resolve())


@functools.cache
def config(directory: Path) -> Config:
    found = Config(directory)
    for path in sorted(directory.glob("*.tf")):
        tree = clean(parse(path))
        for block in tree.get("variable", []):
            found.variables.update(block)
        for block in tree.get("output", []):
            found.outputs.update(block)
        for block in tree.get("locals", []):
            found.locals.update(block)
        for block in tree.get("module", []):
            found.modules.update(block)
        for block in tree.get("resource", []):
            for kind, named in block.items():
                for name, body in named.items():
                    found.resources[(kind, name)] = body
        for block in tree.get("data", []):
            for kind, named in block.items():
                for name, body in named.items():
                    found.data[(kind, name)] = body
        found.terraform.extend(tree.get("terraform", []))
        found.providers.extend(tree.get("provider", []))
    return found


def config_dirs() -> list[Path]:
    return sorted({p.parent for p in tf_files()})


def configs() -> list[Config]:
    return [config(d) for d in config_dirs()]


def module_config(name: str) -> Config:
    return config(TERRAFORM / "modules" / name)


def root_configs() -> list[Config]:
    return [
        config(TERRAFORM / "envs" / "dev"),
        config(TERRAFORM / "envs" / "prod"),
        config(TERRAFORM / "bootstrap"),
    ]


def env_configs() -> list[Config]:
    return [config(TERRAFORM / "envs" / "dev"), config(TERRAFORM / "envs" / "prod")]


def composition() -> Config:
    """modules/platform: the one composition of the modules both environments call."""
    return module_config("platform")


@functools.cache
def tfvars(env: str) -> dict[str, Any]:
    return clean(parse(TERRAFORM / "envs" / env / "terraform.tfvars"))


def strings(value: Any) -> list[str]:
    """Every string inside a parsed value."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


def expressions(value: Any) -> list[str]:
    """Text of every interpolated expression inside a parsed value."""
    return [s for s in strings(value) if "${" in s]


def as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


LITERAL = re.compile(r'"([^"$]*)"')
LOCAL_REF = re.compile(r"\blocal\.([A-Za-z_][\w-]*)")


def literal_strings(value: Any, cfg: Config, depth: int = 0) -> set[str]:
    """The literal strings a value can contribute, following locals that are literal lists:
    enough to read an IAM statement's actions without evaluating Terraform."""
    found: set[str] = set()
    for text in strings(value):
        if "${" not in text:
            found.add(text)
            continue
        found.update(LITERAL.findall(text))
        if depth < 4:
            for name in LOCAL_REF.findall(text):
                if name in cfg.locals:
                    found |= literal_strings(cfg.locals[name], cfg, depth + 1)
    return found


@dataclass(frozen=True)
class Statement:
    where: str
    effect: str
    actions: frozenset[str]
    not_actions: frozenset[str]
    resources: tuple[str, ...]
    not_resources: tuple[str, ...]
    principals: tuple[dict, ...]
    conditions: tuple[dict, ...]
    sid: str


def policy_statements(cfg: Config, doc: str) -> list[Statement]:
    """Statements of ``data "aws_iam_policy_document" doc``, dynamic ones included."""
    body = cfg.data[("aws_iam_policy_document", doc)]
    raw = list(body.get("statement", []))
    for dynamic in body.get("dynamic", []):
        for content in dynamic.get("statement", {}).get("content", []):
            raw.append(content)
    found = []
    for st in raw:
        found.append(
            Statement(
                where=f"{cfg.name}: data.aws_iam_policy_document.{doc} {st.get('sid', '')}",
                effect=st.get("effect", "Allow"),
                actions=frozenset(literal_strings(st.get("actions", []), cfg)),
                not_actions=frozenset(literal_strings(st.get("not_actions", []), cfg)),
                resources=tuple(strings(st.get("resources", []))),
                not_resources=tuple(strings(st.get("not_resources", []))),
                principals=tuple(st.get("principals", [])),
                conditions=tuple(st.get("condition", [])),
                sid=st.get("sid", ""),
            )
        )
    return found


def all_policy_statements() -> list[Statement]:
    return [
        st
        for cfg in configs()
        for doc in cfg.data_of_type("aws_iam_policy_document")
        for st in policy_statements(cfg, doc)
    ]


def references(cfg: Config, pattern: str) -> set[tuple[str, ...]]:
    """Every match of ``pattern`` in every expression of the directory."""
    regex = re.compile(pattern)
    found: set[tuple[str, ...]] = set()
    everything = [cfg.variables, cfg.outputs, cfg.locals, cfg.modules, cfg.terraform, cfg.providers]
    everything += list(cfg.resources.values()) + list(cfg.data.values())
    for value in everything:
        for text in expressions(value):
            for match in regex.finditer(text):
                found.add(match.groups())
    return found
