locals {
  # Rule priorities: untagged first, then one rule per listed server, the optional global cap last.
  # An image belongs to the first rule (by priority) whose prefix it matches, and a server id may
  # extend another ("time-zone" vs "time"): descending order puts every extension before its prefix.
  servers_by_priority = reverse(sort(distinct(var.lifecycle_rules.servers)))

  server_rules = [
    for i, server in local.servers_by_priority : {
      rulePriority = 10 + i
      description  = "Keep the last ${var.lifecycle_rules.images_per_server} images of ${server}"
      selection = {
        tagStatus     = "tagged"
        tagPrefixList = ["${server}-"]
        countType     = "imageCountMoreThan"
        countNumber   = var.lifecycle_rules.images_per_server
      }
      action = { type = "expire" }
    }
  ]

  total_rule = var.lifecycle_rules.max_total_images == null ? [] : [{
    rulePriority = 10000
    description  = "Cap the repository at ${var.lifecycle_rules.max_total_images} tagged images"
    selection = {
      tagStatus      = "tagged"
      tagPatternList = ["*"]
      countType      = "imageCountMoreThan"
      countNumber    = var.lifecycle_rules.max_total_images
    }
    action = { type = "expire" }
  }]

  lifecycle_policy = jsonencode({
    rules = concat([{
      rulePriority = 1
      description  = "Expire untagged images after ${var.lifecycle_rules.untagged_expire_days} days"
      selection = {
        tagStatus   = "untagged"
        countType   = "sinceImagePushed"
        countUnit   = "days"
        countNumber = var.lifecycle_rules.untagged_expire_days
      }
      action = { type = "expire" }
    }], local.server_rules, local.total_rule)
  })
}

resource "aws_ecr_repository" "this" {
  count = var.create ? 1 : 0

  name = var.name
  # Tags are `<serverId>-<sha12>`: one commit, one image, never overwritten.
  image_tag_mutability = "IMMUTABLE"
  force_delete         = var.force_delete

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = var.kms_key_arn
  }

  tags = var.tags
}

resource "aws_ecr_lifecycle_policy" "this" {
  count = var.create ? 1 : 0

  repository = aws_ecr_repository.this[0].name
  policy     = local.lifecycle_policy
}

resource "aws_ecr_repository_policy" "this" {
  count = var.create && var.repository_policy_json != null ? 1 : 0

  repository = aws_ecr_repository.this[0].name
  policy     = var.repository_policy_json
}
