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
  mock_resource "aws_lambda_function" {
    defaults = { arn = "arn:aws:lambda:eu-west-1:123456789012:function:toolshed-cleanup" }
  }
  mock_resource "aws_sqs_queue" {
    defaults = { arn = "arn:aws:sqs:eu-west-1:123456789012:toolshed-cleanup-dlq" }
  }
  mock_resource "aws_cloudwatch_event_rule" {
    defaults = { arn = "arn:aws:events:eu-west-1:123456789012:rule/toolshed-cleanup-task-state" }
  }
}

variables {
  name               = "toolshed-cleanup"
  lambda_zip_path    = "tests/fixtures/bootstrap.zip"
  cluster_arn        = "arn:aws:ecs:eu-west-1:123456789012:cluster/toolshed"
  sessions_table_arn = "arn:aws:dynamodb:eu-west-1:123456789012:table/toolshed-sessions"
  environment = {
    PLAYGROUND_CLUSTER      = "toolshed"
    TOOLSHED_SESSIONS_TABLE = "toolshed-sessions"
  }
}

run "rust_sweeper_every_minute" {
  command = apply

  assert {
    condition     = aws_lambda_function.this[0].runtime == "provided.al2023" && aws_lambda_function.this[0].handler == "bootstrap"
    error_message = "provided.al2023 custom runtime"
  }
  assert {
    condition     = aws_lambda_function.this[0].reserved_concurrent_executions == 5
    error_message = "a few invocations at a time once task state events arrive"
  }
  assert {
    condition     = aws_lambda_function.this[0].environment[0].variables == var.environment
    error_message = "the function gets the settings"
  }
  assert {
    condition     = aws_scheduler_schedule.this[0].schedule_expression == "rate(1 minute)"
    error_message = "every minute by default"
  }
  assert {
    condition     = aws_scheduler_schedule.this[0].target[0].dead_letter_config[0].arn == aws_sqs_queue.dlq[0].arn
    error_message = "undeliverable schedule events go to the dead-letter queue"
  }
  assert {
    condition     = aws_lambda_function.this[0].dead_letter_config[0].target_arn == aws_sqs_queue.dlq[0].arn
    error_message = "failed invocations go to the dead-letter queue"
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.errors[0].metric_name == "Errors" && aws_cloudwatch_metric_alarm.errors[0].namespace == "AWS/Lambda"
    error_message = "an alarm on errors"
  }
  assert {
    condition     = toset(data.aws_iam_policy_document.lambda[0].statement[1].resources) == toset(["arn:aws:ecs:eu-west-1:123456789012:task/toolshed/*"])
    error_message = "DescribeTasks/StopTask on this cluster's tasks only"
  }
  assert {
    condition     = toset(one(data.aws_iam_policy_document.lambda[0].statement[0].condition).values) == toset([var.cluster_arn])
    error_message = "ListTasks limited to this cluster"
  }
  assert {
    condition     = toset(data.aws_iam_policy_document.lambda[0].statement[2].resources) == toset([var.sessions_table_arn, "${var.sessions_table_arn}/index/live-by-expiry"])
    error_message = "the sessions table and its live-by-expiry index only"
  }
}

run "task_state_events_of_this_deployment_reach_the_function" {
  command = apply

  variables {
    servers_table_arn = "arn:aws:dynamodb:eu-west-1:123456789012:table/toolshed-servers"
    environment = {
      PLAYGROUND_CLUSTER      = "toolshed"
      TOOLSHED_SESSIONS_TABLE = "toolshed-sessions"
      TOOLSHED_DEPLOYMENT_ID  = "prod"
    }
  }

  assert {
    condition = jsondecode(aws_cloudwatch_event_rule.task_state[0].event_pattern) == {
      source        = ["aws.ecs"]
      "detail-type" = ["ECS Task State Change"]
      detail = {
        clusterArn = [var.cluster_arn]
        group      = [{ prefix = "toolshed-session:" }]
        lastStatus = ["PENDING", "RUNNING", "DEACTIVATING", "STOPPING", "STOPPED"]
        startedBy  = ["prod"]
      }
    }
    error_message = "only this cluster's and this deployment's session tasks"
  }
  assert {
    condition     = aws_cloudwatch_event_target.task_state[0].arn == aws_lambda_function.this[0].arn && aws_cloudwatch_event_target.task_state[0].dead_letter_config[0].arn == aws_sqs_queue.dlq[0].arn
    error_message = "events go to the function, undeliverable ones to the dead-letter queue"
  }
  assert {
    condition     = aws_lambda_permission.task_state[0].principal == "events.amazonaws.com" && aws_lambda_permission.task_state[0].source_arn == aws_cloudwatch_event_rule.task_state[0].arn
    error_message = "only this rule may invoke the function with events"
  }
  assert {
    condition     = one([for st in data.aws_iam_policy_document.lambda[0].statement : st.resources if st.sid == "ReadServerTransport"]) == toset([var.servers_table_arn])
    error_message = "GetItem on the servers table only"
  }
  assert {
    condition     = one([for st in data.aws_iam_policy_document.lambda[0].statement : st.actions if st.sid == "ReadSessionsInBatches"]) == toset(["dynamodb:BatchGetItem"])
    error_message = "BatchGetItem on the sessions table"
  }
}

run "without_task_state_events_one_sweep_at_a_time" {
  command = plan

  variables {
    task_state_events = false
  }

  assert {
    condition     = length(aws_cloudwatch_event_rule.task_state) == 0 && aws_lambda_function.this[0].reserved_concurrent_executions == 1
    error_message = "no rule, and one sweep at a time"
  }
}

run "create_false_creates_nothing" {
  command = plan

  variables {
    create          = false
    lambda_zip_path = null
  }

  assert {
    condition     = length(aws_lambda_function.this) == 0 && length(aws_scheduler_schedule.this) == 0 && output.function_arn == null
    error_message = "create = false must create nothing"
  }
}

run "rejects_reserved_environment" {
  command = plan

  variables {
    environment = { AWS_REGION = "eu-west-1" }
  }

  expect_failures = [var.environment]
}

run "rejects_bad_schedules" {
  command = plan

  variables {
    schedule_expression = "every minute"
  }

  expect_failures = [var.schedule_expression]
}
