# The layout is the one the Rust crate (toolshed-aws) reads and writes: change it only with it.

resource "aws_dynamodb_table" "servers" {
  count = var.create ? 1 : 0

  name                        = "${var.name}-servers"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "server_id"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "server_id"
    type = "S"
  }

  # `lease_held` is present only while a verification lease is held: a sparse index of runs
  # whose holder may have died (expiry passed without a heartbeat), resumed by the API's worker.
  attribute {
    name = "lease_held"
    type = "S"
  }

  attribute {
    name = "lease_expires_at"
    type = "N"
  }

  global_secondary_index {
    name               = "leases-by-expiry"
    hash_key           = "lease_held"
    range_key          = "lease_expires_at"
    projection_type    = "INCLUDE"
    non_key_attributes = ["lease_holder", "lease_token", "lease_acquired_at", "lease_run"]
  }

  point_in_time_recovery {
    enabled                 = true
    recovery_period_in_days = var.point_in_time_recovery.recovery_period_in_days
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }

  tags = var.tags
}

resource "aws_dynamodb_table" "sessions" {
  count = var.create ? 1 : 0

  name                        = "${var.name}-sessions"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "session_id"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "session_id"
    type = "S"
  }

  attribute {
    name = "server_id"
    type = "S"
  }

  attribute {
    name = "created_at"
    type = "N"
  }

  # `live` is present only while a session may still run: a sparse index of sessions to sweep.
  attribute {
    name = "live"
    type = "S"
  }

  attribute {
    name = "expires_at"
    type = "N"
  }

  global_secondary_index {
    name            = "by-server"
    hash_key        = "server_id"
    range_key       = "created_at"
    projection_type = "ALL"
  }

  global_secondary_index {
    name            = "live-by-expiry"
    hash_key        = "live"
    range_key       = "expires_at"
    projection_type = "ALL"
  }

  # `live_created_at` (a copy of `created_at`) is present only while a session is live: a sparse
  # index of each server's live sessions, newest first. A filter on `by-server` would read the
  # server's whole history of ended sessions (DynamoDB applies Limit before the filter).
  attribute {
    name = "live_created_at"
    type = "N"
  }

  global_secondary_index {
    name            = "live-by-server"
    hash_key        = "server_id"
    range_key       = "live_created_at"
    projection_type = "ALL"
  }

  # Instances live in this table too (`#instance#<id>` items, with a `#instance-name#<name>` item
  # that keeps names unique). `instances` is present only on instance items: a sparse index that
  # lists instances by name without scanning sessions.
  attribute {
    name = "instances"
    type = "S"
  }

  attribute {
    name = "instance_name"
    type = "S"
  }

  global_secondary_index {
    name            = "instances-by-name"
    hash_key        = "instances"
    range_key       = "instance_name"
    projection_type = "ALL"
  }

  # Only ended sessions carry `ttl` (set in the transaction that ends them and frees their cap
  # slots), so TTL never deletes a live session. DynamoDB removes them up to ~2 days late; the
  # sweep never relies on it.
  ttl {
    attribute_name = "ttl"
    enabled        = true
  }

  point_in_time_recovery {
    enabled                 = true
    recovery_period_in_days = var.point_in_time_recovery.recovery_period_in_days
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }

  tags = var.tags
}
