locals {
  # arn:<p>:ecs:<region>:<account>:cluster/<name>
  arn_parts          = split(":", coalesce(var.cluster_arn, "arn:aws:ecs:none:000000000000:cluster/none"))
  ecs_arn_prefix     = join(":", slice(local.arn_parts, 0, 5))
  cluster_name       = element(split("/", local.arn_parts[5]), 1)
  task_arns          = "${local.ecs_arn_prefix}:task/${local.cluster_name}/*"
  task_families_arns = "${local.ecs_arn_prefix}:task-definition/${var.task_family_prefix}-*:*"
  # Tasks with environment variables run their own family, `<prefix>_task_<token>`.
  per_task_families_arns = "${local.ecs_arn_prefix}:task-definition/${var.task_family_prefix}_task_*:*"
  region                 = local.arn_parts[3]
  secrets_arn_prefix     = "arn:${local.arn_parts[1]}:secretsmanager:${local.region}:${local.arn_parts[4]}:secret:${var.secrets_prefix}"
}

data "aws_iam_policy_document" "this" {
  count = var.create ? 1 : 0

  # RegisterTaskDefinition and DescribeTaskDefinition have no resource-level permissions: AWS
  # accepts only "*". The families that can run are limited where they are used: RunTask below.
  # (The runner describes a family before registering it, to reuse an identical revision.)
  statement {
    sid       = "RegisterTaskDefinitions"
    actions   = ["ecs:DescribeTaskDefinition", "ecs:RegisterTaskDefinition"]
    resources = ["*"]
  }

  statement {
    sid       = "RunOurFamiliesInThisCluster"
    actions   = ["ecs:RunTask"]
    resources = [local.task_families_arns, local.per_task_families_arns]

    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = [var.cluster_arn]
    }
  }

  statement {
    sid       = "TagOnCreate"
    actions   = ["ecs:TagResource"]
    resources = [local.task_arns, local.task_families_arns, local.per_task_families_arns]

    condition {
      test     = "StringEquals"
      variable = "ecs:CreateAction"
      values   = ["RunTask", "RegisterTaskDefinition"]
    }
  }

  statement {
    sid       = "DescribeAndStopTasksOfThisCluster"
    actions   = ["ecs:DescribeTasks", "ecs:StopTask"]
    resources = [local.task_arns]

    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = [var.cluster_arn]
    }
  }

  # ListTasks has no task resource: AWS scopes it with the ecs:cluster condition only.
  statement {
    sid       = "ListTasksOfThisCluster"
    actions   = ["ecs:ListTasks"]
    resources = ["*"]

    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = [var.cluster_arn]
    }
  }

  # A stopped task's own family (a task started with an environment) is deregistered and
  # deleted; only those families. ListTaskDefinitions has no resource: AWS accepts only "*".
  statement {
    sid       = "RemovePerTaskTaskDefinitions"
    actions   = ["ecs:DeleteTaskDefinitions", "ecs:DeregisterTaskDefinition"]
    resources = [local.per_task_families_arns]
  }

  statement {
    sid       = "ListTaskDefinitions"
    actions   = ["ecs:ListTaskDefinitions"]
    resources = ["*"]
  }

  # Per-task secrets (values of a task's environment, deleted when it stops) and kept values
  # (a server's test values, an instance's environment). ARNs end in a random suffix: `/*`
  # covers it.
  statement {
    sid = "OwnSecrets"
    actions = [
      "secretsmanager:CreateSecret",
      "secretsmanager:DeleteSecret",
      "secretsmanager:GetSecretValue",
      "secretsmanager:PutSecretValue",
      "secretsmanager:TagResource",
    ]
    resources = [
      "${local.secrets_arn_prefix}/tasks/*",
      "${local.secrets_arn_prefix}/servers/*",
      "${local.secrets_arn_prefix}/instances/*",
    ]
  }

  # ListSecrets has no resource-level permissions: the sweep lists `<prefix>/tasks/` to find
  # the secrets of tasks that no longer run.
  statement {
    sid       = "FindLeftoverSecrets"
    actions   = ["secretsmanager:ListSecrets"]
    resources = ["*"]
  }

  statement {
    sid       = "PassTheTwoTaskRoles"
    actions   = ["iam:PassRole"]
    resources = var.task_role_arns

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ecs-tasks.amazonaws.com"]
    }
  }

  statement {
    sid       = "VerificationBuilds"
    actions   = ["codebuild:StartBuild", "codebuild:BatchGetBuilds"]
    resources = [var.codebuild_project_arn]
  }

  statement {
    sid       = "ResolveImages"
    actions   = ["ecr:DescribeImages", "ecr:BatchGetImage"]
    resources = [var.repository_arn]
  }

  # Items, queries and transactions (TransactWriteItems is authorised per item action).
  statement {
    sid = "State"
    actions = [
      "dynamodb:BatchGetItem",
      "dynamodb:ConditionCheckItem",
      "dynamodb:DeleteItem",
      "dynamodb:GetItem",
      "dynamodb:PutItem",
      "dynamodb:Query",
      "dynamodb:UpdateItem",
    ]
    resources = [
      var.table_arns.servers,
      "${var.table_arns.servers}/index/*",
      var.table_arns.sessions,
      "${var.table_arns.sessions}/index/*",
    ]
  }

  # Listing servers in id order reads the whole (small) servers table.
  statement {
    sid       = "ListServers"
    actions   = ["dynamodb:Scan"]
    resources = [var.table_arns.servers]
  }

  statement {
    sid       = "Docs"
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = ["${var.docs_bucket_arn}/docs/*"]
  }

  # Without ListBucket, S3 answers GetObject of a missing key with 403 instead of 404, and the
  # adapter could not tell "no docs yet" from "access denied".
  statement {
    sid       = "DocsList"
    actions   = ["s3:ListBucket"]
    resources = [var.docs_bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["docs/*"]
    }
  }

  dynamic "statement" {
    for_each = length(var.log_group_arns) == 0 ? [] : [1]

    content {
      sid       = "ReadLogs"
      actions   = ["logs:FilterLogEvents", "logs:GetLogEvents"]
      resources = flatten([for a in var.log_group_arns : [a, "${a}:log-stream:*"]])
    }
  }

  dynamic "statement" {
    for_each = var.openai_secret_arn == null ? [] : [var.openai_secret_arn]

    content {
      sid       = "ReadOpenAiKey"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = [statement.value]
    }
  }

  dynamic "statement" {
    for_each = length(var.kms_key_arns) == 0 ? [] : [1]

    content {
      sid       = "UseKeysThroughServices"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = var.kms_key_arns

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values = [
          "dynamodb.${local.region}.amazonaws.com",
          "s3.${local.region}.amazonaws.com",
          "secretsmanager.${local.region}.amazonaws.com",
        ]
      }
    }
  }
}

resource "aws_iam_policy" "this" {
  count = var.create ? 1 : 0

  name        = var.name
  description = "What a service embedding the Toolshed SDK needs: ECS tasks of ${local.cluster_name}, the state tables, the image repository, the verification project and the docs bucket"
  policy      = data.aws_iam_policy_document.this[0].json

  tags = var.tags
}

resource "aws_iam_role_policy_attachment" "this" {
  for_each = var.create ? toset(var.attach_to_role_names) : toset([])

  role       = each.value
  policy_arn = aws_iam_policy.this[0].arn
}
