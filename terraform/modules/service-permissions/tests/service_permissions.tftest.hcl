mock_provider "aws" {}

variables {
  name                  = "toolshed-service"
  cluster_arn           = "arn:aws:ecs:eu-west-1:123456789012:cluster/toolshed"
  task_role_arns        = ["arn:aws:iam::123456789012:role/toolshed-task-execution", "arn:aws:iam::123456789012:role/toolshed-task"]
  repository_arn        = "arn:aws:ecr:eu-west-1:123456789012:repository/toolshed/mcp-servers"
  codebuild_project_arn = "arn:aws:codebuild:eu-west-1:123456789012:project/toolshed-verify"
  docs_bucket_arn       = "arn:aws:s3:::toolshed-docs"
  table_arns = {
    servers  = "arn:aws:dynamodb:eu-west-1:123456789012:table/toolshed-servers"
    sessions = "arn:aws:dynamodb:eu-west-1:123456789012:table/toolshed-sessions"
  }
  attach_to_role_names = ["my-service"]
}

run "scoped_statements" {
  command = apply

  assert {
    condition     = toset(one([for s in data.aws_iam_policy_document.this[0].statement : s if s.sid == "RunOurFamiliesInThisCluster"]).resources) == toset(["arn:aws:ecs:eu-west-1:123456789012:task-definition/toolshed-*:*"])
    error_message = "RunTask only on <prefix>-* families"
  }
  assert {
    condition     = toset(one([for s in data.aws_iam_policy_document.this[0].statement : s if s.sid == "PassTheTwoTaskRoles"]).resources) == toset(var.task_role_arns)
    error_message = "PassRole on the two task roles only"
  }
  assert {
    condition     = toset(one(one([for s in data.aws_iam_policy_document.this[0].statement : s if s.sid == "PassTheTwoTaskRoles"]).condition).values) == toset(["ecs-tasks.amazonaws.com"])
    error_message = "PassRole only to ECS tasks"
  }
  assert {
    condition     = toset(one([for s in data.aws_iam_policy_document.this[0].statement : s if s.sid == "TagOnCreate"]).resources) == toset(["arn:aws:ecs:eu-west-1:123456789012:task/toolshed/*", "arn:aws:ecs:eu-west-1:123456789012:task-definition/toolshed-*:*"])
    error_message = "tagging only on create, our tasks and families"
  }
  assert {
    condition     = toset(one([for s in data.aws_iam_policy_document.this[0].statement : s if s.sid == "Docs"]).resources) == toset(["arn:aws:s3:::toolshed-docs/docs/*"])
    error_message = "docs/* of the bucket only"
  }
  assert {
    condition     = [for s in data.aws_iam_policy_document.this[0].statement : s.sid if contains(s.resources, "*")] == ["RegisterTaskDefinitions", "ListTasksOfThisCluster"]
    error_message = "\"*\" only where AWS has no resource-level permission"
  }
  assert {
    condition     = length(aws_iam_role_policy_attachment.this) == 1
    error_message = "attached to the given role"
  }
}

run "custom_family_prefix_and_secret" {
  command = apply

  variables {
    task_family_prefix = "acme"
    openai_secret_arn  = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:toolshed/openai-api-key-AbCdEf"
  }

  assert {
    condition     = toset(one([for s in data.aws_iam_policy_document.this[0].statement : s if s.sid == "RunOurFamiliesInThisCluster"]).resources) == toset(["arn:aws:ecs:eu-west-1:123456789012:task-definition/acme-*:*"])
    error_message = "RunTask follows the family prefix"
  }
  assert {
    condition     = toset(one([for s in data.aws_iam_policy_document.this[0].statement : s if s.sid == "ReadOpenAiKey"]).resources) == toset([var.openai_secret_arn])
    error_message = "the secret is readable when given"
  }
}

run "create_false_creates_nothing" {
  command = plan

  variables {
    create = false
  }

  assert {
    condition     = length(aws_iam_policy.this) == 0 && length(aws_iam_role_policy_attachment.this) == 0 && output.policy_arn == null
    error_message = "create = false must create nothing"
  }
}

run "rejects_a_third_role" {
  command = plan

  variables {
    task_role_arns = ["arn:aws:iam::123456789012:role/a", "arn:aws:iam::123456789012:role/b", "arn:aws:iam::123456789012:role/c"]
  }

  expect_failures = [var.task_role_arns]
}
