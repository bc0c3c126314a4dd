# Non-secret settings of dev: the same architecture as prod, smaller. Account-specific
# values come from the GitHub environment as TF_VAR_* (see envs/prod/terraform.tfvars).
environment           = "dev"
region                = "eu-west-1"
availability_zones    = ["eu-west-1a", "eu-west-1b"]
vpc_cidr              = "10.50.0.0/16"
client_cidrs          = ["10.16.0.0/16"]
operator_cidrs        = ["10.16.0.0/16"]
db_instance_class     = "db.t4g.medium"
audit_retention_days  = 30
serving_desired_count = 2
serving_max_count     = 4
gpu_max_instances     = 2
