data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  # arn:aws:ecs:<region>:<account>:cluster/<name> -> tasks are arn:aws:ecs:<region>:<account>:task/<name>/<id>
  cluster_arn  = coalesce(var.cluster_arn, "arn:aws:ecs:none:000000000000:cluster/none")
  cluster_name = element(split("/", local.cluster_arn), 1)
  tasks_arn    = "${replace(local.cluster_arn, ":cluster/", ":task/")}/*"
  partition    = element(split(":", local.cluster_arn), 1)
  region       = element(split(":", local.cluster_arn), 3)
  account      = element(split(":", local.cluster_arn), 4)
  # Tasks started with an environment run their own family `<prefix>_task_<token>`.
  per_task_families_arns = "arn:${local.partition}:ecs:${local.region}:${local.account}:task-definition/${var.task_family_prefix}_task_*:*"
}

resource "aws_cloudwatch_log_group" "this" {
  count = var.create ? 1 : 0

  #checkov:skip=CKV_AWS_338:Sweep logs are operational; retention is an input (default 14 days).
  #checkov:skip=CKV_AWS_158:Encryption with a customer managed key is optional (kms_key_arn); CloudWatch Logs always encrypts at rest.
  name              = "/aws/lambda/${var.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn

  tags = var.tags
}

resource "aws_sqs_queue" "dlq" {
  count = var.create ? 1 : 0

  name                      = "${var.name}-dlq"
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = var.kms_key_arn == null ? true : null
  kms_master_key_id         = var.kms_key_arn

  tags = var.tags
}

# ------------------------------------------------------------------ function role
# AWS documents the Lambda execution role trust policy without conditions; keep it that way.
data "aws_iam_policy_document" "lambda_assume" {
  count = var.create ? 1 : 0

  statement {
    sid     = "Lambda"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "lambda" {
  count = var.create ? 1 : 0

  name               = "${var.name}-lambda"
  description        = "Toolshed session sweeper: stops expired playground tasks of ${local.cluster_name}"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume[0].json

  tags = var.tags
}

data "aws_iam_policy_document" "lambda" {
  count = var.create ? 1 : 0

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

  statement {
    sid       = "DescribeAndStopTasksOfThisCluster"
    actions   = ["ecs:DescribeTasks", "ecs:StopTask"]
    resources = [local.tasks_arn]

    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = [var.cluster_arn]
    }
  }

  # Leftovers of tasks started with an environment (their secret and own task definition family
  # `<prefix>_task_*`), when stopping the task did not remove them. AWS accepts only "*" for
  # ListSecrets and ListTaskDefinitions.
  statement {
    sid       = "FindLeftovers"
    actions   = ["ecs:ListTaskDefinitions", "secretsmanager:ListSecrets"]
    resources = ["*"]
  }

  statement {
    sid       = "RemoveLeftoverTaskDefinitions"
    actions   = ["ecs:DeleteTaskDefinitions", "ecs:DeregisterTaskDefinition"]
    resources = [local.per_task_families_arns]
  }

  statement {
    sid       = "DeleteLeftoverSecrets"
    actions   = ["secretsmanager:DeleteSecret"]
    resources = ["arn:${local.partition}:secretsmanager:${local.region}:${local.account}:secret:${var.secrets_prefix}/tasks/*"]
  }

  statement {
    sid = "EndSessions"
    actions = [
      "dynamodb:ConditionCheckItem",
      "dynamodb:GetItem",
      "dynamodb:Query",
      "dynamodb:UpdateItem",
    ]
    resources = [
      var.sessions_table_arn,
      "${var.sessions_table_arn}/index/live-by-expiry",
    ]
  }

  # Task state events and the status refresh read sessions in batches and, for an event that
  # carries only the task's address, the server's transport (port and path).
  statement {
    sid       = "ReadSessionsInBatches"
    actions   = ["dynamodb:BatchGetItem"]
    resources = [var.sessions_table_arn]
  }

  dynamic "statement" {
    for_each = var.servers_table_arn == null ? [] : [var.servers_table_arn]

    content {
      sid       = "ReadServerTransport"
      actions   = ["dynamodb:GetItem"]
      resources = [statement.value]
    }
  }

  statement {
    sid       = "WriteOwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.this[0].arn}:log-stream:*"]
  }

  statement {
    sid       = "DeadLetter"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.dlq[0].arn]
  }

  dynamic "statement" {
    for_each = distinct(compact([var.kms_key_arn, var.table_kms_key_arn]))

    content {
      sid       = "UseKey${statement.key}"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_role_policy" "lambda" {
  count = var.create ? 1 : 0

  name   = "sweep"
  role   = aws_iam_role.lambda[0].id
  policy = data.aws_iam_policy_document.lambda[0].json
}

# ------------------------------------------------------------------ function
resource "aws_lambda_function" "this" {
  count = var.create ? 1 : 0

  #checkov:skip=CKV_AWS_117:The sweeper calls only AWS APIs; a VPC would need NAT or endpoints for no isolation gain.
  #checkov:skip=CKV_AWS_272:Code signing needs a signing profile the consumer owns; the zip is built from this repository.
  #checkov:skip=CKV_AWS_173:The environment holds resource names only, never secrets; kms_key_arn encrypts it when given.
  #checkov:skip=CKV_AWS_50:X-Ray adds cost per invocation (every minute) and the sweep logs its report; enable per deployment if wanted.
  function_name = var.name
  description   = "Toolshed: stops expired playground sessions (tasks tagged toolshed.managed)"
  role          = aws_iam_role.lambda[0].arn
  runtime       = "provided.al2023"
  handler       = "bootstrap"
  architectures = [var.architecture]
  filename      = var.lambda_zip_path
  # Redeploy when the zip changes.
  source_code_hash = filebase64sha256(var.lambda_zip_path)
  timeout          = var.timeout_seconds
  memory_size      = var.memory_size
  kms_key_arn      = var.kms_key_arn
  # A few at a time: task state events arrive while a sweep runs. Sweeps are safe side by side
  # (every stop and end is idempotent), and the schedule starts one a minute.
  reserved_concurrent_executions = var.task_state_events ? var.event_concurrency : 1

  environment {
    variables = var.environment
  }

  dead_letter_config {
    target_arn = aws_sqs_queue.dlq[0].arn
  }

  logging_config {
    log_format = "JSON"
    log_group  = aws_cloudwatch_log_group.this[0].name
  }

  tags = var.tags

  depends_on = [aws_iam_role_policy.lambda]
}

# A failed sweep is not retried: the next scheduled run does the same work with fresher data.
resource "aws_lambda_function_event_invoke_config" "this" {
  count = var.create ? 1 : 0

  function_name                = aws_lambda_function.this[0].function_name
  maximum_retry_attempts       = 0
  maximum_event_age_in_seconds = 120
}

# ------------------------------------------------------------------ schedule
# EventBridge Scheduler documents aws:SourceAccount for its execution roles.
data "aws_iam_policy_document" "scheduler_assume" {
  count = var.create ? 1 : 0

  statement {
    sid     = "Scheduler"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "scheduler" {
  count = var.create ? 1 : 0

  name               = "${var.name}-scheduler"
  description        = "Invokes the Toolshed session sweeper on schedule"
  assume_role_policy = data.aws_iam_policy_document.scheduler_assume[0].json

  tags = var.tags
}

data "aws_iam_policy_document" "scheduler" {
  count = var.create ? 1 : 0

  statement {
    sid       = "InvokeSweeper"
    actions   = ["lambda:InvokeFunction"]
    resources = [aws_lambda_function.this[0].arn]
  }

  statement {
    sid       = "DeadLetter"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.dlq[0].arn]
  }

  dynamic "statement" {
    for_each = var.kms_key_arn == null ? [] : [var.kms_key_arn]

    content {
      sid       = "EncryptDeadLetters"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_role_policy" "scheduler" {
  count = var.create ? 1 : 0

  name   = "invoke"
  role   = aws_iam_role.scheduler[0].id
  policy = data.aws_iam_policy_document.scheduler[0].json
}

resource "aws_scheduler_schedule" "this" {
  count = var.create ? 1 : 0

  name                = var.name
  description         = "Toolshed session sweep"
  schedule_expression = var.schedule_expression
  kms_key_arn         = var.kms_key_arn

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_lambda_function.this[0].arn
    role_arn = aws_iam_role.scheduler[0].arn

    dead_letter_config {
      arn = aws_sqs_queue.dlq[0].arn
    }

    # A missed run is superseded by the next one.
    retry_policy {
      maximum_event_age_in_seconds = 60
      maximum_retry_attempts       = 0
    }
  }
}

# ------------------------------------------------------------------ task state events
# ECS task state changes of this deployment's playground sessions (group `toolshed-session:<id>`,
# `startedBy` = the deployment id) reach the same function, which records each task's state on its
# session so status polls answer from the record instead of calling DescribeTasks.
locals {
  deployment_id = lookup(var.environment, "TOOLSHED_DEPLOYMENT_ID", null)
  task_state_detail = merge(
    {
      clusterArn = [local.cluster_arn]
      group      = [{ prefix = "toolshed-session:" }]
      lastStatus = ["PENDING", "RUNNING", "DEACTIVATING", "STOPPING", "STOPPED"]
    },
    local.deployment_id == null ? {} : { startedBy = [local.deployment_id] },
  )
}

resource "aws_cloudwatch_event_rule" "task_state" {
  count = var.create && var.task_state_events ? 1 : 0

  name        = "${var.name}-task-state"
  description = "Toolshed: playground task state changes of ${local.cluster_name}, for session status"
  event_pattern = jsonencode({
    source        = ["aws.ecs"]
    "detail-type" = ["ECS Task State Change"]
    detail        = local.task_state_detail
  })

  tags = var.tags
}

resource "aws_cloudwatch_event_target" "task_state" {
  count = var.create && var.task_state_events ? 1 : 0

  rule      = aws_cloudwatch_event_rule.task_state[0].name
  target_id = "session-status"
  arn       = aws_lambda_function.this[0].arn

  dead_letter_config {
    arn = aws_sqs_queue.dlq[0].arn
  }

  # A late event is superseded by the refresh, which describes ageing sessions anyway.
  retry_policy {
    maximum_event_age_in_seconds = 300
    maximum_retry_attempts       = 3
  }
}

# Only this rule may invoke the function with events.
resource "aws_lambda_permission" "task_state" {
  count = var.create && var.task_state_events ? 1 : 0

  statement_id   = "TaskStateEvents"
  action         = "lambda:InvokeFunction"
  function_name  = aws_lambda_function.this[0].function_name
  principal      = "events.amazonaws.com"
  source_arn     = aws_cloudwatch_event_rule.task_state[0].arn
  source_account = local.account_id
}

# EventBridge delivers to the dead-letter queue only when the queue lets this rule send.
data "aws_iam_policy_document" "dlq" {
  count = var.create && var.task_state_events ? 1 : 0

  statement {
    sid       = "TaskStateRuleDeadLetters"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.dlq[0].arn]

    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_cloudwatch_event_rule.task_state[0].arn]
    }
  }
}

resource "aws_sqs_queue_policy" "dlq" {
  count = var.create && var.task_state_events ? 1 : 0

  queue_url = aws_sqs_queue.dlq[0].id
  policy    = data.aws_iam_policy_document.dlq[0].json
}

# ------------------------------------------------------------------ alarms
resource "aws_cloudwatch_metric_alarm" "errors" {
  count = var.create ? 1 : 0

  alarm_name          = "${var.name}-errors"
  alarm_description   = "The Toolshed session sweep fails: expired playground tasks may keep running (and costing)."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = aws_lambda_function.this[0].function_name }
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = var.alarm.evaluation_periods
  datapoints_to_alarm = var.alarm.datapoints_to_alarm
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm.actions
  ok_actions          = var.alarm.actions

  tags = var.tags
}

resource "aws_cloudwatch_metric_alarm" "dead_letters" {
  count = var.create ? 1 : 0

  alarm_name          = "${var.name}-dead-letters"
  alarm_description   = "Sweep invocations were dead-lettered (schedule could not invoke, or invocations were dropped)."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.dlq[0].name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm.actions

  tags = var.tags
}
