# Non-secret settings of prod. Account-specific values come from the GitHub environment
# as TF_VAR_* (account_id, permissions_boundary_arn, certificate_arn, signing_public_key);
# CI passes image_tags and bento_tag for what it just built and signed.
environment           = "prod"
region                = "eu-west-1"
availability_zones    = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
vpc_cidr              = "10.40.0.0/16"
client_cidrs          = ["10.0.0.0/12"]
operator_cidrs        = ["10.16.0.0/16"]
db_instance_class     = "db.r7g.large"
audit_retention_days  = 2557
serving_desired_count = 3
serving_max_count     = 24
gpu_max_instances     = 8
