"""The Python side of the contracts with terraform/, read as source (ast, YAML): the IaC
environment has neither dagster nor boto3, and importing the app is not the point."""

import ast
import functools
import re
from pathlib import Path

import yaml

from tests.infra.terraform import REPO

PROD = REPO / "resources" / "prod.py"
SECRETS = REPO / "resources" / "secrets.py"
DEPLOYMENT = REPO / "resources" / "deployment.py"
INSTANCE_YAML = REPO / "deploy" / "prod" / "dagster.yaml"
SERVE_SETTINGS = REPO / "bentos" / "trading_policy" / "settings.py"
DOCKERFILE = REPO / "bentos" / "trading_policy" / "Dockerfile"
ENV_NAME = re.compile(r"^(TRADEOPS|DAGSTER|AWS|MLFLOW|BENTOML?)_[A-Z0-9_]+$")


@functools.cache
def tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def constants(path: Path) -> dict[str, str]:
    """Module-level NAME = "TRADEOPS_..." and A, B = ("X", "Y") string constants."""
    found: dict[str, str] = {}
    for node in tree(path).body:
        if not isinstance(node, ast.Assign):
            continue
        for target in node.targets:
            if isinstance(target, ast.Name) and isinstance(node.value, ast.Constant):
                if isinstance(node.value.value, str):
                    found[target.id] = node.value.value
            elif isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                for name, value in zip(target.elts, node.value.elts, strict=True):
                    if isinstance(name, ast.Name) and isinstance(value, ast.Constant):
                        found[name.id] = value.value
    return found


def prod_names() -> dict[str, str]:
    """prod.py's constants, with the ones it imports from resources/secrets.py and
    resources/deployment.py resolved."""
    return {**constants(SECRETS), **constants(DEPLOYMENT), **constants(PROD)}


def prod_required() -> set[str]:
    """``REQUIRED`` of resources/prod.py, each name resolved to its variable."""
    names = prod_names()
    for node in tree(PROD).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "REQUIRED" for t in node.targets
        ):
            return {names[e.id] for e in node.value.elts}
    raise AssertionError("resources/prod.py has no REQUIRED")


def prod_env_vars() -> tuple[set[str], set[str]]:
    """Variables prod_resources reads by dg.EnvVar or hands to {"env": ...}: (always,
    only when a Deployment flag says so)."""
    names = prod_names()
    always: set[str] = set()
    optional: set[str] = set()
    conditional = {
        id(n)
        for node in ast.walk(tree(PROD))
        if isinstance(node, ast.IfExp)
        for n in ast.walk(node)
    }
    for node in ast.walk(tree(PROD)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if called not in {"EnvVar", "mlflow_server_resource"} or not node.args:
            continue
        arg = node.args[0]
        name = names.get(arg.id) if isinstance(arg, ast.Name) else getattr(arg, "value", None)
        assert name, f"resources/prod.py: {ast.unparse(node)} names no known variable"
        (optional if id(node) in conditional else always).add(name)
    return always, optional


def instance_env_vars() -> set[str]:
    """Every {env: NAME} of deploy/prod/dagster.yaml."""
    found: set[str] = set()

    def walk(value) -> None:
        if isinstance(value, dict):
            if set(value) == {"env"}:
                found.add(value["env"])
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(yaml.safe_load(INSTANCE_YAML.read_text()))
    return found


def serving_requirements() -> list[set[str]]:
    """What ``ServeSettings.from_env`` refuses to start without: one set per refusal, of
    which at least one variable must be set (a refusal naming two accepts either)."""
    names = constants(SERVE_SETTINGS)
    (settings,) = [
        n
        for n in tree(SERVE_SETTINGS).body
        if isinstance(n, ast.ClassDef) and n.name == "ServeSettings"
    ]
    (from_env,) = [
        n for n in settings.body if isinstance(n, ast.FunctionDef) and n.name == "from_env"
    ]
    found = []
    for node in ast.walk(from_env):
        if isinstance(node, ast.If) and isinstance(node.test, ast.UnaryOp | ast.BoolOp):
            raises = [s for s in node.body if isinstance(s, ast.Raise)]
            if raises:
                mentioned = {
                    names[n.id]
                    for n in ast.walk(raises[0])
                    if isinstance(n, ast.Name) and n.id.endswith("_ENV") and n.id in names
                }
                if mentioned:
                    found.append(mentioned)
    return found


def literals(paths: list[Path]) -> set[str]:
    """Every string literal that looks like an environment variable's name, in Python
    sources (ast) and YAML ({env: NAME})."""
    found: set[str] = set()
    for path in paths:
        if path.suffix == ".py":
            docstrings = {id(n.value) for n in ast.walk(tree(path)) if isinstance(n, ast.Expr)}
            for node in ast.walk(tree(path)):
                if id(node) in docstrings:
                    continue
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    found.update(
                        w for w in re.findall(r"[A-Z][A-Z0-9_]+", node.value) if ENV_NAME.match(w)
                    )
        elif path.suffix in {".yaml", ".yml"}:
            found |= set(re.findall(r"\{env: ([A-Z0-9_]+)\}", path.read_text()))
    return found


def python_files(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (REPO / folder).rglob("*.py"))


def dockerfile_env() -> set[str]:
    """Variables the serving image sets itself (ENV lines)."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    found: set[str] = set()
    for line in text.splitlines():
        if line.startswith("ENV "):
            found |= set(re.findall(r"([A-Z][A-Z0-9_]*)=", line))
    return found
