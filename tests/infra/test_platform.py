"""KMS, network, RDS, ECR, ECS and monitoring: the properties the firm audits."""

import re

import pytest

from tests.infra.terraform import (
    TERRAFORM,
    composition,
    config,
    configs,
    module_config,
    strings,
    tfvars,
)

ECS = module_config("ecs")
NETWORK = module_config("network")


def test_every_kms_key_rotates_and_has_a_policy():
    keys = [
        (cfg.name, name, body)
        for cfg in configs()
        for name, body in cfg.of_type("aws_kms_key").items()
    ]
    assert {(where, name) for where, name, _ in keys} == {
        ("modules/kms", "this"),
        ("bootstrap", "state"),
    }
    for _, _, body in keys:
        assert body["enable_key_rotation"] is True
        assert body.get("policy")
        window = body["deletion_window_in_days"]
        assert window == 30 or window == "${var.deletion_window_in_days}"
    assert module_config("kms").variables["deletion_window_in_days"]["default"] == 30


def test_no_public_ingress_anywhere():
    kinds = {kind for cfg in configs() for kind, _ in cfg.resources}
    assert not kinds & {
        "aws_internet_gateway",
        "aws_nat_gateway",
        "aws_eip",
        "aws_egress_only_internet_gateway",
    }
    for name, subnet in NETWORK.of_type("aws_subnet").items():
        assert subnet["map_public_ip_on_launch"] is False, name
    for cfg in configs():
        for kind in [
            "aws_vpc_security_group_ingress_rule",
            "aws_vpc_security_group_egress_rule",
            "aws_security_group_rule",
        ]:
            for body in cfg.of_type(kind).values():
                assert "0.0.0.0/0" not in strings(body)
                assert "::/0" not in strings(body)
        for body in cfg.of_type("aws_security_group").values():
            assert "ingress" not in body, "rules are separate, described resources"
            assert "egress" not in body, "rules are separate, described resources"
    for value in strings(NETWORK.locals["ingress_cidr_rules"]):
        assert "0.0.0.0/0" not in value
    assert ECS.of_type("aws_lb")["this"]["internal"] is True
    for body in ECS.of_type("aws_ecs_service").values():
        assert body["network_configuration"][0]["assign_public_ip"] is False
    for env in ["dev", "prod"]:
        for cidr in tfvars(env)["client_cidrs"] + tfvars(env)["operator_cidrs"]:
            assert re.match(r"^10\.", cidr), f"{env}: {cidr} is not private"


def test_private_endpoints_for_s3_and_ecr():
    endpoints = NETWORK.of_type("aws_vpc_endpoint")
    assert endpoints["s3"]["vpc_endpoint_type"] == "Gateway"
    assert endpoints["s3"]["policy"] == "${data.aws_iam_policy_document.s3_endpoint.json}"
    services = set(NETWORK.variables["interface_endpoints"]["default"])
    assert {
        "ecr.api",
        "ecr.dkr",
        "logs",
        "sts",
        "secretsmanager",
        "kms",
        "ecs",
        "ecs-agent",
    } <= services
    assert endpoints["interface"]["private_dns_enabled"] is True


def test_every_security_group_tier_is_attached_by_a_module():
    """The CKV2_AWS_5 skip's reason: each tier is used through network's output."""
    used = set()
    for cfg in [ECS, module_config("rds"), composition()]:
        for text in strings([*cfg.resources.values(), *cfg.modules.values(), cfg.locals]):
            used.update(re.findall(r'security_group_ids\["([a-z_]+)"\]', text))
    tiers = set(NETWORK.locals["security_groups"])
    assert tiers - {"endpoints"} <= used, f"tiers nobody attaches: {tiers - used}"
    interface = NETWORK.of_type("aws_vpc_endpoint")["interface"]
    assert interface["security_group_ids"] == ['${aws_security_group.this["endpoints"].id}']


def test_database_is_encrypted_private_protected_and_uses_iam_auth():
    rds = module_config("rds")
    db = rds.of_type("aws_db_instance")["this"]
    assert db["storage_encrypted"] is True
    assert db["kms_key_id"] == "${var.kms_key_arn}"
    assert db["publicly_accessible"] is False
    assert db["deletion_protection"] is True
    assert db["iam_database_authentication_enabled"] is True
    assert db["multi_az"] is True
    assert db["skip_final_snapshot"] is False
    assert db["manage_master_user_password"] is True
    assert "password" not in db
    assert db["backup_retention_period"] == "${var.backup_retention_days}"
    assert rds.variables["backup_retention_days"]["default"] >= 7
    assert db["performance_insights_kms_key_id"] == "${var.kms_key_arn}"
    params = {
        p["name"]: p["value"] for p in rds.of_type("aws_db_parameter_group")["this"]["parameter"]
    }
    assert params["rds.force_ssl"] == "1"
    for cfg in [composition()]:
        assert cfg.modules["rds"]["subnet_ids"] == "${module.network.private_subnet_ids}"


def test_ecr_is_immutable_scanned_and_encrypted():
    repo = module_config("ecr").of_type("aws_ecr_repository")["this"]
    assert repo["image_tag_mutability"] == "IMMUTABLE"
    assert repo["image_scanning_configuration"][0]["scan_on_push"] is True
    assert repo["encryption_configuration"][0]["encryption_type"] == "KMS"
    assert "trading-policy" in module_config("ecr").variables["repositories"]["default"]


def test_the_bento_service_is_highly_available_and_rolls_back():
    service = ECS.of_type("aws_ecs_service")["serving"]
    assert service["desired_count"] == "${var.serving_desired_count}"
    count = ECS.variables["serving_desired_count"]
    assert count["default"] >= 2
    assert "var.serving_desired_count >= 2" in count["validation"][0]["condition"]
    for env in ["dev", "prod"]:
        assert tfvars(env)["serving_desired_count"] >= 2
        assert len(set(tfvars(env)["availability_zones"])) >= 2
    assert (
        "length(var.private_subnet_ids) >= 2"
        in ECS.variables["private_subnet_ids"]["validation"][0]["condition"]
    )
    assert service["network_configuration"][0]["subnets"] == "${var.private_subnet_ids}"
    for cfg in [composition()]:
        assert cfg.modules["ecs"]["private_subnet_ids"] == "${module.network.private_subnet_ids}"
        assert cfg.modules["ecs"]["serving_desired_count"] == "${var.serving_desired_count}"
    assert (
        "length(var.availability_zones) >= 2"
        in NETWORK.variables["availability_zones"]["validation"][0]["condition"]
    )
    assert NETWORK.of_type("aws_subnet")["private"]["for_each"] == "${local.zone_index}"
    breaker = service["deployment_circuit_breaker"][0]
    assert breaker["enable"] is True
    assert breaker["rollback"] is True
    assert service["deployment_minimum_healthy_percent"] == 100
    assert service["deployment_maximum_percent"] == 200
    assert service["load_balancer"][0]["container_name"] == "policy"
    assert (
        service["load_balancer"][0]["target_group_arn"]
        == '${aws_lb_target_group.this["serving"].arn}'
    )
    assert service["dynamic"][0]["alarms"]["content"][0]["rollback"] is True


def test_health_checks_on_readyz_and_tls_at_the_front_door():
    groups = ECS.locals["target_groups"]
    assert groups["serving"]["health_path"] == "/readyz"
    tg = ECS.of_type("aws_lb_target_group")["this"]
    assert tg["health_check"][0]["path"] == "${each.value.health_path}"
    assert tg["health_check"][0]["matcher"] == "200"
    listener = ECS.of_type("aws_lb_listener")["this"]
    assert listener["protocol"] == "HTTPS"
    assert ECS.locals["tls_policy"].startswith("ELBSecurityPolicy-TLS13")
    assert ECS.of_type("aws_lb")["this"]["drop_invalid_header_fields"] is True


def test_autoscaling_on_requests_per_target():
    policy = ECS.of_type("aws_appautoscaling_policy")["serving_requests"]
    config_ = policy["target_tracking_scaling_policy_configuration"][0]
    assert (
        config_["predefined_metric_specification"][0]["predefined_metric_type"]
        == "ALBRequestCountPerTarget"
    )
    target = ECS.of_type("aws_appautoscaling_target")["serving"]
    assert target["min_capacity"] == "${var.serving_desired_count}"


def test_the_container_runs_the_verifying_launcher_with_the_public_key_only():
    text = " ".join(
        strings(ECS.of_type("aws_ecs_task_definition")["serving"]["container_definitions"])
    )
    launcher = (
        r'command\s*=\s*\["python", "-m", "bentos\.trading_policy\.launch", var\.bento_tag, '
        r'"--host", "0\.0\.0\.0", "--port", "3000"\]'
    )
    assert re.search(launcher, text), "the command is the launcher: it verifies the bento first"
    assert "TRADEOPS_SIGNING_PUBLIC_KEY" in text
    assert "TRADEOPS_API_TOKENS_FILE" in text
    names = re.findall(r'name\s*=\s*"([A-Z_]+)"', text)
    assert not [n for n in names if "SIGNING_KEY" in n and "PUBLIC" not in n]
    assert not re.search(r"\bsecrets\s*=", text), "no secret is injected into the environment"
    assert "signing_key" not in text


def test_every_container_is_read_only_and_unprivileged():
    for name, task in ECS.of_type("aws_ecs_task_definition").items():
        text = " ".join(strings(task["container_definitions"]))
        containers = len(re.findall(r"\bimage\s*=", text))
        assert len(re.findall(r"readonlyRootFilesystem\s*=\s*true", text)) == containers, name
        assert len(re.findall(r"privileged\s*=\s*false", text)) == containers, name
        assert task["execution_role_arn"] != task["task_role_arn"], name


def test_training_runs_on_gpu_spot_and_drains_on_interruption():
    asg = ECS.of_type("aws_autoscaling_group")["gpu"]
    distribution = asg["mixed_instances_policy"][0]["instances_distribution"][0]
    assert distribution["on_demand_base_capacity"] == 0
    assert distribution["on_demand_percentage_above_base_capacity"] == 0
    assert asg["capacity_rebalance"] is True
    assert asg["protect_from_scale_in"] is True
    provider = ECS.of_type("aws_ecs_capacity_provider")["gpu_spot"]["auto_scaling_group_provider"][
        0
    ]
    assert provider["managed_termination_protection"] == "ENABLED"
    assert provider["managed_draining"] == "ENABLED"
    template = ECS.of_type("aws_launch_template")["gpu"]
    assert template["metadata_options"][0]["http_tokens"] == "required"
    assert template["block_device_mappings"][0]["ebs"][0]["encrypted"] is True
    assert "ECS_ENABLE_SPOT_INSTANCE_DRAINING=true" in " ".join(strings(template["user_data"]))
    training = " ".join(
        strings(ECS.of_type("aws_ecs_task_definition")["training"]["container_definitions"])
    )
    assert 'type = "GPU"' in training


def test_logs_are_encrypted_and_kept_a_year():
    for cfg in configs():
        for name, group in cfg.of_type("aws_cloudwatch_log_group").items():
            assert group["kms_key_id"].startswith("${var.") or group["kms_key_id"].startswith(
                "${module."
            ), name
            assert group["retention_in_days"] == "${var.log_retention_days}", f"{cfg.name}: {name}"
            assert (
                "var.log_retention_days >= 365"
                in cfg.variables["log_retention_days"]["validation"][0]["condition"]
            )


ALARMS = {
    "serving_5xx_rate": "HTTPCode_Target_5XX_Count",
    "serving_p99_latency": "TargetResponseTime",
    "serving_unhealthy_targets": "UnHealthyHostCount",
    "serving_healthy_targets_low": "HealthyHostCount",
}


@pytest.mark.parametrize("alarm", sorted(ALARMS))
def test_serving_alarms_page_through_sns(alarm):
    monitoring = module_config("monitoring")
    body = monitoring.of_type("aws_cloudwatch_metric_alarm")[alarm]
    assert body["alarm_actions"] == ["${aws_sns_topic.alerts.arn}"]
    assert ALARMS[alarm] in " ".join(strings(body))


def test_run_failure_and_drift_alarms_page_through_sns():
    monitoring = module_config("monitoring")
    assert set(monitoring.locals["log_events"]) == {"RunFailures", "DriftAlerts"}
    events = monitoring.of_type("aws_cloudwatch_metric_alarm")["events"]
    assert events["for_each"] == "${local.log_events}"
    assert events["alarm_actions"] == ["${aws_sns_topic.alerts.arn}"]
    assert (
        monitoring.of_type("aws_sns_topic")["alerts"]["kms_master_key_id"]
        == "${var.logs_kms_key_arn}"
    )
    p99 = monitoring.of_type("aws_cloudwatch_metric_alarm")["serving_p99_latency"]
    assert p99["extended_statistic"] == "p99"


def test_the_trail_records_everything_into_the_locked_bucket():
    trail = module_config("monitoring").of_type("aws_cloudtrail")["this"]
    assert trail["is_multi_region_trail"] is True
    assert trail["enable_log_file_validation"] is True
    assert trail["kms_key_id"] == "${var.audit_kms_key_arn}"
    for cfg in [composition()]:
        assert (
            cfg.modules["monitoring"]["audit_bucket_name"]
            == '${module.storage.bucket_names["audit"]}'
        )
        assert cfg.modules["monitoring"]["trail_name"] == "${local.trail_name}"
        assert cfg.modules["storage"]["cloudtrail_trail_name"] == "${local.trail_name}"


CHECKOV_SKIP = re.compile(r"#\s*checkov:skip=([A-Z0-9_]+)(?::(.*))?")


def test_every_checkov_skip_is_inline_with_a_reason():
    skips = []
    for path in sorted(TERRAFORM.rglob("*.tf")):
        for line in path.read_text().splitlines():
            if "checkov" in line.lower():
                match = CHECKOV_SKIP.search(line)
                assert match, f"{path}: {line.strip()}"
                check, reason = match.groups()
                assert re.fullmatch(r"CKV2?_AWS_\d+", check), f"{path}: {check}"
                assert reason, f"{path}: {check} needs its reason"
                assert len(reason.split()) >= 8, f"{path}: {check} needs its reason"
                skips.append(check)
    assert skips, "the skips this test reads exist"
    assert len(skips) <= 12, "skips stay the exception"
    assert not (TERRAFORM / ".checkov.yaml").exists()
    assert not (TERRAFORM / ".checkov.yml").exists()
    assert str(config(TERRAFORM / "modules" / "kms").path).endswith("kms")
