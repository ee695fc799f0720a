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
    condition     = length(jsondecode(output.lifecycle_policy).rules) == 2
    error_message = "two rules: untagged images and build candidates"
  }
  assert {
    condition     = jsondecode(output.lifecycle_policy).rules[1].selection.tagPrefixList == ["build-"] && jsondecode(output.lifecycle_policy).rules[1].selection.countType == "sinceImagePushed" && jsondecode(output.lifecycle_policy).rules[1].selection.countNumber == 7
    error_message = "build candidates expire by age (7 days by default)"
  }
  assert {
    condition     = alltrue([for r in jsondecode(output.lifecycle_policy).rules : r.selection.tagStatus == "untagged" || (can(r.selection.tagPrefixList) && !anytrue([for p in try(r.selection.tagPrefixList, []) : startswith("verified-", p) || startswith(p, "verified")]))])
    error_message = "no rule may select verified images: every tagged rule names a prefix that verified-* tags never start with"
  }
  assert {
    condition     = alltrue([for r in jsondecode(output.lifecycle_policy).rules : r.selection.countType != "imageCountMoreThan"])
    error_message = "no rule expires by count (a count would include verified images and other servers)"
  }
  assert {
    condition     = length(aws_ecr_repository_policy.this) == 0
    error_message = "no repository policy unless given"
  }
}

run "candidate_expiry_and_the_policy_hook" {
  command = apply

  variables {
    lifecycle_rules = {
      untagged_expire_days  = 2
      candidate_expire_days = 30
    }
    repository_policy_json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
  }

  assert {
    condition     = jsondecode(output.lifecycle_policy).rules[0].selection.countNumber == 2 && jsondecode(output.lifecycle_policy).rules[1].selection.countNumber == 30
    error_message = "the ages are configurable"
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

run "rejects_zero_day_candidates" {
  command = plan

  variables {
    lifecycle_rules = { candidate_expire_days = 0 }
  }

  expect_failures = [var.lifecycle_rules]
}
