"""Every .tf file parses, and every name a configuration uses is declared where it must be:
`terraform validate` cannot run on a machine without the provider, so this is the check
that every var., local., module.M.O, resource and data reference resolves."""

import re

import pytest

from tests.infra.terraform import (
    TERRAFORM,
    Config,
    composition,
    config,
    config_dirs,
    configs,
    parse,
    references,
    root_configs,
    strings,
    tf_files,
)

BUILTIN_PREFIXES = {"var", "local", "module", "data", "each", "count", "path", "terraform", "self"}


def test_there_is_terraform_to_check():
    names = {cfg.name for cfg in configs()}
    assert {"envs/dev", "envs/prod", "bootstrap"} <= names
    assert {
        f"modules/{m}"
        for m in [
            "network",
            "storage",
            "kms",
            "iam",
            "rds",
            "ecs",
            "ecr",
            "monitoring",
            "ci_iam",
            "platform",
        ]
    } <= names


@pytest.mark.parametrize("path", tf_files(), ids=lambda p: str(p.relative_to(TERRAFORM)))
def test_every_tf_file_parses(path):
    tree = parse(path)
    assert isinstance(tree, dict)
    assert tree, f"{path} parsed to nothing"


@pytest.mark.parametrize("directory", config_dirs(), ids=lambda p: str(p.relative_to(TERRAFORM)))
def test_every_var_used_is_declared(directory):
    cfg = config(directory)
    used = {name for (name,) in references(cfg, r"\bvar\.([A-Za-z_][\w-]*)")}
    assert used - cfg.variables.keys() == set(), f"{cfg.name}: undeclared variables"


@pytest.mark.parametrize("directory", config_dirs(), ids=lambda p: str(p.relative_to(TERRAFORM)))
def test_every_declared_variable_is_used_and_documented(directory):
    cfg = config(directory)
    used = {name for (name,) in references(cfg, r"\bvar\.([A-Za-z_][\w-]*)")}
    assert cfg.variables.keys() - used == set(), f"{cfg.name}: variables nothing reads"
    for name, body in cfg.variables.items():
        assert body.get("description"), f"{cfg.name}: variable {name} has no description"
        assert body.get("type"), f"{cfg.name}: variable {name} has no type"
    for name, body in cfg.outputs.items():
        assert body.get("description"), f"{cfg.name}: output {name} has no description"


@pytest.mark.parametrize("directory", config_dirs(), ids=lambda p: str(p.relative_to(TERRAFORM)))
def test_every_local_used_is_defined(directory):
    cfg = config(directory)
    used = {name for (name,) in references(cfg, r"\blocal\.([A-Za-z_][\w-]*)")}
    assert used - cfg.locals.keys() == set(), f"{cfg.name}: undefined locals"


@pytest.mark.parametrize("directory", config_dirs(), ids=lambda p: str(p.relative_to(TERRAFORM)))
def test_every_resource_and_data_reference_exists(directory):
    cfg = config(directory)
    resources = {
        (kind, name)
        for kind, name in references(
            cfg, r"(?<![\w.\"])((?:aws|terraform)_[a-z0-9_]+)\.([A-Za-z_][\w-]*)"
        )
    }
    missing = {ref for ref in resources if ref not in cfg.resources}
    assert missing == set(), f"{cfg.name}: references to undeclared resources"
    data = set(references(cfg, r"\bdata\.([a-z0-9_]+)\.([A-Za-z_][\w-]*)"))
    assert data - cfg.data.keys() == set(), f"{cfg.name}: references to undeclared data sources"


@pytest.mark.parametrize("directory", config_dirs(), ids=lambda p: str(p.relative_to(TERRAFORM)))
def test_every_module_call_matches_its_module(directory):
    cfg = config(directory)
    for call, body in cfg.modules.items():
        source = cfg.module_source(call)
        assert source.path.is_dir(), f"{cfg.name}: module {call} source {body['source']} missing"
        passed = set(body) - {"source", "version", "providers", "depends_on", "count", "for_each"}
        assert passed - source.variables.keys() == set(), (
            f"{cfg.name}: module {call} gets unknown inputs"
        )
        required = {name for name, var in source.variables.items() if "default" not in var}
        assert required - passed == set(), f"{cfg.name}: module {call} misses required inputs"


@pytest.mark.parametrize("directory", config_dirs(), ids=lambda p: str(p.relative_to(TERRAFORM)))
def test_every_module_output_referenced_exists(directory):
    cfg = config(directory)
    for call, output in references(cfg, r"\bmodule\.([A-Za-z_][\w-]*)\.([A-Za-z_][\w-]*)"):
        assert call in cfg.modules, f"{cfg.name}: module.{call} is not called here"
        outputs = cfg.module_source(call).outputs
        assert output in outputs, f"{cfg.name}: module {call} has no output {output}"


@pytest.mark.parametrize("cfg", root_configs(), ids=lambda c: c.name)
def test_roots_pin_the_provider_and_terraform(cfg: Config):
    versions = [block for block in cfg.terraform if "required_providers" in block]
    assert versions, f"{cfg.name} has no required_providers"
    aws = versions[0]["required_providers"][0]["aws"]
    assert aws["source"] == "hashicorp/aws"
    assert aws["version"].startswith("~> 5.")
    assert re.match(r">= ?1\.1[1-9]", versions[0]["required_version"])
    assert (cfg.path / ".terraform.lock.hcl").exists(), f"{cfg.name}: provider lock file missing"


@pytest.mark.parametrize("cfg", root_configs(), ids=lambda c: c.name)
def test_remote_state_is_encrypted_and_locked(cfg: Config):
    backends = [b for block in cfg.terraform for b in block.get("backend", [])]
    assert len(backends) == 1, f"{cfg.name}: one backend block"
    s3 = backends[0]["s3"]
    assert s3["encrypt"] is True
    assert s3["use_lockfile"] is True or s3.get("dynamodb_table")
    assert s3["key"].endswith("terraform.tfstate")
    if cfg.name.startswith("envs/"):
        env = cfg.name.split("/")[1]
        assert s3["key"] == f"{env}/terraform.tfstate"
        assert s3["kms_key_id"] == f"alias/tradeops-tfstate-{env}"


@pytest.mark.parametrize("cfg", root_configs(), ids=lambda c: c.name)
def test_providers_are_pinned_to_one_account(cfg: Config):
    (aws,) = [p["aws"] for p in cfg.providers]
    assert "var.account_id" in aws["allowed_account_ids"][0]
    assert aws["default_tags"][0]["tags"] == "${local.tags}"
    assert cfg.locals["tags"]["project"] == "tradeops"


def test_dev_and_prod_call_the_one_composition_and_differ_only_in_settings():
    dev, prod = config(TERRAFORM / "envs" / "dev"), config(TERRAFORM / "envs" / "prod")
    assert set(dev.modules) == set(prod.modules) == {"platform"}
    assert dev.modules == prod.modules
    assert dev.modules["platform"]["source"] == "../../modules/platform"
    assert dev.variables == prod.variables
    assert dev.outputs == prod.outputs
    for cfg in (dev, prod):
        assert not cfg.resources, f"{cfg.name}: resources belong in a module"
        assert not cfg.data, f"{cfg.name}: data sources belong in a module"
        call = cfg.modules["platform"]
        passed = {k for k in call if k != "source"}
        assert passed == composition().variables.keys()
        assert all(call[k] == f"${{var.{k}}}" for k in passed - {"tags"})
        for name, output in cfg.outputs.items():
            assert output["value"] == f"${{module.platform.{name}}}", f"{cfg.name}: {name}"
    assert set(composition().modules) == {
        "kms",
        "network",
        "storage",
        "ecr",
        "rds",
        "iam",
        "ecs",
        "monitoring",
    }


def test_no_hard_coded_account_ids_or_keys():
    for path in tf_files():
        text = path.read_text()
        assert not re.search(r"(?<![\d.])\d{12}(?![\d.])", text), (
            f"{path}: an account id is hard-coded"
        )
        assert "AKIA" not in text, f"{path}: something that looks like an access key"
        for value in strings(parse(path)):
            assert "PRIVATE KEY" not in value, f"{path}: a private key"
