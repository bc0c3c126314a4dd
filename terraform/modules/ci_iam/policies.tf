# --- what both CI roles read: the state, and the stack's configuration for a plan --------

locals {
  # Read-only configuration actions a `terraform plan` refresh makes. None returns data
  # (no s3:GetObject, secretsmanager:GetSecretValue or logs:GetLogEvents on "*").
  plan_read_actions = [
    "application-autoscaling:DescribeScalableTargets",
    "application-autoscaling:DescribeScalingPolicies",
    "application-autoscaling:ListTagsForResource",
    "autoscaling:DescribeAutoScalingGroups",
    "autoscaling:DescribeScalingActivities",
    "autoscaling:DescribeTags",
    "cloudtrail:DescribeTrails",
    "cloudtrail:GetEventSelectors",
    "cloudtrail:GetTrail",
    "cloudtrail:GetTrailStatus",
    "cloudtrail:ListTags",
    "cloudwatch:DescribeAlarms",
    "cloudwatch:ListTagsForResource",
    "ec2:DescribeAvailabilityZones",
    "ec2:DescribeFlowLogs",
    "ec2:DescribeLaunchTemplateVersions",
    "ec2:DescribeLaunchTemplates",
    "ec2:DescribeNetworkAcls",
    "ec2:DescribePrefixLists",
    "ec2:DescribeRouteTables",
    "ec2:DescribeSecurityGroupRules",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSubnets",
    "ec2:DescribeTags",
    "ec2:DescribeVpcAttribute",
    "ec2:DescribeVpcEndpoints",
    "ec2:DescribeVpcs",
    "ecr:DescribeImages",
    "ecr:DescribeRepositories",
    "ecr:GetLifecyclePolicy",
    "ecr:GetRepositoryPolicy",
    "ecr:ListTagsForResource",
    "ecs:DescribeCapacityProviders",
    "ecs:DescribeClusters",
    "ecs:DescribeServices",
    "ecs:DescribeTaskDefinition",
    "ecs:ListTagsForResource",
    "elasticloadbalancing:DescribeListenerAttributes",
    "elasticloadbalancing:DescribeListeners",
    "elasticloadbalancing:DescribeLoadBalancerAttributes",
    "elasticloadbalancing:DescribeLoadBalancers",
    "elasticloadbalancing:DescribeRules",
    "elasticloadbalancing:DescribeTags",
    "elasticloadbalancing:DescribeTargetGroupAttributes",
    "elasticloadbalancing:DescribeTargetGroups",
    "iam:GetInstanceProfile",
    "iam:GetOpenIDConnectProvider",
    "iam:GetPolicy",
    "iam:GetPolicyVersion",
    "iam:GetRole",
    "iam:GetRolePolicy",
    "iam:ListAttachedRolePolicies",
    "iam:ListInstanceProfilesForRole",
    "iam:ListRolePolicies",
    "kms:DescribeKey",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:ListAliases",
    "kms:ListResourceTags",
    "logs:DescribeLogGroups",
    "logs:DescribeMetricFilters",
    "logs:ListTagsForResource",
    "logs:ListTagsLogGroup",
    "rds:DescribeDBInstances",
    "rds:DescribeDBParameterGroups",
    "rds:DescribeDBParameters",
    "rds:DescribeDBSubnetGroups",
    "rds:ListTagsForResource",
    "s3:GetAccelerateConfiguration",
    "s3:GetBucketAcl",
    "s3:GetBucketCORS",
    "s3:GetBucketLocation",
    "s3:GetBucketLogging",
    "s3:GetBucketNotification",
    "s3:GetBucketObjectLockConfiguration",
    "s3:GetBucketOwnershipControls",
    "s3:GetBucketPolicy",
    "s3:GetBucketPublicAccessBlock",
    "s3:GetBucketRequestPayment",
    "s3:GetBucketTagging",
    "s3:GetBucketVersioning",
    "s3:GetBucketWebsite",
    "s3:GetEncryptionConfiguration",
    "s3:GetLifecycleConfiguration",
    "s3:GetReplicationConfiguration",
    "secretsmanager:DescribeSecret",
    "secretsmanager:GetResourcePolicy",
    "servicediscovery:GetNamespace",
    "servicediscovery:GetOperation",
    "servicediscovery:GetService",
    "servicediscovery:ListTagsForResource",
    "sns:GetSubscriptionAttributes",
    "sns:GetTopicAttributes",
    "sns:ListSubscriptionsByTopic",
    "sns:ListTagsForResource",
    "sts:GetCallerIdentity",
  ]
}

data "aws_iam_policy_document" "plan" {
  statement {
    sid       = "ReadTheStacksConfiguration"
    actions   = local.plan_read_actions
    resources = ["*"]

    condition {
      test     = "StringEquals"
      variable = "aws:RequestedRegion"
      values   = [local.region, "us-east-1"]
    }
  }

  statement {
    sid       = "EcsAmiParameter"
    actions   = ["ssm:GetParameter", "ssm:GetParameters"]
    resources = [local.arn.ecs_ami_params]
  }

  statement {
    sid       = "ReadThisEnvironmentsState"
    actions   = ["s3:GetObject", "s3:GetObjectVersion"]
    resources = [local.arn.state_objects]
  }

  statement {
    sid       = "ListThisEnvironmentsState"
    actions   = ["s3:ListBucket"]
    resources = [var.state_bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = [var.state_key_prefix, "${var.state_key_prefix}*"]
    }
  }

  statement {
    sid       = "TakeAndReleaseTheStateLock"
    actions   = ["s3:PutObject", "s3:DeleteObject"]
    resources = ["${local.arn.state_objects}.tflock"]
  }

  statement {
    sid       = "StateKey"
    actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
    resources = [var.state_kms_key_arn]
  }

  statement {
    sid       = "ListBucketsForHeadBucket"
    actions   = ["s3:ListBucket"]
    resources = [local.arn.buckets]
  }
}

resource "aws_iam_role_policy" "plan" {
  for_each = aws_iam_role.ci

  name   = "terraform-plan-read"
  role   = each.value.id
  policy = data.aws_iam_policy_document.plan.json
}

# --- release: push signed images, read release bundles, sign -------------------------------

data "aws_iam_policy_document" "release" {
  statement {
    sid       = "EcrLoginHasNoResourceScope"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid = "PushToThisStacksRepositories"
    actions = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:BatchGetImage",
      "ecr:CompleteLayerUpload",
      "ecr:DescribeImageScanFindings",
      "ecr:DescribeImages",
      "ecr:GetDownloadUrlForLayer",
      "ecr:InitiateLayerUpload",
      "ecr:PutImage",
      "ecr:UploadLayerPart",
    ]
    resources = [local.arn.repositories]
  }

  statement {
    sid       = "ReadReleaseBundles"
    actions   = ["s3:GetObject", "s3:GetObjectVersion"]
    resources = ["${local.arn.artifacts}/releases/*"]
  }

  statement {
    sid       = "ListReleaseBundles"
    actions   = ["s3:ListBucket"]
    resources = [local.arn.artifacts]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["releases/*"]
    }
  }

  statement {
    sid       = "ReadTheSigningKey"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [local.arn.signing_key]
  }

  statement {
    sid       = "DecryptThroughSecretsManagerAndS3Only"
    actions   = ["kms:Decrypt"]
    resources = [local.arn.keys]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["secretsmanager.${local.region}.amazonaws.com", "s3.${local.region}.amazonaws.com"]
    }
  }
}

# The reviewed plan is kept next to the state (encrypted, versioned, access-logged) for the
# apply job, which applies exactly that file.
data "aws_iam_policy_document" "store_plans" {
  statement {
    sid       = "StoreTheReviewedPlan"
    actions   = ["s3:PutObject"]
    resources = ["${var.state_bucket_arn}/${var.state_key_prefix}plans/*"]
  }
}

resource "aws_iam_role_policy" "store_plans" {
  name   = "store-reviewed-plans"
  role   = aws_iam_role.ci["release"].id
  policy = data.aws_iam_policy_document.store_plans.json
}

resource "aws_iam_role_policy" "release" {
  name   = "build-sign-push"
  role   = aws_iam_role.ci["release"].id
  policy = data.aws_iam_policy_document.release.json
}
