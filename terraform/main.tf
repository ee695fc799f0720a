data "aws_caller_identity" "current" {}
data "aws_region" "current" {}

locals {
  account_id           = data.aws_caller_identity.current.account_id
  create_openai_secret = var.create && var.openai_secret.create

  # Every setting the Rust crate (toolshed-aws) reads; names listed in scripts/toolshed-settings.txt.
  settings = {
    AWS_REGION                           = data.aws_region.current.region
    PLAYGROUND_CLUSTER                   = module.playground.cluster_name
    AWS_SUBNETS                          = join(",", var.network.subnet_ids)
    AWS_SECURITY_GROUP_ID                = module.playground.security_group_id
    TOOLSHED_NO_EGRESS_SECURITY_GROUP_ID = module.playground.no_egress_security_group_id
    TOOLSHED_SERVERS_TABLE               = module.state.servers_table_name
    TOOLSHED_SESSIONS_TABLE              = module.state.sessions_table_name
    TOOLSHED_ECR_REPOSITORY_URI          = module.image_registry.repository_url
    TOOLSHED_CODEBUILD_PROJECT           = module.verification.project_name
    TOOLSHED_DOCS_BUCKET                 = module.docs.bucket_name
    TOOLSHED_TASK_EXECUTION_ROLE_ARN     = module.playground.task_execution_role_arn
    TOOLSHED_TASK_ROLE_ARN               = module.playground.task_role_arn
    TOOLSHED_LOG_GROUP                   = module.playground.log_group_name
    TOOLSHED_ASSIGN_PUBLIC_IP            = var.network.assign_public_ip ? "true" : "false"
    TOOLSHED_TASK_FAMILY_PREFIX          = var.task_family_prefix
    TOOLSHED_DEPLOYMENT_ID               = coalesce(var.deployment_id, var.name)
    TOOLSHED_SECRETS_PREFIX              = var.secrets_prefix
  }

  # Settings that exist only with optional resources.
  settings_optional = local.create_openai_secret ? {
    TOOLSHED_OPENAI_SECRET_ARN = aws_secretsmanager_secret.openai[0].arn
  } : {}
}

module "image_registry" {
  source = "./modules/image-registry"

  create = var.create
  name   = coalesce(var.registry.repository_name, "${var.name}/mcp-servers")
  tags   = var.tags

  kms_key_arn            = var.kms_key_arn
  force_delete           = var.registry.force_delete
  repository_policy_json = var.registry.repository_policy_json
  lifecycle_rules = {
    untagged_expire_days  = var.registry.untagged_expire_days
    candidate_expire_days = var.registry.candidate_expire_days
  }
}

module "state" {
  source = "./modules/state"

  create = var.create
  name   = var.name
  tags   = var.tags

  kms_key_arn         = var.kms_key_arn
  deletion_protection = var.deletion_protection
}

module "playground" {
  source = "./modules/playground"

  create = var.create
  name   = var.name
  tags   = var.tags

  vpc_id                 = var.network.vpc_id
  server_port            = var.server_port
  repository_arn         = module.image_registry.repository_arn
  repository_kms_key_arn = var.kms_key_arn
  secrets_prefix         = var.secrets_prefix
  container_insights     = var.playground.container_insights
  task_role_policy_json  = var.playground.task_role_policy_json
  ingress = {
    security_group_ids = var.network.ingress_security_group_ids
    cidr_blocks        = var.network.ingress_cidr_blocks
  }
  egress = {
    cidr_blocks = var.network.egress_cidr_blocks
    ports       = var.network.egress_ports
  }
  no_egress_pull = {
    endpoint_security_group_ids = var.network.no_egress_endpoint_security_group_ids
    prefix_list_ids             = var.network.no_egress_prefix_list_ids
  }
  log = {
    retention_days = var.playground.log_retention_days
    kms_key_arn    = var.kms_key_arn
  }
}

module "verification" {
  source = "./modules/verification"

  create = var.create
  name   = "${var.name}-verify"
  tags   = var.tags

  repository_arn         = module.image_registry.repository_arn
  repository_url         = module.image_registry.repository_url
  kms_key_arn            = var.kms_key_arn
  compute_type           = var.verification.compute_type
  build_image            = var.verification.build_image
  build_timeout_minutes  = var.verification.build_timeout_minutes
  queued_timeout_minutes = var.verification.queued_timeout_minutes
  concurrent_build_limit = var.verification.concurrent_build_limit
  stdio_bridge           = var.verification.stdio_bridge
  source_config = {
    credentials = var.verification.source_credentials
  }
  log = {
    retention_days = var.verification.log_retention_days
  }
}

module "docs" {
  source = "./modules/docs"

  create = var.create
  name   = coalesce(var.docs.bucket_name, "${var.name}-docs-${local.account_id}")
  tags   = var.tags

  kms_key_arn    = var.kms_key_arn
  force_destroy  = var.docs.force_destroy
  access_logging = var.docs.access_logging
  lifecycle_rules = {
    noncurrent_version_expiration_days = var.docs.noncurrent_version_expiration_days
  }
}

module "cleanup" {
  source = "./modules/cleanup"

  create = var.create && var.cleanup.lambda_zip_path != null
  name   = "${var.name}-cleanup"
  tags   = var.tags

  lambda_zip_path     = var.cleanup.lambda_zip_path
  architecture        = var.cleanup.architecture
  schedule_expression = var.cleanup.schedule_expression
  timeout_seconds     = var.cleanup.timeout_seconds
  log_retention_days  = var.cleanup.log_retention_days
  cluster_arn         = module.playground.cluster_arn
  sessions_table_arn  = module.state.sessions_table_arn
  servers_table_arn   = module.state.servers_table_arn
  table_kms_key_arn   = var.kms_key_arn
  kms_key_arn         = var.kms_key_arn
  task_family_prefix  = var.task_family_prefix
  secrets_prefix      = var.secrets_prefix
  # Only what a sweep reads (the cluster, the tables, the owner id, the prefixes of per-task
  # leftovers); Lambda sets AWS_REGION.
  environment = {
    for k, v in local.settings : k => v
    if contains(["PLAYGROUND_CLUSTER", "TOOLSHED_SERVERS_TABLE", "TOOLSHED_SESSIONS_TABLE", "TOOLSHED_TASK_FAMILY_PREFIX", "TOOLSHED_DEPLOYMENT_ID", "TOOLSHED_SECRETS_PREFIX"], k)
  }
  alarm = {
    actions = var.cleanup.alarm_actions
  }
}

module "service_permissions" {
  source = "./modules/service-permissions"

  create = var.create && var.service_permissions.create
  name   = "${var.name}-service"
  tags   = var.tags

  attach_to_role_names  = var.service_permissions.attach_to_role_names
  cluster_arn           = module.playground.cluster_arn
  task_family_prefix    = var.task_family_prefix
  secrets_prefix        = var.secrets_prefix
  task_role_arns        = [module.playground.task_execution_role_arn, module.playground.task_role_arn]
  repository_arn        = module.image_registry.repository_arn
  codebuild_project_arn = module.verification.project_arn
  docs_bucket_arn       = module.docs.bucket_arn
  log_group_arns        = compact([module.playground.log_group_arn, module.verification.log_group_arn])
  openai_secret_arn     = try(aws_secretsmanager_secret.openai[0].arn, null)
  kms_key_arns          = compact([var.kms_key_arn])
  table_arns = {
    servers  = module.state.servers_table_arn
    sessions = module.state.sessions_table_arn
  }
}

resource "aws_secretsmanager_secret" "openai" {
  count = local.create_openai_secret ? 1 : 0

  #checkov:skip=CKV2_AWS_57:An OpenAI API key is rotated at OpenAI, not by a Secrets Manager rotation Lambda.
  #checkov:skip=CKV_AWS_149:A customer managed key is optional (kms_key_arn); the AWS managed key is used otherwise.
  name                    = coalesce(var.openai_secret.name, "${var.name}/openai-api-key")
  description             = "OpenAI API key of the Toolshed metadata generator (value set outside Terraform)"
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = var.openai_secret.recovery_window_in_days

  tags = var.tags
}
