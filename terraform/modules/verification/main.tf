data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  log_group_name = "/aws/codebuild/${var.name}"
  project_arn    = "arn:${data.aws_partition.current.partition}:codebuild:${data.aws_region.current.region}:${data.aws_caller_identity.current.account_id}:project/${var.name}"
  credentials    = var.source_config.credentials
  # s3://bucket/key -> arn:aws:s3:::bucket/key
  bridge_object_arn = var.stdio_bridge.s3_uri == null ? null : "arn:${data.aws_partition.current.partition}:s3:::${trimprefix(var.stdio_bridge.s3_uri, "s3://")}"

  environment_variables = merge(
    {
      REPOSITORY_URI    = var.repository_url
      MCP_TRANSPORT     = "http"
      BRIDGE_ENTRYPOINT = jsonencode(var.stdio_bridge.entrypoint)
      DOCKERFILE        = "Dockerfile"
    },
    var.stdio_bridge.s3_uri == null ? {} : { BRIDGE_S3_URI = var.stdio_bridge.s3_uri },
    var.stdio_bridge.image == null ? {} : { BRIDGE_IMAGE = var.stdio_bridge.image },
  )
}

resource "aws_cloudwatch_log_group" "this" {
  count = var.create ? 1 : 0

  #checkov:skip=CKV_AWS_338:Build logs matter until the verification is recorded; retention is an input (default 30 days).
  #checkov:skip=CKV_AWS_158:Encryption with a customer managed key is optional (kms_key_arn); CloudWatch Logs always encrypts at rest.
  name              = local.log_group_name
  retention_in_days = var.log.retention_days
  kms_key_id        = var.kms_key_arn

  tags = var.tags
}

data "aws_iam_policy_document" "assume" {
  count = var.create ? 1 : 0

  statement {
    sid     = "CodeBuild"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["codebuild.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = [local.project_arn]
    }
  }
}

resource "aws_iam_role" "this" {
  count = var.create ? 1 : 0

  name               = "${var.name}-codebuild"
  description        = "Builds MCP server images and pushes them to ${var.repository_arn}"
  assume_role_policy = data.aws_iam_policy_document.assume[0].json

  tags = var.tags
}

data "aws_iam_policy_document" "this" {
  count = var.create ? 1 : 0

  statement {
    sid       = "WriteBuildLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.this[0].arn}:log-stream:*"]
  }

  # GetAuthorizationToken has no resource-level permissions: AWS accepts only "*".
  statement {
    sid       = "EcrAuth"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  # Push only: no BatchGetImage / GetDownloadUrlForLayer, so a build (whose Dockerfile is
  # untrusted) can never pull another server's image from the shared repository, with or without
  # the daemon's login. DescribeImages reads digests (the retry check), never content.
  statement {
    sid = "PushToThisRepository"
    actions = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:CompleteLayerUpload",
      "ecr:DescribeImages",
      "ecr:InitiateLayerUpload",
      "ecr:PutImage",
      "ecr:UploadLayerPart",
    ]
    resources = [var.repository_arn]
  }

  dynamic "statement" {
    for_each = var.stdio_bridge.image_repository_arn == null ? [] : [var.stdio_bridge.image_repository_arn]

    content {
      sid       = "PullStdioBridgeImage"
      actions   = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
      resources = [statement.value]
    }
  }

  dynamic "statement" {
    for_each = local.bridge_object_arn == null ? [] : [local.bridge_object_arn]

    content {
      sid       = "ReadStdioBridgeBinary"
      actions   = ["s3:GetObject"]
      resources = [statement.value]
    }
  }

  dynamic "statement" {
    for_each = local.credentials.type == "codeconnections" ? [local.credentials.arn] : []

    content {
      sid = "UseSourceConnection"
      actions = [
        "codeconnections:GetConnectionToken",
        "codeconnections:UseConnection",
        "codestar-connections:GetConnectionToken",
        "codestar-connections:UseConnection",
      ]
      resources = [statement.value]
    }
  }

  dynamic "statement" {
    for_each = local.credentials.type == "secrets_manager" ? [local.credentials.arn] : []

    content {
      sid       = "ReadSourceToken"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = [statement.value]
    }
  }

  dynamic "statement" {
    for_each = var.kms_key_arn == null ? [] : [var.kms_key_arn]

    content {
      sid       = "UseKey"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_role_policy" "this" {
  count = var.create ? 1 : 0

  name   = "build-and-push"
  role   = aws_iam_role.this[0].id
  policy = data.aws_iam_policy_document.this[0].json
}

resource "aws_codebuild_project" "this" {
  count = var.create ? 1 : 0

  #checkov:skip=CKV_AWS_316:Privileged mode is required to run the Docker daemon that builds the server's Dockerfile.
  #checkov:skip=CKV_AWS_147:A customer managed key is optional (kms_key_arn); CodeBuild otherwise uses the AWS managed S3 key.
  name                   = var.name
  description            = "Toolshed verification: builds one commit of an MCP server repository and pushes build-<serverId>-<sha12>"
  service_role           = aws_iam_role.this[0].arn
  build_timeout          = var.build_timeout_minutes
  queued_timeout         = var.queued_timeout_minutes
  concurrent_build_limit = var.concurrent_build_limit
  encryption_key         = var.kms_key_arn

  artifacts {
    type = "NO_ARTIFACTS"
  }

  environment {
    compute_type                = var.compute_type
    image                       = var.build_image
    type                        = "LINUX_CONTAINER"
    image_pull_credentials_type = "CODEBUILD"
    privileged_mode             = true

    dynamic "environment_variable" {
      for_each = local.environment_variables

      content {
        name  = environment_variable.key
        value = environment_variable.value
        type  = "PLAINTEXT"
      }
    }
  }

  source {
    type     = "GITHUB"
    location = var.source_config.default_location
    # The project's buildspec, never one from the (untrusted) repository.
    buildspec = file("${path.module}/buildspec.yml")
    # Full clone: the requested commit need not be a branch tip.
    git_clone_depth     = 0
    report_build_status = false

    git_submodules_config {
      fetch_submodules = var.source_config.fetch_submodules
    }

    dynamic "auth" {
      for_each = local.credentials.type == "none" ? [] : [local.credentials]

      content {
        type     = auth.value.type == "codeconnections" ? "CODECONNECTIONS" : "SECRETS_MANAGER"
        resource = auth.value.arn
      }
    }
  }

  logs_config {
    cloudwatch_logs {
      group_name = aws_cloudwatch_log_group.this[0].name
      status     = "ENABLED"
    }

    s3_logs {
      status = "DISABLED"
    }
  }

  tags = var.tags

  depends_on = [aws_iam_role_policy.this]
}
