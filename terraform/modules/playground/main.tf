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

  # A task with environment variables gets them from its own secret, which ECS reads with this
  # role when the task starts (container `secrets`). Only per-task secrets: never the kept
  # values of servers and instances, never the service's own secrets. The task role (what the
  # server's code runs as) gets nothing.
  statement {
    sid       = "ReadPerTaskSecrets"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = ["arn:${data.aws_partition.current.partition}:secretsmanager:${data.aws_region.current.region}:${local.account_id}:secret:${var.secrets_prefix}/tasks/*"]
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

locals {
  # Every public IPv4 address: 0.0.0.0/0 minus this network (0/8), RFC 1918 private ranges
  # (10/8, 172.16/12, 192.168/16, so the VPC itself and peered networks), shared address space
  # (100.64/10), loopback (127/8), link-local (169.254/16: instance and task metadata) and
  # multicast/reserved (224/3). Security groups cannot deny, so "internet but not the VPC" is
  # written as these allow rules (51, under the default quota of 60 rules per direction).
  public_ipv4_cidrs = [
    "1.0.0.0/8", "2.0.0.0/7", "4.0.0.0/6", "8.0.0.0/7", "11.0.0.0/8", "12.0.0.0/6", "16.0.0.0/4",
    "32.0.0.0/3", "64.0.0.0/3", "96.0.0.0/6", "100.0.0.0/10", "100.128.0.0/9", "101.0.0.0/8",
    "102.0.0.0/7", "104.0.0.0/5", "112.0.0.0/5", "120.0.0.0/6", "124.0.0.0/7", "126.0.0.0/8",
    "128.0.0.0/3", "160.0.0.0/5", "168.0.0.0/8", "169.0.0.0/9", "169.128.0.0/10", "169.192.0.0/11",
    "169.224.0.0/12", "169.240.0.0/13", "169.248.0.0/14", "169.252.0.0/15", "169.255.0.0/16",
    "170.0.0.0/7", "172.0.0.0/12", "172.32.0.0/11", "172.64.0.0/10", "172.128.0.0/9",
    "173.0.0.0/8", "174.0.0.0/7", "176.0.0.0/4", "192.0.0.0/9", "192.128.0.0/11", "192.160.0.0/13",
    "192.169.0.0/16", "192.170.0.0/15", "192.172.0.0/14", "192.176.0.0/12", "192.192.0.0/10",
    "193.0.0.0/8", "194.0.0.0/7", "196.0.0.0/6", "200.0.0.0/5", "208.0.0.0/4"
  ]
  internet_egress_cidrs = coalesce(var.egress.cidr_blocks, local.public_ipv4_cidrs)
}

resource "aws_vpc_security_group_egress_rule" "this" {
  for_each = var.create ? { for pair in setproduct(local.internet_egress_cidrs, var.egress.ports) : "${pair[0]}:${pair[1]}" => pair } : {}

  security_group_id = aws_security_group.this[0].id
  description       = "Outbound TCP ${each.value[1]} to ${each.value[0]}"
  cidr_ipv4         = each.value[0]
  ip_protocol       = "tcp"
  from_port         = each.value[1]
  to_port           = each.value[1]

  tags = var.tags
}

# Tasks of servers registered with egress `none` (TOOLSHED_NO_EGRESS_SECURITY_GROUP_ID): the same
# ingress, and no egress rule except, when given, HTTPS to the VPC endpoints Fargate pulls the
# image and writes logs through (without them such tasks cannot start: Fargate pulls through the
# task's network interface).
resource "aws_security_group" "no_egress" {
  count = var.create ? 1 : 0

  #checkov:skip=CKV2_AWS_5:Attached at run time: the embedding service passes it to ecs:RunTask (TOOLSHED_NO_EGRESS_SECURITY_GROUP_ID).
  name        = "${var.name}-tasks-no-egress"
  description = "Playground MCP server tasks without egress: server port from the listed sources only"
  vpc_id      = var.vpc_id

  tags = merge(var.tags, { Name = "${var.name}-tasks-no-egress" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "no_egress_from_security_groups" {
  for_each = var.create ? toset(var.ingress.security_group_ids) : toset([])

  security_group_id            = aws_security_group.no_egress[0].id
  description                  = "MCP from ${each.value}"
  referenced_security_group_id = each.value
  ip_protocol                  = "tcp"
  from_port                    = var.server_port
  to_port                      = var.server_port

  tags = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "no_egress_from_cidrs" {
  for_each = var.create ? toset(var.ingress.cidr_blocks) : toset([])

  security_group_id = aws_security_group.no_egress[0].id
  description       = "MCP from ${each.value}"
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = var.server_port
  to_port           = var.server_port

  tags = var.tags
}

resource "aws_vpc_security_group_egress_rule" "no_egress_to_endpoints" {
  for_each = var.create ? toset(var.no_egress_pull.endpoint_security_group_ids) : toset([])

  security_group_id            = aws_security_group.no_egress[0].id
  description                  = "HTTPS to the VPC endpoints of ${each.value} (image pull, logs)"
  referenced_security_group_id = each.value
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443

  tags = var.tags
}

resource "aws_vpc_security_group_egress_rule" "no_egress_to_prefix_lists" {
  for_each = var.create ? toset(var.no_egress_pull.prefix_list_ids) : toset([])

  security_group_id = aws_security_group.no_egress[0].id
  description       = "HTTPS to ${each.value} (the S3 gateway endpoint holding image layers)"
  prefix_list_id    = each.value
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443

  tags = var.tags
}
