# Plans and applies the whole stack against a mocked AWS provider (no account needed):
#   terraform init -backend=false && terraform test
mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_region" {
    defaults = { region = "eu-west-1" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_resource "aws_ecr_repository" {
    defaults = {
      arn            = "arn:aws:ecr:eu-west-1:123456789012:repository/toolshed/mcp-servers"
      repository_url = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/toolshed/mcp-servers"
    }
  }
  mock_resource "aws_ecs_cluster" {
    defaults = { arn = "arn:aws:ecs:eu-west-1:123456789012:cluster/toolshed" }
  }
  mock_resource "aws_dynamodb_table" {
    defaults = { arn = "arn:aws:dynamodb:eu-west-1:123456789012:table/toolshed-table" }
  }
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/toolshed-role" }
  }
  mock_resource "aws_codebuild_project" {
    defaults = { arn = "arn:aws:codebuild:eu-west-1:123456789012:project/toolshed-verify" }
  }
  mock_resource "aws_s3_bucket" {
    defaults = { arn = "arn:aws:s3:::toolshed-docs-123456789012" }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:eu-west-1:123456789012:log-group:/toolshed/log" }
  }
  mock_resource "aws_lambda_function" {
    defaults = { arn = "arn:aws:lambda:eu-west-1:123456789012:function:toolshed-cleanup" }
  }
  mock_resource "aws_sqs_queue" {
    defaults = { arn = "arn:aws:sqs:eu-west-1:123456789012:toolshed-cleanup-dlq" }
  }
  mock_resource "aws_secretsmanager_secret" {
    defaults = { arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:toolshed/openai-api-key-AbCdEf" }
  }
}

variables {
  network = {
    vpc_id     = "vpc-0123456789abcdef0"
    subnet_ids = ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]
  }
}

run "settings_map_has_every_setting" {
  command = apply

  assert {
    condition = toset(keys(output.settings)) == toset([
      "AWS_REGION", "PLAYGROUND_CLUSTER", "AWS_SUBNETS", "AWS_SECURITY_GROUP_ID",
      "TOOLSHED_SERVERS_TABLE", "TOOLSHED_SESSIONS_TABLE", "TOOLSHED_ECR_REPOSITORY_URI",
      "TOOLSHED_CODEBUILD_PROJECT", "TOOLSHED_DOCS_BUCKET", "TOOLSHED_TASK_EXECUTION_ROLE_ARN",
      "TOOLSHED_TASK_ROLE_ARN", "TOOLSHED_LOG_GROUP", "TOOLSHED_ASSIGN_PUBLIC_IP",
      "TOOLSHED_TASK_FAMILY_PREFIX", "TOOLSHED_DEPLOYMENT_ID",
    ])
    error_message = "the settings map must hold exactly the crate's settings (no secret ARN unless created)"
  }
  assert {
    condition     = output.settings.AWS_SUBNETS == "subnet-0123456789abcdef0,subnet-0123456789abcdef1"
    error_message = "AWS_SUBNETS is comma-separated"
  }
  assert {
    condition     = output.settings.TOOLSHED_ASSIGN_PUBLIC_IP == "false" && output.settings.TOOLSHED_TASK_FAMILY_PREFIX == "toolshed"
    error_message = "defaults of assign_public_ip and the family prefix"
  }
  assert {
    condition     = output.settings.TOOLSHED_DEPLOYMENT_ID == "toolshed"
    error_message = "the deployment id defaults to the name"
  }
  assert {
    condition     = output.settings.TOOLSHED_SERVERS_TABLE == "toolshed-servers" && output.settings.TOOLSHED_SESSIONS_TABLE == "toolshed-sessions"
    error_message = "table names"
  }
  assert {
    condition     = output.settings.AWS_REGION == "eu-west-1" && output.settings.PLAYGROUND_CLUSTER == "toolshed"
    error_message = "region and cluster"
  }
  assert {
    condition     = output.cleanup_function_arn == null
    error_message = "no sweeper without a built zip"
  }
  assert {
    condition     = output.service_policy_arn != null
    error_message = "the service policy is created"
  }
}

run "sweeper_and_openai_secret" {
  command = apply

  variables {
    network = {
      vpc_id           = "vpc-0123456789abcdef0"
      subnet_ids       = ["subnet-0123456789abcdef0"]
      assign_public_ip = true
    }
    task_family_prefix = "acme"
    cleanup            = { lambda_zip_path = "tests/fixtures/bootstrap.zip" }
    openai_secret      = { create = true }
  }

  assert {
    condition     = output.settings.TOOLSHED_OPENAI_SECRET_ARN == output.openai_secret_arn
    error_message = "the secret's ARN is a setting when the secret is created"
  }
  assert {
    condition     = output.settings.TOOLSHED_ASSIGN_PUBLIC_IP == "true" && output.settings.TOOLSHED_TASK_FAMILY_PREFIX == "acme"
    error_message = "settings follow the inputs"
  }
  assert {
    condition     = output.cleanup_function_arn != null
    error_message = "the sweeper is created from the zip"
  }
  assert {
    condition     = !contains(module.cleanup.environment_names, "AWS_REGION") && contains(module.cleanup.environment_names, "PLAYGROUND_CLUSTER") && length(module.cleanup.environment_names) == 13
    error_message = "the sweeper gets the settings except Lambda's reserved AWS_REGION"
  }
}

run "create_false_is_a_no_op" {
  command = plan

  variables {
    create = false
  }

  assert {
    condition     = output.settings == {} && output.repository_url == null && output.cluster_arn == null && output.service_policy_arn == null
    error_message = "create = false must create nothing and output an empty settings map"
  }
}

run "rejects_bad_names" {
  command = plan

  variables {
    name = "Toolshed"
  }

  expect_failures = [var.name]
}
