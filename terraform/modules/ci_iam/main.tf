# Who may change this environment from CI, and how far:
#   <name>-ci-release   GitHub environment "release" (main only): build, sign, push images, plan
#   <name>-ci-deployer  GitHub environment "production" (main only, required reviewers): apply
# Both are assumable only with a GitHub OIDC token for this repository and that
# environment: no access keys exist. Every role the deployer creates must carry the
# workload permissions boundary, and the deployer cannot touch the CI roles, the boundary
# or the trail.

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.name
  partition  = data.aws_partition.current.partition
  oidc_host  = "token.actions.githubusercontent.com"

  oidc_provider_arn = var.create_oidc_provider ? aws_iam_openid_connect_provider.github[0].arn : "arn:${local.partition}:iam::${local.account_id}:oidc-provider/${local.oidc_host}"

  arn = {
    buckets                    = "arn:${local.partition}:s3:::${var.name}-*"
    objects                    = "arn:${local.partition}:s3:::${var.name}-*/*"
    artifacts                  = "arn:${local.partition}:s3:::${var.name}-artifacts-${local.account_id}"
    keys                       = "arn:${local.partition}:kms:${local.region}:${local.account_id}:key/*"
    aliases                    = "arn:${local.partition}:kms:${local.region}:${local.account_id}:alias/${var.name}-*"
    roles                      = "arn:${local.partition}:iam::${local.account_id}:role/${var.name}-*"
    ci_roles                   = "arn:${local.partition}:iam::${local.account_id}:role/${var.name}-ci-*"
    profiles                   = "arn:${local.partition}:iam::${local.account_id}:instance-profile/${var.name}-*"
    repositories               = "arn:${local.partition}:ecr:${local.region}:${local.account_id}:repository/${var.name}/*"
    secrets                    = "arn:${local.partition}:secretsmanager:${local.region}:${local.account_id}:secret:${var.name}/*"
    rds_secrets                = "arn:${local.partition}:secretsmanager:${local.region}:${local.account_id}:secret:rds!*"
    signing_key                = "arn:${local.partition}:secretsmanager:${local.region}:${local.account_id}:secret:${var.name}/signing/private-key-*"
    log_groups                 = "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/tradeops/${var.name}/*"
    rds_log_groups             = "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/aws/rds/instance/${var.name}/*"
    alarms                     = "arn:${local.partition}:cloudwatch:${local.region}:${local.account_id}:alarm:${var.name}-*"
    topics                     = "arn:${local.partition}:sns:${local.region}:${local.account_id}:${var.name}-*"
    trail                      = "arn:${local.partition}:cloudtrail:${local.region}:${local.account_id}:trail/${var.name}-*"
    ecs                        = "arn:${local.partition}:ecs:${local.region}:${local.account_id}:*"
    load_balancers             = "arn:${local.partition}:elasticloadbalancing:${local.region}:${local.account_id}:loadbalancer/app/${var.name}/*"
    listeners                  = "arn:${local.partition}:elasticloadbalancing:${local.region}:${local.account_id}:listener/app/${var.name}/*"
    target_groups              = "arn:${local.partition}:elasticloadbalancing:${local.region}:${local.account_id}:targetgroup/${var.name}-*"
    asgs                       = "arn:${local.partition}:autoscaling:${local.region}:${local.account_id}:autoScalingGroup:*:autoScalingGroupName/${var.name}-*"
    rds                        = "arn:${local.partition}:rds:${local.region}:${local.account_id}:*:${var.name}*"
    boundary                   = "arn:${local.partition}:iam::${local.account_id}:policy/${var.name}-workload-boundary"
    ecs_ami_params             = "arn:${local.partition}:ssm:${local.region}::parameter/aws/service/ecs/*"
    state_objects              = "${var.state_bucket_arn}/${var.state_key_prefix}*"
    enhanced_monitoring_policy = "arn:${local.partition}:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
  }
}

resource "aws_iam_openid_connect_provider" "github" {
  count = var.create_oidc_provider ? 1 : 0

  url             = "https://${local.oidc_host}"
  client_id_list  = ["sts.amazonaws.com"]
  thumbprint_list = ["6938fd4d98bab03faadb97b34396831e3780aea1", "1c58a3a8518e8759bf075b76b750d4f2df264fcd"]
  tags            = var.tags
}

data "aws_iam_policy_document" "github_assume" {
  for_each = {
    release  = var.release_environment
    deployer = var.deploy_environment
  }

  statement {
    sid     = "GitHubActionsOfThisRepositoryInTheEnvironment"
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = [local.oidc_provider_arn]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.oidc_host}:aud"
      values   = ["sts.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.oidc_host}:sub"
      values   = ["repo:${var.github_repository}:environment:${each.value}"]
    }
  }
}

resource "aws_iam_role" "ci" {
  for_each = data.aws_iam_policy_document.github_assume

  name                 = "${var.name}-ci-${each.key}"
  description          = "GitHub Actions, ${var.github_repository}, environment ${each.key == "release" ? var.release_environment : var.deploy_environment}"
  assume_role_policy   = each.value.json
  max_session_duration = 3600
  tags                 = merge(var.tags, { component = "ci-${each.key}" })
}
