mock_provider "aws" {}

variables {
  name = "toolshed/mcp-servers"
}

run "defaults_are_immutable_scanned_encrypted" {
  command = apply

  assert {
    condition     = aws_ecr_repository.this[0].image_tag_mutability == "IMMUTABLE"
    error_message = "tags must be immutable"
  }
  assert {
    condition     = aws_ecr_repository.this[0].image_scanning_configuration[0].scan_on_push
    error_message = "images must be scanned on push"
  }
  assert {
    condition     = aws_ecr_repository.this[0].encryption_configuration[0].encryption_type == "KMS"
    error_message = "images must be KMS-encrypted"
  }
  assert {
    condition     = jsondecode(output.lifecycle_policy).rules[0].selection.tagStatus == "untagged"
    error_message = "the first rule expires untagged images"
  }
  assert {
    condition     = length(jsondecode(output.lifecycle_policy).rules) == 1
    error_message = "without listed servers or a cap there is only the untagged rule"
  }
  assert {
    condition     = length(aws_ecr_repository_policy.this) == 0
    error_message = "no repository policy unless given"
  }
}

run "keeps_last_n_per_listed_server" {
  command = apply

  variables {
    lifecycle_rules = {
      images_per_server = 3
      servers           = ["time", "fetch"]
      max_total_images  = 500
    }
    repository_policy_json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
  }

  assert {
    condition     = [for r in jsondecode(output.lifecycle_policy).rules : r.selection.tagPrefixList[0] if can(r.selection.tagPrefixList)] == ["time-", "fetch-"]
    error_message = "one rule per server, selecting <serverId>- tags"
  }
  assert {
    condition     = alltrue([for r in jsondecode(output.lifecycle_policy).rules : r.selection.countNumber == 3 if can(r.selection.tagPrefixList)])
    error_message = "each server keeps images_per_server images"
  }
  assert {
    condition     = jsondecode(output.lifecycle_policy).rules[3].rulePriority == 10000 && jsondecode(output.lifecycle_policy).rules[3].selection.countNumber == 500
    error_message = "the total cap is the last rule"
  }
  assert {
    condition     = length(aws_ecr_repository_policy.this) == 1
    error_message = "the repository policy hook attaches the given policy"
  }
}

run "create_false_creates_nothing" {
  command = plan

  variables {
    create = false
  }

  assert {
    condition     = length(aws_ecr_repository.this) == 0 && length(aws_ecr_lifecycle_policy.this) == 0
    error_message = "create = false must create nothing"
  }
  assert {
    condition     = output.repository_url == null && output.repository_arn == null
    error_message = "outputs are null when nothing is created"
  }
}

run "rejects_bad_names" {
  command = plan

  variables {
    name = "Toolshed/MCP"
  }

  expect_failures = [var.name]
}

run "rejects_bad_server_ids" {
  command = plan

  variables {
    lifecycle_rules = { servers = ["Time Server"] }
  }

  expect_failures = [var.lifecycle_rules]
}

run "longer_server_ids_come_first" {
  command = apply

  variables {
    lifecycle_rules = { servers = ["time", "time-zone", "fetch"] }
  }

  assert {
    condition     = [for r in jsondecode(output.lifecycle_policy).rules : r.selection.tagPrefixList[0] if can(r.selection.tagPrefixList)] == ["time-zone-", "time-", "fetch-"]
    error_message = "an id must come before the ids it is a prefix of (time-zone- before time-)"
  }
}
