locals {
  # Tags say what an image is (toolshed_core::domain::ImageTag): a build pushes a candidate,
  # `build-<serverId>-<sha12>`; once its verification passes, the service re-tags it
  # `verified-<serverId>-<sha12>-<digest12>` and removes the candidate tag. So:
  # - untagged images (e.g. layers of a superseded manifest) expire after `untagged_expire_days`;
  # - candidates (failed or abandoned verifications) expire after `candidate_expire_days`;
  # - verified images are never selected by any rule: no count or age can expire a server's last
  #   good image, whatever other servers (or ids sharing a prefix) push.
  lifecycle_policy = jsonencode({
    rules = [
      {
        rulePriority = 1
        description  = "Expire untagged images after ${var.lifecycle_rules.untagged_expire_days} days"
        selection = {
          tagStatus   = "untagged"
          countType   = "sinceImagePushed"
          countUnit   = "days"
          countNumber = var.lifecycle_rules.untagged_expire_days
        }
        action = { type = "expire" }
      },
      {
        rulePriority = 2
        description  = "Expire build candidates (build-*) after ${var.lifecycle_rules.candidate_expire_days} days"
        selection = {
          tagStatus     = "tagged"
          tagPrefixList = ["build-"]
          countType     = "sinceImagePushed"
          countUnit     = "days"
          countNumber   = var.lifecycle_rules.candidate_expire_days
        }
        action = { type = "expire" }
      },
    ]
  })
}

resource "aws_ecr_repository" "this" {
  count = var.create ? 1 : 0

  name = var.name
  # Tags are `build-<serverId>-<sha12>` / `verified-<serverId>-<sha12>-<digest12>`: never overwritten.
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
