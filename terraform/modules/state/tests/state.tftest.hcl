mock_provider "aws" {}

variables {
  name = "toolshed"
}

run "tables_match_the_crate" {
  command = apply

  assert {
    condition     = aws_dynamodb_table.servers[0].name == "toolshed-servers" && aws_dynamodb_table.servers[0].hash_key == "server_id"
    error_message = "servers table: <name>-servers keyed by server_id"
  }
  assert {
    condition     = aws_dynamodb_table.sessions[0].name == "toolshed-sessions" && aws_dynamodb_table.sessions[0].hash_key == "session_id"
    error_message = "sessions table: <name>-sessions keyed by session_id"
  }
  assert {
    condition = (
      one([for g in aws_dynamodb_table.sessions[0].global_secondary_index : g if g.name == "by-server"]).hash_key == "server_id" &&
      one([for g in aws_dynamodb_table.sessions[0].global_secondary_index : g if g.name == "by-server"]).range_key == "created_at" &&
      one([for g in aws_dynamodb_table.sessions[0].global_secondary_index : g if g.name == "by-server"]).projection_type == "ALL"
    )
    error_message = "GSI by-server: server_id / created_at, projection ALL"
  }
  assert {
    condition = (
      one([for g in aws_dynamodb_table.sessions[0].global_secondary_index : g if g.name == "live-by-expiry"]).hash_key == "live" &&
      one([for g in aws_dynamodb_table.sessions[0].global_secondary_index : g if g.name == "live-by-expiry"]).range_key == "expires_at" &&
      one([for g in aws_dynamodb_table.sessions[0].global_secondary_index : g if g.name == "live-by-expiry"]).projection_type == "ALL"
    )
    error_message = "GSI live-by-expiry: live / expires_at, projection ALL"
  }
  assert {
    condition = (
      one([for g in aws_dynamodb_table.sessions[0].global_secondary_index : g if g.name == "live-by-server"]).hash_key == "server_id" &&
      one([for g in aws_dynamodb_table.sessions[0].global_secondary_index : g if g.name == "live-by-server"]).range_key == "live_created_at" &&
      one([for g in aws_dynamodb_table.sessions[0].global_secondary_index : g if g.name == "live-by-server"]).projection_type == "ALL"
    )
    error_message = "GSI live-by-server: server_id / live_created_at, projection ALL"
  }
  assert {
    condition = (
      one([for g in aws_dynamodb_table.sessions[0].global_secondary_index : g if g.name == "instances-by-name"]).hash_key == "instances" &&
      one([for g in aws_dynamodb_table.sessions[0].global_secondary_index : g if g.name == "instances-by-name"]).range_key == "instance_name" &&
      one([for g in aws_dynamodb_table.sessions[0].global_secondary_index : g if g.name == "instances-by-name"]).projection_type == "ALL"
    )
    error_message = "GSI instances-by-name: instances / instance_name, projection ALL"
  }
  assert {
    condition     = { for a in aws_dynamodb_table.sessions[0].attribute : a.name => a.type } == { session_id = "S", server_id = "S", created_at = "N", live = "S", expires_at = "N", live_created_at = "N", instances = "S", instance_name = "S" }
    error_message = "sessions attributes and types"
  }
  assert {
    condition     = aws_dynamodb_table.sessions[0].ttl[0].attribute_name == "ttl" && aws_dynamodb_table.sessions[0].ttl[0].enabled
    error_message = "TTL attribute ttl"
  }
  assert {
    condition     = alltrue([for t in [aws_dynamodb_table.servers[0], aws_dynamodb_table.sessions[0]] : t.billing_mode == "PAY_PER_REQUEST" && t.point_in_time_recovery[0].enabled && t.server_side_encryption[0].enabled && t.deletion_protection_enabled])
    error_message = "on-demand, PITR, SSE and deletion protection on both tables"
  }
  assert {
    condition     = length(output.sessions_index_arns) == 4 && contains(output.sessions_index_arns, "${aws_dynamodb_table.sessions[0].arn}/index/live-by-server")
    error_message = "every index ARN is output"
  }
}

run "deletion_protection_toggle_and_cmk" {
  command = apply

  variables {
    deletion_protection = false
    kms_key_arn         = "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-0000-0000-000000000000"
  }

  assert {
    condition     = !aws_dynamodb_table.servers[0].deletion_protection_enabled && !aws_dynamodb_table.sessions[0].deletion_protection_enabled
    error_message = "deletion protection follows the toggle"
  }
  assert {
    condition     = aws_dynamodb_table.sessions[0].server_side_encryption[0].kms_key_arn == var.kms_key_arn
    error_message = "the CMK is used when given"
  }
}

run "create_false_creates_nothing" {
  command = plan

  variables {
    create = false
  }

  assert {
    condition     = length(aws_dynamodb_table.servers) == 0 && length(aws_dynamodb_table.sessions) == 0 && output.table_arns == []
    error_message = "create = false must create nothing"
  }
}

run "rejects_bad_recovery_period" {
  command = plan

  variables {
    point_in_time_recovery = { recovery_period_in_days = 90 }
  }

  expect_failures = [var.point_in_time_recovery]
}
