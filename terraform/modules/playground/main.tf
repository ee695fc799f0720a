data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  log_group_name = "/toolshed/${var.name}/playground"
  account_id     = data.aws_caller_identity.current.account_id
}

resource "aws_ecs_cluster" "this" {
  count = var.create ? 1 : 0

  #checkov:skip=CKV_AWS_65:Container Insights is the container_insights input (default "enabled"); checkov cannot resolve an optional() default through the root module.
  name = var.name

  setting {
    name  = "containerInsights"
    value = var.container_insights
  }

  tags = var.tags
}

resource "aws_cloudwatch_log_group" "this" {
  count = var.create ? 1 : 0

  #checkov:skip=CKV_AWS_338:Playground output is short-lived debugging data; retention is an input (default 30 days), a year would only add cost.
  #checkov:skip=CKV_AWS_158:Encryption with a customer managed key is optional (log.kms_key_arn); CloudWatch Logs always encrypts at rest.
  name              = local.log_group_name
  retention_in_days = var.log.retention_days
  kms_key_id        = var.log.kms_key_arn

  tags = var.tags
}

# The execution role trusts ECS tasks with AWS's documented trust policy: AWS documents the
# aws:SourceAccount / aws:SourceArn confused-deputy conditions for the task role only.
data "aws_iam_policy_document" "assume_execution" {
  count = var.create ? 1 : 0

  statement {
    sid     = "EcsTasks"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

# The task role may be assumed only by ECS tasks of this account and region.
data "aws_iam_policy_document" "assume_task" {
  count = var.create ? 1 : 0

  statement {
    sid     = "EcsTasks"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${data.aws_partition.current.partition}:ecs:${data.aws_region.current.region}:${local.account_id}:*"]
    }
  }
}

resource "aws_iam_role" "task_execution" {
  count = var.create ? 1 : 0

  name               = "${var.name}-task-execution"
  description        = "Pulls playground images from ${var.repository_arn} and writes to ${local.log_group_name}"
  assume_role_policy = data.aws_iam_policy_document.assume_execution[0].json

  tags = var.tags
}

data "aws_iam_policy_document" "task_execution" {
  count = var.create ? 1 : 0

  # GetAuthorizationToken has no resource-level permissions: AWS accepts only "*".
  statement {
    sid       = "EcrAuth"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid = "PullFromThisRepository"
    actions = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:BatchGetImage",
      "ecr:GetDownloadUrlForLayer",
    ]
    resources = [var.repository_arn]
  }

  statement {
    sid       = "WriteToThisLogGroup"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.this[0].arn}:log-stream:*"]
  }

  dynamic "statement" {
    for_each = var.repository_kms_key_arn == null ? [] : [var.repository_kms_key_arn]

    content {
      sid       = "DecryptImageLayers"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["ecr.${data.aws_region.current.region}.amazonaws.com"]
      }
    }
  }
}

resource "aws_iam_role_policy" "task_execution" {
  count = var.create ? 1 : 0

  name   = "pull-and-log"
  role   = aws_iam_role.task_execution[0].id
  policy = data.aws_iam_policy_document.task_execution[0].json
}

# The identity of the MCP server itself: no permissions unless the consumer grants some.
resource "aws_iam_role" "task" {
  count = var.create ? 1 : 0

  name               = "${var.name}-task"
  description        = "Identity of playground MCP servers (no permissions by default)"
  assume_role_policy = data.aws_iam_policy_document.assume_task[0].json

  tags = var.tags
}

resource "aws_iam_role_policy" "task" {
  count = var.create && var.task_role_policy_json != null ? 1 : 0

  name   = "server"
  role   = aws_iam_role.task[0].id
  policy = var.task_role_policy_json
}

resource "aws_security_group" "this" {
  count = var.create ? 1 : 0

  #checkov:skip=CKV2_AWS_5:Attached at run time: the embedding service passes it to ecs:RunTask (AWS_SECURITY_GROUP_ID).
  name        = "${var.name}-tasks"
  description = "Playground MCP server tasks: server port from the listed sources only"
  vpc_id      = var.vpc_id

  tags = merge(var.tags, { Name = "${var.name}-tasks" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "from_security_groups" {
  for_each = var.create ? toset(var.ingress.security_group_ids) : toset([])

  security_group_id            = aws_security_group.this[0].id
  description                  = "MCP from ${each.value}"
  referenced_security_group_id = each.value
  ip_protocol                  = "tcp"
  from_port                    = var.server_port
  to_port                      = var.server_port

  tags = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "from_cidrs" {
  for_each = var.create ? toset(var.ingress.cidr_blocks) : toset([])

  security_group_id = aws_security_group.this[0].id
  description       = "MCP from ${each.value}"
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = var.server_port
  to_port           = var.server_port

  tags = var.tags
}

resource "aws_vpc_security_group_egress_rule" "this" {
  for_each = var.create ? { for pair in setproduct(var.egress.cidr_blocks, var.egress.ports) : "${pair[0]}:${pair[1]}" => pair } : {}

  security_group_id = aws_security_group.this[0].id
  description       = "Outbound TCP ${each.value[1]} to ${each.value[0]}"
  cidr_ipv4         = each.value[0]
  ip_protocol       = "tcp"
  from_port         = each.value[1]
  to_port           = each.value[1]

  tags = var.tags
}
