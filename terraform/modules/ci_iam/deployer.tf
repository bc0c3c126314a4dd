# --- deployer: `terraform apply` of envs/<env> --------------------------------------------
# Every statement names this stack's resources by their name prefix. What AWS cannot scope
# before a resource exists (creating a VPC, a key, a task definition) is allowed on "*"
# only in this region, and, where AWS supports it, only with this project's tag.

data "aws_iam_policy_document" "deployer" {
  statement {
    sid       = "WriteThisEnvironmentsState"
    actions   = ["s3:PutObject"]
    resources = ["${var.state_bucket_arn}/${var.state_key_prefix}terraform.tfstate"]
  }

  statement {
    sid = "BucketsOfThisStack"
    actions = [
      "s3:CreateBucket",
      "s3:PutAccelerateConfiguration",
      "s3:PutBucketLogging",
      "s3:PutBucketNotification",
      "s3:PutBucketObjectLockConfiguration",
      "s3:PutBucketOwnershipControls",
      "s3:PutBucketPolicy",
      "s3:PutBucketPublicAccessBlock",
      "s3:PutBucketTagging",
      "s3:PutBucketVersioning",
      "s3:PutEncryptionConfiguration",
      "s3:PutLifecycleConfiguration",
    ]
    resources = [local.arn.buckets]
  }

  statement {
    sid       = "CreateProjectKeys"
    actions   = ["kms:CreateKey", "kms:TagResource"]
    resources = ["*"]

    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/project"
      values   = ["tradeops"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:RequestedRegion"
      values   = [local.region]
    }
  }

  statement {
    sid = "ManageProjectKeys"
    actions = [
      "kms:CreateGrant",
      "kms:EnableKeyRotation",
      "kms:PutKeyPolicy",
      "kms:ScheduleKeyDeletion",
      "kms:TagResource",
      "kms:UntagResource",
      "kms:UpdateKeyDescription",
      "kms:Decrypt",
      "kms:GenerateDataKey",
    ]
    resources = [local.arn.keys]

    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/project"
      values   = ["tradeops"]
    }
  }

  statement {
    sid       = "AliasesOfThisStack"
    actions   = ["kms:CreateAlias", "kms:DeleteAlias", "kms:UpdateAlias"]
    resources = [local.arn.aliases, local.arn.keys]
  }

  statement {
    sid = "NetworkOfThisRegion"
    actions = [
      "ec2:AssociateRouteTable",
      "ec2:AuthorizeSecurityGroupEgress",
      "ec2:AuthorizeSecurityGroupIngress",
      "ec2:CreateFlowLogs",
      "ec2:CreateLaunchTemplate",
      "ec2:CreateLaunchTemplateVersion",
      "ec2:CreateRouteTable",
      "ec2:CreateSecurityGroup",
      "ec2:CreateSubnet",
      "ec2:CreateTags",
      "ec2:CreateVpc",
      "ec2:CreateVpcEndpoint",
      "ec2:DeleteFlowLogs",
      "ec2:DeleteLaunchTemplate",
      "ec2:DeleteLaunchTemplateVersions",
      "ec2:DeleteRouteTable",
      "ec2:DeleteSecurityGroup",
      "ec2:DeleteSubnet",
      "ec2:DeleteTags",
      "ec2:DeleteVpcEndpoints",
      "ec2:DisassociateRouteTable",
      "ec2:ModifyLaunchTemplate",
      "ec2:ModifySecurityGroupRules",
      "ec2:ModifySubnetAttribute",
      "ec2:ModifyVpcAttribute",
      "ec2:ModifyVpcEndpoint",
      "ec2:RevokeSecurityGroupEgress",
      "ec2:RevokeSecurityGroupIngress",
      "ec2:RunInstances",
      "ec2:UpdateSecurityGroupRuleDescriptionsEgress",
      "ec2:UpdateSecurityGroupRuleDescriptionsIngress",
      "ecs:CreateCluster",
      "ecs:DeregisterTaskDefinition",
      "ecs:RegisterTaskDefinition",
      "route53:AssociateVPCWithHostedZone",
      "route53:CreateHostedZone",
      "route53:GetChange",
      "route53:GetHostedZone",
      "servicediscovery:CreatePrivateDnsNamespace",
      "servicediscovery:CreateService",
      "servicediscovery:TagResource",
      "servicediscovery:UpdateService",
      "autoscaling:CreateAutoScalingGroup",
      "application-autoscaling:PutScalingPolicy",
      "application-autoscaling:RegisterScalableTarget",
      "application-autoscaling:TagResource",
    ]
    resources = ["*"]

    condition {
      test     = "StringEquals"
      variable = "aws:RequestedRegion"
      values   = [local.region]
    }
  }

  statement {
    sid = "EcsOfThisStack"
    actions = [
      "ecs:CreateCapacityProvider",
      "ecs:CreateService",
      "ecs:DeleteCapacityProvider",
      "ecs:PutClusterCapacityProviders",
      "ecs:TagResource",
      "ecs:UntagResource",
      "ecs:UpdateCapacityProvider",
      "ecs:UpdateCluster",
      "ecs:UpdateClusterSettings",
      "ecs:UpdateService",
    ]
    resources = [local.arn.ecs]
  }

  statement {
    sid = "LoadBalancerOfThisStack"
    actions = [
      "elasticloadbalancing:AddTags",
      "elasticloadbalancing:CreateListener",
      "elasticloadbalancing:CreateLoadBalancer",
      "elasticloadbalancing:CreateTargetGroup",
      "elasticloadbalancing:DeleteListener",
      "elasticloadbalancing:DeleteTargetGroup",
      "elasticloadbalancing:ModifyListener",
      "elasticloadbalancing:ModifyLoadBalancerAttributes",
      "elasticloadbalancing:ModifyTargetGroup",
      "elasticloadbalancing:ModifyTargetGroupAttributes",
      "elasticloadbalancing:RemoveTags",
      "elasticloadbalancing:SetSecurityGroups",
      "elasticloadbalancing:SetSubnets",
    ]
    resources = [local.arn.load_balancers, local.arn.listeners, local.arn.target_groups]
  }

  statement {
    sid = "GpuAutoScalingGroupOfThisStack"
    actions = [
      "autoscaling:CreateOrUpdateTags",
      "autoscaling:DeleteAutoScalingGroup",
      "autoscaling:DeleteTags",
      "autoscaling:SetInstanceProtection",
      "autoscaling:UpdateAutoScalingGroup",
    ]
    resources = [local.arn.asgs]
  }

  statement {
    sid = "DatabaseOfThisStack"
    actions = [
      "rds:AddTagsToResource",
      "rds:CreateDBInstance",
      "rds:CreateDBParameterGroup",
      "rds:CreateDBSubnetGroup",
      "rds:DeleteDBParameterGroup",
      "rds:ModifyDBInstance",
      "rds:ModifyDBParameterGroup",
      "rds:ModifyDBSubnetGroup",
      "rds:RemoveTagsFromResource",
    ]
    resources = [local.arn.rds]
  }

  statement {
    sid = "RdsManagedMasterSecret"
    actions = [
      "secretsmanager:CreateSecret",
      "secretsmanager:RotateSecret",
      "secretsmanager:TagResource",
    ]
    resources = [local.arn.rds_secrets]
  }

  statement {
    sid = "SecretContainersOfThisStack"
    actions = [
      "secretsmanager:CreateSecret",
      "secretsmanager:DeleteSecret",
      "secretsmanager:TagResource",
      "secretsmanager:UntagResource",
      "secretsmanager:UpdateSecret",
    ]
    resources = [local.arn.secrets]
  }

  statement {
    sid = "RepositoriesOfThisStack"
    actions = [
      "ecr:CreateRepository",
      "ecr:PutImageScanningConfiguration",
      "ecr:PutImageTagMutability",
      "ecr:PutLifecyclePolicy",
      "ecr:TagResource",
      "ecr:UntagResource",
    ]
    resources = [local.arn.repositories]
  }

  statement {
    sid = "LogGroupsOfThisStack"
    actions = [
      "logs:AssociateKmsKey",
      "logs:CreateLogGroup",
      "logs:DeleteMetricFilter",
      "logs:PutMetricFilter",
      "logs:PutRetentionPolicy",
      "logs:TagResource",
      "logs:UntagResource",
    ]
    resources = [local.arn.log_groups, local.arn.rds_log_groups, "${local.arn.log_groups}:*", "${local.arn.rds_log_groups}:*"]
  }

  statement {
    sid       = "AlarmsOfThisStack"
    actions   = ["cloudwatch:DeleteAlarms", "cloudwatch:PutMetricAlarm", "cloudwatch:TagResource", "cloudwatch:UntagResource"]
    resources = [local.arn.alarms]
  }

  statement {
    sid = "TopicsOfThisStack"
    actions = [
      "sns:CreateTopic",
      "sns:SetTopicAttributes",
      "sns:Subscribe",
      "sns:TagResource",
      "sns:Unsubscribe",
    ]
    resources = [local.arn.topics]
  }

  statement {
    sid       = "TrailOfThisStack"
    actions   = ["cloudtrail:AddTags", "cloudtrail:CreateTrail", "cloudtrail:PutEventSelectors", "cloudtrail:StartLogging", "cloudtrail:UpdateTrail"]
    resources = [local.arn.trail]
  }

  statement {
    sid = "RolesOfThisStackOnlyInsideTheBoundary"
    actions = [
      "iam:AttachRolePolicy",
      "iam:CreateRole",
      "iam:DeleteRolePolicy",
      "iam:DetachRolePolicy",
      "iam:PutRolePermissionsBoundary",
      "iam:PutRolePolicy",
    ]
    resources = [local.arn.roles]

    condition {
      test     = "StringEquals"
      variable = "iam:PermissionsBoundary"
      values   = [local.arn.boundary]
    }
  }

  statement {
    sid = "RoleHousekeepingOfThisStack"
    actions = [
      "iam:DeleteRole",
      "iam:TagRole",
      "iam:UntagRole",
      "iam:UpdateAssumeRolePolicy",
      "iam:UpdateRole",
      "iam:UpdateRoleDescription",
    ]
    resources = [local.arn.roles]
  }

  statement {
    sid       = "OnlyTheEnhancedMonitoringManagedPolicy"
    effect    = "Deny"
    actions   = ["iam:AttachRolePolicy"]
    resources = ["*"]

    condition {
      test     = "ArnNotEquals"
      variable = "iam:PolicyARN"
      values   = [local.arn.enhanced_monitoring_policy]
    }
  }

  statement {
    sid = "InstanceProfilesOfThisStack"
    actions = [
      "iam:AddRoleToInstanceProfile",
      "iam:CreateInstanceProfile",
      "iam:DeleteInstanceProfile",
      "iam:RemoveRoleFromInstanceProfile",
      "iam:TagInstanceProfile",
    ]
    resources = [local.arn.profiles]
  }

  statement {
    sid       = "PassThisStacksRoles"
    actions   = ["iam:PassRole"]
    resources = [local.arn.roles]

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ecs-tasks.amazonaws.com", "ec2.amazonaws.com", "vpc-flow-logs.amazonaws.com", "monitoring.rds.amazonaws.com", "cloudtrail.amazonaws.com"]
    }
  }

  statement {
    sid       = "ServiceLinkedRolesOfTheServicesUsed"
    actions   = ["iam:CreateServiceLinkedRole"]
    resources = ["arn:${local.partition}:iam::${local.account_id}:role/aws-service-role/*"]

    condition {
      test     = "StringEquals"
      variable = "iam:AWSServiceName"
      values   = ["ecs.amazonaws.com", "autoscaling.amazonaws.com", "elasticloadbalancing.amazonaws.com", "rds.amazonaws.com", "ecs.application-autoscaling.amazonaws.com"]
    }
  }

  statement {
    sid       = "NeverTheCiRolesOrTheBoundary"
    effect    = "Deny"
    actions   = ["iam:*"]
    resources = [local.arn.ci_roles, local.arn.boundary]
  }

  statement {
    sid       = "NeverStopOrDeleteTheTrail"
    effect    = "Deny"
    actions   = ["cloudtrail:DeleteTrail", "cloudtrail:StopLogging"]
    resources = ["*"]
  }

  statement {
    sid       = "NeverDeleteTheStacksData"
    effect    = "Deny"
    actions   = ["s3:DeleteBucket", "s3:DeleteObject", "s3:DeleteObjectVersion"]
    resources = [local.arn.buckets, local.arn.objects]
  }

  statement {
    sid       = "NeverDeleteDatabasesRepositoriesOrKeysOutright"
    effect    = "Deny"
    actions   = ["rds:DeleteDBInstance", "ecr:DeleteRepository", "kms:DisableKey"]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "deployer" {
  name   = "terraform-apply"
  role   = aws_iam_role.ci["deployer"].id
  policy = data.aws_iam_policy_document.deployer.json
}
