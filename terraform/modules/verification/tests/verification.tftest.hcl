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
}

variables {
  name           = "toolshed-verify"
  repository_arn = "arn:aws:ecr:eu-west-1:123456789012:repository/toolshed/mcp-servers"
  repository_url = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/toolshed/mcp-servers"
}

run "privileged_docker_build_with_project_buildspec" {
  command = apply

  assert {
    condition     = aws_codebuild_project.this[0].environment[0].privileged_mode
    error_message = "docker builds need privileged mode"
  }
  assert {
    condition     = aws_codebuild_project.this[0].source[0].type == "GITHUB" && aws_codebuild_project.this[0].source[0].git_clone_depth == 0
    error_message = "full GitHub clone so any commit can be checked out"
  }
  assert {
    condition     = strcontains(aws_codebuild_project.this[0].source[0].buildspec, "IMAGE_TAG") && strcontains(aws_codebuild_project.this[0].source[0].buildspec, "TOOLSHED_IMAGE_DIGEST=")
    error_message = "the project's own buildspec tags <serverId>-<sha12> and prints the digest"
  }
  assert {
    condition     = strcontains(aws_codebuild_project.this[0].source[0].buildspec, "INLINE_DOCKERFILE_B64") && strcontains(aws_codebuild_project.this[0].source[0].buildspec, "SOURCE_FINGERPRINT")
    error_message = "the buildspec also builds generated package Dockerfiles (the service sends the same file as the override of package builds)"
  }
  assert {
    condition     = { for v in aws_codebuild_project.this[0].environment[0].environment_variable : v.name => v.value }["REPOSITORY_URI"] == var.repository_url
    error_message = "REPOSITORY_URI defaults to this repository"
  }
  assert {
    condition     = { for v in aws_codebuild_project.this[0].environment[0].environment_variable : v.name => v.value }["MCP_TRANSPORT"] == "http"
    error_message = "MCP_TRANSPORT defaults to http"
  }
  assert {
    condition     = length(aws_codebuild_project.this[0].source[0].auth) == 0
    error_message = "no source credentials by default"
  }
  assert {
    condition     = aws_codebuild_project.this[0].build_timeout == 30 && aws_codebuild_project.this[0].environment[0].compute_type == "BUILD_GENERAL1_SMALL"
    error_message = "timeout and compute size defaults"
  }
  assert {
    condition     = toset(data.aws_iam_policy_document.this[0].statement[2].resources) == toset([var.repository_arn])
    error_message = "the build role pushes to this repository only"
  }
  assert {
    condition     = length(setintersection(toset(data.aws_iam_policy_document.this[0].statement[2].actions), toset(["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]))) == 0
    error_message = "the build role cannot pull from the shared repository (no BatchGetImage / GetDownloadUrlForLayer)"
  }
  assert {
    condition     = length(data.aws_iam_policy_document.this[0].statement) == 3
    error_message = "only logs, ECR auth and this repository without options"
  }
}

run "private_repositories_and_stdio_bridge" {
  command = apply

  variables {
    compute_type          = "BUILD_GENERAL1_MEDIUM"
    build_timeout_minutes = 15
    source_config = {
      credentials = {
        type = "codeconnections"
        arn  = "arn:aws:codeconnections:eu-west-1:123456789012:connection/0000"
      }
    }
    stdio_bridge = {
      s3_uri = "s3://artifacts-bucket/toolshed/stdio-bridge"
    }
  }

  assert {
    condition     = aws_codebuild_project.this[0].source[0].auth[0].type == "CODECONNECTIONS"
    error_message = "CodeConnections credentials"
  }
  assert {
    condition     = { for v in aws_codebuild_project.this[0].environment[0].environment_variable : v.name => v.value }["BRIDGE_S3_URI"] == "s3://artifacts-bucket/toolshed/stdio-bridge"
    error_message = "the bridge location reaches the build"
  }
  assert {
    condition     = contains([for s in data.aws_iam_policy_document.this[0].statement : s.sid], "ReadStdioBridgeBinary") && contains([for s in data.aws_iam_policy_document.this[0].statement : s.sid], "UseSourceConnection")
    error_message = "the role may read the bridge object and use the connection"
  }
  assert {
    condition     = aws_codebuild_project.this[0].build_timeout == 15 && aws_codebuild_project.this[0].environment[0].compute_type == "BUILD_GENERAL1_MEDIUM"
    error_message = "timeout and compute size inputs"
  }
}

run "create_false_creates_nothing" {
  command = plan

  variables {
    create = false
  }

  assert {
    condition     = length(aws_codebuild_project.this) == 0 && length(aws_iam_role.this) == 0 && output.project_name == null
    error_message = "create = false must create nothing"
  }
}

run "rejects_mismatched_credentials" {
  command = plan

  variables {
    source_config = {
      credentials = { type = "secrets_manager", arn = "arn:aws:codeconnections:eu-west-1:123456789012:connection/0000" }
    }
  }

  expect_failures = [var.source_config]
}

run "rejects_unknown_compute_type" {
  command = plan

  variables {
    compute_type = "HUGE"
  }

  expect_failures = [var.compute_type]
}
